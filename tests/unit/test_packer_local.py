"""packer/local.pkr.hcl: valid for the Packer on this machine, and its variables reject bad values."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "packer" / "local.pkr.hcl"

pytestmark = pytest.mark.skipif(shutil.which("packer") is None, reason="packer not installed")


def validate(*variables: str) -> subprocess.CompletedProcess[str]:
    cmd = ["packer", "validate"]
    for var in variables:
        cmd += ["-var", var]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([*cmd, str(TEMPLATE)], capture_output=True, text=True, cwd=REPO, env=env, check=False)


def test_template_validates():
    proc = validate()
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("var", "message"),
    [
        ("kubernetes_version=v1.31", "kubernetes_version must be a minor version"),
        ("kubernetes_version=1.x", "kubernetes_version must be a minor version"),
        ("kubernetes_version=2.1", "kubernetes_version must be a minor version"),
        ("base_image=nodeforge", "base_image must be a repository:tag"),
        ("image_repository=Upper/Case", "image_repository must be a non-empty lower-case"),
        ("variant=sealed", "variant must be mutable or immutable"),
        ("apt_proxy=127.0.0.1:3142", "apt_proxy must be empty or a proxy URL"),
        ("apt_proxy=http://cache 3142", "apt_proxy must be empty or a proxy URL"),
        ("cgroup_parent=nodeforge lead", "cgroup_parent must be empty or a cgroup path"),
        ("cgroup_parent=/../escape", "cgroup_parent must be empty or a cgroup path"),
    ],
)
def test_bad_variables_rejected(var, message):
    proc = validate(var)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out


def test_apt_proxy_is_for_the_build_only():
    """A proxy URL validates; the template hands it to the roles as os_packages_apt_proxy (apt's environment only)."""
    proc = validate("apt_proxy=http://127.0.0.1:3142")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "os_packages_apt_proxy        = var.apt_proxy" in TEMPLATE.read_text()


def test_bake_rejects_a_bad_apt_proxy_first():
    from nodeforge.bake.pipeline import BakeError, BakeOptions, bake_local

    with pytest.raises(BakeError, match=r"apt proxy '127\.0\.0\.1:3142' is not a proxy URL"):
        bake_local(BakeOptions(apt_proxy="127.0.0.1:3142"))


def test_cgroup_parent_reaches_docker_run():
    """The build container's docker run options as Packer renders them: --cgroup-parent only when one is given."""
    rendered = []
    for value in ("", "/nodeforge-lead"):
        proc = subprocess.run(
            ["packer", "console", "-var", f"cgroup_parent={value}", str(TEMPLATE)],
            input="local.run_command\n", capture_output=True, text=True, cwd=REPO, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rendered.append(" ".join(proc.stdout.replace(",", " ").split()))
    assert "--cgroup-parent" not in rendered[0]
    assert '"--cgroup-parent" "/nodeforge-lead" "{{.Image}}"' in rendered[1]


def test_immutable_variant_validates():
    proc = validate("variant=immutable", "seal_dir=/tmp/sealed")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_seal_step_matches_the_cli():
    """The immutable variant's shell-local step calls `nodeforge image seal-image` with options it has."""
    from typer.testing import CliRunner

    from nodeforge.cli import app

    text = TEMPLATE.read_text()
    assert "if [ '${var.variant}' != immutable ]; then exit 0; fi" in text
    step = next(line for line in text.splitlines() if "image seal-image" in line)
    for option in ("--out '${var.seal_dir}'", "--manifest '${var.manifest_path}'", "--rootfs-tar '${var.rootfs_tar}'"):
        assert option in step
    assert """${var.signing_key == "" ? "" : " --signing-key '${var.signing_key}'"}""" in step
    help_text = CliRunner().invoke(app, ["image", "seal-image", "--help"]).output
    for option in ("--out", "--manifest", "--rootfs-tar", "--signing-key"):
        assert option in help_text


def test_signing_key_reaches_the_seal_step(tmp_path):
    """A dry run of the template's seal step: the shell-local line as Packer renders it, with and without a key."""
    out = []
    for key in ("", "/keys/build.key"):
        proc = subprocess.run(
            ["packer", "console", "-var", "variant=immutable", "-var", f"signing_key={key}", str(TEMPLATE)],
            input='var.signing_key == "" ? "" : " --signing-key \'${var.signing_key}\'"\n',
            capture_output=True, text=True, cwd=REPO, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        out.append(proc.stdout.strip())
    assert out == ["", "--signing-key '/keys/build.key'"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--signing-key", "k.key"], "only the immutable variant is signed"),
        (["--variant", "immutable", "--signing-key", "missing.key"], "missing.key: signing key not found"),
    ],
)
def test_bake_signing_key_checked_before_baking(args, message):
    from typer.testing import CliRunner

    from nodeforge.cli import app

    result = CliRunner().invoke(app, ["bake", *args])
    assert result.exit_code == 2 and message in " ".join(result.output.replace("│", " ").split())
