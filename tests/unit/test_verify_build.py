"""nodeforge verify-build: the build instance as a testinfra target and a tar stream, over docker or SSH."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from nodeforge.bake.verify import BuildTarget, scan_target


def test_docker_target():
    target = BuildTarget("docker://abc123")
    assert target.pytest_args(Path("/x")) == ["--hosts=nodeforge-docker://abc123"]
    assert target.tar_command()[:3] == ["docker", "exec", "abc123"]
    assert target.tar_command()[3:] == ["tar", "--one-file-system", "--numeric-owner", "-C", "/", "-cf", "-", "."]


def test_ssh_target(tmp_path):
    key = tmp_path / "key"
    key.write_text("k")
    target = BuildTarget("ssh://ec2-user@198.51.100.7:2222", ssh_key=key, sudo=True)
    args = target.pytest_args(tmp_path / "ssh_config")
    assert args == [
        "--hosts=ssh://ec2-user@198.51.100.7:2222",
        f"--ssh-config={tmp_path / 'ssh_config'}",
        f"--ssh-identity-file={key}",
        "--sudo",
    ]
    command = target.tar_command()
    assert command[0] == "ssh" and ["-i", str(key)] == command[1:3]
    assert command[-3:] == [
        "2222",
        "ec2-user@198.51.100.7",
        "sudo -n tar --one-file-system --numeric-owner -C / -cf - .",
    ]
    assert "StrictHostKeyChecking=no" in command and "BatchMode=yes" in command


@pytest.mark.parametrize(
    ("url", "key", "message"),
    [
        ("ssh://ec2-user@host:22", None, "needs --ssh-key"),
        ("ssh://host", "key", "neither docker://CONTAINER nor ssh://USER@HOST"),
        ("docker://", None, "neither"),
        ("http://host", None, "neither"),
    ],
)
def test_bad_targets(tmp_path, url, key, message):
    if key:
        (tmp_path / key).write_text("k")
    with pytest.raises(ValueError, match=message):
        BuildTarget(url, ssh_key=tmp_path / key if key else None)


class _Local(BuildTarget):
    """A target whose 'instance' is a tar made here (the transport is the only difference)."""

    def tar_command(self) -> list[str]:
        return ["cat", str(self.ssh_key)]


def _tar(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "root.tar"
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_streamed_scan_reports_findings(tmp_path):
    dirty = _tar(tmp_path, {"./etc/ssh/ssh_host_ed25519_key": b"x", "./etc/hostname": b"n"})
    result = scan_target(_Local("ssh://u@h", ssh_key=dirty))
    assert result["clean"] is False
    assert [f["rule"] for f in result["findings"]] == ["ssh-host-key"]


def test_unreadable_stream_is_not_clean(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a tar at all" * 100)
    result = scan_target(_Local("ssh://u@h", ssh_key=junk))
    assert result["clean"] is False and "cannot read" in str(result["error"])


def test_cli_refuses_a_bad_target():
    from typer.testing import CliRunner

    from nodeforge.cli import app

    result = CliRunner().invoke(app, ["verify-build", "ssh://ec2-user@host:22"])
    assert result.exit_code == 2 and "--ssh-key FILE (got None)" in result.output
