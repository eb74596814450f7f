"""The roles' one-run replacements for per-item loops, run here for real: the bootstrap agent's reproducible tar
(what unarchive's `tar --diff` sees), hardening's login.defs editor (lineinfile's rules) and containerd's CNI
plugin links (file state=link force=true)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "roles" / "bootstrap_agent" / "files" / "pack_agent.py"


def task(role: str, tasks_file: str, name: str) -> dict:
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / tasks_file).read_text())
    return next(t for t in tasks if t.get("name") == name)


def pack(tmp_path: Path, source: Path) -> Path:
    spec = {
        "dirs": ["nodeforge", "nodeforge/bootstrap", "nodeforge/bootstrap/data"],
        "files": [
            ["nodeforge/bootstrap/cli.py", str(source / "cli.py")],
            ["nodeforge/bootstrap/data/table.json", str(source / "table.json")],
        ],
    }
    out = subprocess.run([sys.executable, str(PACK), json.dumps(spec)], capture_output=True, text=True, check=True)
    path = Path(json.loads(out.stdout)["path"])
    kept = tmp_path / f"agent-{len(list(tmp_path.glob('agent-*.tar')))}.tar"
    shutil.move(path, kept)
    return kept


def tar_diff(archive: Path, dest: Path) -> str:
    result = subprocess.run(["tar", "--diff", "-C", str(dest), "-f", str(archive)], capture_output=True, text=True)
    return result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar, as unarchive does on the node")
def test_agent_tar_is_reproducible_and_diffs_only_real_changes(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "cli.py").write_text("print('agent')\n")
        (folder / "table.json").write_text("{}\n")
    os.utime(second / "cli.py", (1, 1))  # another checkout: other mtimes, same contents
    one, two = pack(tmp_path, first), pack(tmp_path, second)
    assert one.read_bytes() == two.read_bytes()
    with tarfile.open(one) as tar:
        members = {m.name: (m.mode, m.uid, m.gid, m.uname, m.mtime, m.isdir()) for m in tar.getmembers()}
    assert members["nodeforge/bootstrap"] == (0o755, 0, 0, "root", 1704067200, True)
    assert members["nodeforge/bootstrap/cli.py"] == (0o644, 0, 0, "root", 1704067200, False)

    node = tmp_path / "node"
    node.mkdir()
    subprocess.run(["tar", "-x", "-C", str(node), "-f", str(one)], check=True)
    assert tar_diff(one, node) == ""
    installed = node / "nodeforge" / "bootstrap" / "cli.py"
    installed.write_text("print('AGENT')\n")  # same size, and its mtime put back: only the bytes differ
    os.utime(installed, (1704067200, 1704067200))
    assert "Contents differ" in tar_diff(one, node)
    installed.write_text("print('agent')\n")
    os.utime(installed, (1704067200, 1704067200))
    installed.chmod(0o600)
    assert "Mode differs" in tar_diff(one, node)


LOGIN_DEFS_SETTINGS = [["PASS_MAX_DAYS", "365"], ["UMASK", "027"], ["ENCRYPT_METHOD", "SHA512"]]


@pytest.mark.skipif(os.geteuid() != 0, reason="the editor makes the file root's")
def test_login_defs_editor_follows_lineinfile(tmp_path):
    argv = task("hardening", "login_defs.yml", "Set login.defs password ageing, umask and hashing")[
        "ansible.builtin.command"
    ]["argv"]
    script = argv[2]
    path = tmp_path / "login.defs"
    path.write_text("#PASS_MAX_DAYS 1\nPASS_MAX_DAYS\t99999\n# UMASK 022\nMAIL_DIR /var/mail")
    path.chmod(0o600)

    def run() -> list[str]:
        out = subprocess.run(
            [sys.executable, "-c", script, str(path), json.dumps(LOGIN_DEFS_SETTINGS)],
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout)

    assert run() == ["PASS_MAX_DAYS", "UMASK", "ENCRYPT_METHOD"]
    # the last match replaced (commented or not), a missing key appended after a last line without newline
    assert (
        path.read_text()
        == "#PASS_MAX_DAYS 1\nPASS_MAX_DAYS\t365\nUMASK\t027\nMAIL_DIR /var/mail\nENCRYPT_METHOD\tSHA512\n"
    )
    assert path.stat().st_mode & 0o7777 == 0o644
    assert run() == []
    path.chmod(0o640)
    assert run() == ["mode"]


def test_cni_links_as_file_state_link_force(tmp_path):
    command = task("containerd", "cni.yml", "Link the OS's CNI plugins into the CNI bin directory")
    script = command["vars"]["containerd_cni_link_script"]
    plugins, bin_dir = tmp_path / "os", tmp_path / "bin"
    plugins.mkdir()
    bin_dir.mkdir()
    sources = []
    for name in ("bridge", "host-local", "loopback"):
        (plugins / name).write_text("#!/bin/sh\n")
        sources.append(str(plugins / name))

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", "-c", script, "sh", str(bin_dir), *sources], capture_output=True, text=True)

    assert run().stdout.count("linked ") == 3
    assert run().stdout == ""  # nothing to do: not changed
    (bin_dir / "bridge").unlink()
    (bin_dir / "bridge").write_text("a file in its place")
    (bin_dir / "loopback").unlink()
    (bin_dir / "loopback").symlink_to("/elsewhere")
    assert run().stdout.splitlines() == [
        f"linked {bin_dir}/bridge -> {sources[0]}",
        f"linked {bin_dir}/loopback -> {sources[2]}",
    ]
    assert all(str((bin_dir / Path(s).name).readlink()) == s for s in sources)
    (bin_dir / "bridge").unlink()
    (bin_dir / "bridge").mkdir()
    result = run()
    assert result.returncode == 1 and "a directory is in the way" in result.stderr
