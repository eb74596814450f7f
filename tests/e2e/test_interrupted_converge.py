"""Converges killed mid-way: nothing half-installed, and the next converge completes cleanly.

Downloads: the kubelet role downloads kubelet (then ecr-credential-provider) through verified_download: get_url into a
temp file, sha256 check, then a rename into place. The mirror sends half of the kubelet body and holds the connection;
the test waits until those bytes have landed in a temp file on the instance, then SIGKILLs ansible-playbook's process
group and its workers' (each worker runs in a session of its own). Killing the controller does not stop the module it
started in the instance (docker exec, like ssh, leaves it running), so the orphaned module is killed as well: the worst
case, a partial file nobody cleans up. Then the role converges again against a healthy mirror, and a third converge
must change nothing.

Packages: os_packages (containerd, node_base and bootstrap_agent install through it) is killed the same way while
dpkg runs a fixture package's postinst, from a local apt repository in the instance (no network). The next converge
must get dpkg out of its interrupted state and install the package; a third changes nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from faulty_mirror import MirrorLog, faulty_mirror

from nodeforge.bake.mirror import ArtifactMirror

pytestmark = pytest.mark.xdist_group("interrupted-converge")

REPO = Path(__file__).resolve().parents[2]
NEW = "1.31.3/2024-12-12/bin/linux/amd64"  # what the role installs (kubelet_kubernetes_version 1.31)
OLD = "1.30.7/2024-12-12/bin/linux/amd64"  # the "previous good" kubelet already on the node
KUBELET = "/usr/bin/kubelet"
PROVIDER = "/etc/eks/image-credential-provider/ecr-credential-provider"
BIG_SIZE = 1 << 20
DOWNLOAD_DIR = "/var/lib/nodeforge/download"  # verified_download_tmp_dir's default: where get_url's temp file goes
ENV = {"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", "PATH": "/usr/bin:/bin"}


def sh(instance: str, script: str) -> str:
    proc = subprocess.run(["docker", "exec", instance, "sh", "-c", script], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{script}: {proc.stderr}"
    return proc.stdout


def sha256_in(instance: str, path: str) -> str | None:
    out = sh(instance, f"if [ -e {path} ]; then sha256sum {path}; fi").split()
    return out[0] if out else None


PARTIALS = r"""
import hashlib, os, stat, sys
full, head = int(sys.argv[1]), bytes.fromhex(sys.argv[2])
for top, dirs, files in os.walk("/"):
    if top == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in files:
        path = os.path.join(top, name)
        try:
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and 0 < st.st_size < full:
                with open(path, "rb") as handle:
                    if handle.read(len(head)) == head:
                        handle.seek(0)
                        print(st.st_size, hashlib.sha256(handle.read()).hexdigest(), path)
        except OSError:
            pass
"""


def find_partials(instance: str, artifact: bytes) -> list[str]:
    """Files anywhere in the instance (tmpfs mounts included) that hold a proper, non-empty prefix of ARTIFACT."""
    proc = subprocess.run(
        ["docker", "exec", instance, "python3", "-c", PARTIALS, str(len(artifact)), artifact[:96].hex()],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found = []
    for line in proc.stdout.splitlines():
        size, digest, path = line.split(None, 2)
        if hashlib.sha256(artifact[: int(size)]).hexdigest() == digest:
            found.append(f"{path} ({size} bytes)")
    return sorted(found)


def ansible_tmp_entries(instance: str) -> list[str]:
    """What Ansible left in the instance's remote tmp (per-task dirs with the module payload, module temp dirs)."""
    return sorted(sh(instance, "find /root/.ansible/tmp -mindepth 1 -maxdepth 2 2>/dev/null || true").split())


def playbook(tmp_path: Path, role: str, role_vars: dict[str, Any]) -> Path:
    path = tmp_path / f"interrupt_play_{uuid.uuid4().hex[:6]}.yml"
    play = [{"name": "interrupted converge", "hosts": "all", "gather_facts": True,
             "roles": [{"role": role, "vars": role_vars}]}]  # fmt: skip
    path.write_text(json.dumps(play))
    return path


def ansible_cmd(instance: str, play: Path) -> list[str]:
    ansible = Path(sys.executable).parent / "ansible-playbook"
    return [str(ansible), "-i", f"{instance},", "-c", "community.docker.docker",
            "-e", "ansible_python_interpreter=/usr/bin/python3", str(play)]  # fmt: skip


def converge(instance: str, tmp_path: Path, role: str, role_vars: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ansible_cmd(instance, playbook(tmp_path, role, role_vars)),
        capture_output=True,
        text=True,
        cwd=REPO,
        env=ENV,
        timeout=600,
        check=False,
    )


def recap(proc: subprocess.CompletedProcess[str], instance: str) -> dict[str, int]:
    line = re.search(rf"^{re.escape(instance)}\s*:(.*)$", proc.stdout, re.MULTILINE)
    assert line, proc.stdout[-2000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line.group(1))}


def kill_tree(root: int) -> list[int]:
    """SIGKILL ROOT's process group and the groups of all its descendants; return the groups killed.

    ansible-playbook's group alone is not the whole converge: each Ansible worker calls setsid() (ansible-core's
    WorkerProcess._detach), and a surviving worker would finish its task, cleanup included, after the kill.
    """
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += parents.get(pid, [])
    groups = []
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):
            groups.append(os.getpgid(pid))
    for group in sorted(set(groups)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    return sorted(set(groups))


def start_killable(instance: str, tmp_path: Path, role: str, role_vars: dict[str, Any]) -> subprocess.Popen[bytes]:
    with (tmp_path / "killed.log").open("w") as log:
        return subprocess.Popen(ansible_cmd(instance, playbook(tmp_path, role, role_vars)), stdout=log,
                                stderr=subprocess.STDOUT, cwd=REPO, env=ENV, start_new_session=True)  # fmt: skip


def kill_orphans(instance: str) -> list[str]:
    """SIGKILL the module processes a controller started in the instance, with their children; return them.

    Killing the controller does not stop them (docker exec, like ssh, leaves the command running): this is the worst
    case, the module dying mid-write as well.
    """
    rows = [line.split(None, 2) for line in sh(instance, "ps -eo pid=,ppid=,args=").splitlines()]
    children: dict[str, list[str]] = {}
    for pid, ppid, *_ in rows:
        children.setdefault(ppid, []).append(pid)
    args = {row[0]: row[2] if len(row) > 2 else "" for row in rows}
    todo = [pid for pid, command in args.items() if "AnsiballZ_" in command]
    doomed: list[str] = []
    while todo:
        pid = todo.pop()
        if pid not in doomed:
            doomed.append(pid)
            todo += children.get(pid, [])
    if doomed:
        sh(instance, f"kill -9 {' '.join(doomed)} 2>/dev/null || true")
        time.sleep(1)
    return [f"{pid} {args[pid][:120]}" for pid in doomed]


@pytest.fixture
def big_tree(fixture_tree: Path, tmp_path: Path) -> Path:
    """The fixture artifacts with a 1 MiB kubelet 1.31.3 (comment padding in the script), so that half its body is
    several of get_url's 64 KiB chunks: the partial download really lands on disk, as it would for a real kubelet."""
    tree = tmp_path / "big"
    shutil.copytree(fixture_tree, tree)
    small = (fixture_tree / NEW / "kubelet").read_bytes()
    shebang, rest = small.split(b"\n", 1)
    pad = b"# padding, so the download takes several reads\n"
    big = shebang + b"\n" + pad * ((BIG_SIZE - len(small)) // len(pad)) + rest
    (tree / NEW / "kubelet").write_bytes(big)
    (tree / NEW / "kubelet.sha256").write_text(f"{hashlib.sha256(big).hexdigest()}  kubelet\n")
    return tree


def test_kill_mid_download_then_reconverge(instance, tmp_path, fixture_tree, big_tree, mirror: ArtifactMirror):
    report: list[str] = []
    old = (fixture_tree / OLD / "kubelet").read_bytes()
    sh(instance, f"rm -rf {PROVIDER} && mkdir -p /usr/bin")
    subprocess.run(["docker", "exec", "-i", instance, "sh", "-c", f"cat > {KUBELET} && chmod 0755 {KUBELET}"],
                   input=old, check=True)  # fmt: skip
    old_digest = hashlib.sha256(old).hexdigest()
    big = (big_tree / NEW / "kubelet").read_bytes()

    # 1. Converge against a mirror that hangs in the middle of the kubelet body; kill it there.
    log = MirrorLog()
    with faulty_mirror(big_tree, "hang", failures=1, log=log) as url:
        role_vars = {"kubelet_artifact_source": url, "kubelet_download_retries": 0, "kubelet_download_timeout": 300}
        started = time.monotonic()
        proc = start_killable(instance, tmp_path, "kubelet", role_vars)
        try:
            landed: list[str] = []
            while not landed and time.monotonic() - started < 120 and proc.poll() is None:
                time.sleep(1)
                if log.partial_sent.is_set():
                    landed = find_partials(instance, big)
            assert landed, (
                f"the download never got under way (requests {log.requests}):\n"
                + (tmp_path / "killed.log").read_text()[-3000:]
            )
            groups = kill_tree(proc.pid)
        finally:
            if proc.poll() is None:
                kill_tree(proc.pid)
            proc.wait(timeout=30)
        assert f"/{NEW}/kubelet" in log.requests and log.partial_bytes == len(big) // 2
        report.append(
            f"killed process groups {groups} after {time.monotonic() - started:.1f} s; "
            f"the mirror had sent {log.partial_bytes} of {len(big)} bytes"
        )
        report.append(f"partial download on the instance at the kill: {landed}")
        assert all(path.startswith(f"{DOWNLOAD_DIR}/") for path in landed), f"not in {DOWNLOAD_DIR}: {landed}"

        # 2. Nothing half-installed: the previous kubelet is untouched, the provider (not reached) is absent.
        assert sha256_in(instance, KUBELET) == old_digest, "the previous kubelet was replaced or damaged"
        assert sha256_in(instance, PROVIDER) is None, "ecr-credential-provider appeared, though never downloaded"
        report.append(f"module processes that outlived the controller, killed now: {kill_orphans(instance)}")
        report.append(f"partial files after the module was killed too: {find_partials(instance, big)}")
        report.append(f"Ansible remote tmp after the kill: {ansible_tmp_entries(instance)}")
        assert sha256_in(instance, KUBELET) == old_digest

    # 3. Converge again against a healthy mirror: completes, installs verified binaries, leaves no partial file.
    good_vars = {"kubelet_artifact_source": mirror.url, "kubelet_download_delay": 0}
    second = converge(instance, tmp_path, "kubelet", good_vars)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    for path, artifact in ((KUBELET, "kubelet"), (PROVIDER, "ecr-credential-provider")):
        expected = (fixture_tree / NEW / f"{artifact}.sha256").read_text().split()[0]
        assert sha256_in(instance, path) == expected, f"{path} does not match {artifact}.sha256"
    report.append(f"re-converge: rc 0, {recap(second, instance)}")
    still = find_partials(instance, big)
    report.append(f"partial files after the re-converge: {still}")
    report.append(f"Ansible remote tmp after the re-converge: {ansible_tmp_entries(instance)}")
    print("\n".join(["", *report]))
    assert not still, f"the re-converge left the killed run's partial download behind: {still}"

    # 4. A third converge changes nothing.
    third = converge(instance, tmp_path, "kubelet", good_vars)
    assert third.returncode == 0, (third.stdout + third.stderr)[-4000:]
    assert recap(third, instance)["changed"] == 0, third.stdout[-4000:]


# A local apt repository in the instance with one fixture package whose postinst hangs while a flag file exists; the
# instance's other apt sources are put aside, so nothing leaves this machine.
FIXTURE_REPO = r"""
set -e
PKG=nodeforge-fixture-hang
rm -rf /srv/nodeforge-repo /var/tmp/$PKG
mkdir -p /srv/nodeforge-repo /var/tmp/$PKG/DEBIAN /var/tmp/$PKG/usr/share/$PKG
echo "NODEFORGE TEST FIXTURE" > /var/tmp/$PKG/usr/share/$PKG/README
printf '%s\n' "Package: $PKG" "Version: 1.0" "Architecture: all" \
  "Maintainer: nodeforge tests <tests@nodeforge.invalid>" \
  "Description: NODEFORGE TEST FIXTURE: its postinst hangs while /run/$PKG.hang exists" > /var/tmp/$PKG/DEBIAN/control
printf '%s\n' '#!/bin/sh' 'set -e' "if [ -e /run/$PKG.hang ]; then touch /run/$PKG.started; sleep 600; fi" \
  > /var/tmp/$PKG/DEBIAN/postinst
chmod 0755 /var/tmp/$PKG/DEBIAN/postinst
cd /srv/nodeforge-repo
dpkg-deb --root-owner-group --build /var/tmp/$PKG ${PKG}_1.0_all.deb > /dev/null
rm -rf /var/tmp/$PKG
{ dpkg-deb -f ${PKG}_1.0_all.deb; echo "Filename: ./${PKG}_1.0_all.deb"; echo "Size: $(stat -c %s ${PKG}_1.0_all.deb)"
  echo "SHA256: $(sha256sum ${PKG}_1.0_all.deb | cut -d' ' -f1)"; echo; } > Packages
mkdir -p /etc/apt/sources.off
find /etc/apt/sources.list /etc/apt/sources.list.d -type f -exec mv {} /etc/apt/sources.off/ \;
echo "deb [trusted=yes] file:/srv/nodeforge-repo ./" > /etc/apt/sources.list.d/nodeforge-fixture.list
"""
HANG_PKG = "nodeforge-fixture-hang"


def dpkg_state(instance: str) -> str:
    status = sh(instance, f"dpkg-query -W -f='${{Status}}' {HANG_PKG} 2>/dev/null || true").strip()
    audit = sh(instance, "dpkg --audit 2>&1 || true").strip()
    journal = sh(instance, "ls /var/lib/dpkg/updates").split()
    return f"status '{status}', dpkg --audit {audit[:200]!r}, journal {journal}"


def test_kill_mid_package_install_then_reconverge(instance, tmp_path):
    sh(instance, FIXTURE_REPO)
    sh(instance, f"dpkg --purge {HANG_PKG} > /dev/null 2>&1 || true; touch /run/{HANG_PKG}.hang")
    role_vars = {"os_packages_names": [HANG_PKG]}
    report: list[str] = []

    # 1. Converge; kill it (controller, then the apt/dpkg processes it left running) while dpkg runs the postinst.
    started = time.monotonic()
    proc = start_killable(instance, tmp_path, "os_packages", role_vars)
    try:
        while time.monotonic() - started < 120 and proc.poll() is None:
            time.sleep(1)
            if sh(instance, f"ls /run/{HANG_PKG}.started 2>/dev/null || true").strip():
                break
        else:
            pytest.fail("dpkg never reached the postinst:\n" + (tmp_path / "killed.log").read_text()[-3000:])
        groups = kill_tree(proc.pid)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
        proc.wait(timeout=30)
    report.append(f"killed process groups {groups} after {time.monotonic() - started:.1f} s, inside the postinst")
    report.append(f"module processes that outlived the controller, killed now: {kill_orphans(instance)}")
    sh(instance, f"rm -f /run/{HANG_PKG}.hang /run/{HANG_PKG}.started")
    interrupted = dpkg_state(instance)
    report.append(f"dpkg after the kill: {interrupted}")
    assert "half-configured" in interrupted, interrupted

    # 2. Converge again: it must finish what dpkg left, and install the package.
    second = converge(instance, tmp_path, "os_packages", role_vars)
    report.append(f"re-converge: rc {second.returncode}, {recap(second, instance)}")
    report.append(f"dpkg after the re-converge: {dpkg_state(instance)}")
    print("\n".join(["", *report]))
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    assert sh(instance, f"dpkg-query -W -f='${{Status}}' {HANG_PKG}") == "install ok installed"
    assert sh(instance, "dpkg --audit").strip() == ""

    # 3. A third converge changes nothing (the recovery step only acts on an interrupted dpkg).
    third = converge(instance, tmp_path, "os_packages", role_vars)
    assert third.returncode == 0, (third.stdout + third.stderr)[-4000:]
    assert recap(third, instance)["changed"] == 0, third.stdout[-4000:]
