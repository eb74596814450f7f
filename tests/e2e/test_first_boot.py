"""First boot as EC2 does it, on the session's baked image.

The image boots from its own disk (GRUB under SeaBIOS or OVMF picks the kernel in /boot), gets its user data
from IMDSv2 at 169.254.169.254 (a fake IMDS on 127.0.0.1, reached through QEMU's guestfwd), runs cloud-init's
Ec2 datasource and the bootstrap agent, and starts containerd and the kubelet (the labelled fixture) with the
files the agent wrote. Each check compares the node with what the agent computes here for the same user data
and instance, so the booted node must equal the agent's own answer, not a copy of expected files.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeforge.vm.disk import PROBE_EXTRA_SCRIPT
from nodeforge.vm.launch import FIRST_BOOT_USER_DATA, USER_DATA_DIR, LaunchOptions, NodeReport, expected_files, launch

# The session's bake (conftest.baked) is shared with tests/e2e/test_bake.py: one worker, one bake.
pytestmark = pytest.mark.xdist_group("bake")

SHELL_PART_LINE = "nodeforge-first-boot: user shell part ran"
KUBELET_VERSION = "1.31"


def _node_report(path: str) -> dict:
    return json.loads(Path(path).read_text())


def _assert_configured(node: dict, user_data: bytes, rootfs_tar: str | Path, *, compare_files: bool = True) -> None:
    """The node configured itself: agent once and successful, files as computed, kubelet started with them."""
    report = node["report"]
    extra = report["extra"]
    assert report["state"] == "running", (report["state"], report["failed"])
    assert report["failed"] == []
    agent = extra["units"]["nodeforge-bootstrap.service"]
    assert (agent["ActiveState"], agent["Result"], agent["NRestarts"]) == ("active", "success", "0")
    assert extra["cloud_init_output"].count(SHELL_PART_LINE) == 1
    assert any("DataSourceEc2" in line for line in extra["cloud_init_status"]), extra["cloud_init_status"]
    have = extra["files"]
    for path in ("/etc/kubernetes/kubelet/config.json", "/var/lib/kubelet/kubeconfig", "/etc/kubernetes/pki/ca.crt"):
        assert path in have, f"{path} missing on the node"
    if compare_files:
        _assert_files_as_computed(node, user_data, rootfs_tar)
    kubelet = extra["units"]["kubelet.service"]
    assert kubelet["ActiveState"] == "active", kubelet
    args = extra["kubelet_args"]
    assert "--config=/etc/kubernetes/kubelet/config.json" in args
    assert "--kubeconfig=/var/lib/kubelet/kubeconfig" in args
    assert extra["units"]["containerd.service"]["ActiveState"] == "active"
    assert extra["container"]["ran"], extra["container"]


def _assert_files_as_computed(node: dict, user_data: bytes, rootfs_tar: str | Path) -> None:
    """Every file the agent writes for this user data and instance (run here on a root seeded from the image) is on
    the node with the same bytes."""
    want = expected_files(
        user_data, node["metadata"], kubelet_version=KUBELET_VERSION, cpus=1, rootfs_tar=Path(rootfs_tar)
    )
    have = node["report"]["extra"]["files"]
    assert want, "the agent wrote nothing here"
    for path, content in want.items():
        assert path in have, f"{path}: the agent writes it, the node does not have it"
        assert have[path] == content, f"{path} on the node differs from what the agent computes"


def test_karpenter_user_data_configures_the_node_under_bios(baked):
    """The bake's own first boot: SeaBIOS, GRUB from the disk, Karpenter's AL2023 MIME over IMDSv2."""
    report, _ = baked
    node = _node_report(report.boot["node_report"])
    assert node["marks"]["grub"] < node["marks"]["cloud_init"] < node["marks"]["report"]
    console = Path(node["console_log"]).read_text(errors="replace")
    assert "nodeforge-grub: booting /boot/vmlinuz-" in console and "(pc)" in console
    assert Path(report.boot["user_data"]) == FIRST_BOOT_USER_DATA
    _assert_configured(node, FIRST_BOOT_USER_DATA.read_bytes(), report.rootfs_tar)
    args = node["report"]["extra"]["kubelet_args"]
    assert any("karpenter.sh/nodepool=default" in arg for arg in args), args


LOCAL_STATE_DIRS = ("/var/lib/kubelet", "/var/lib/containerd", "/var/lib/soci-snapshotter-grpc", "/var/log/pods")


def test_karpenter_raid0_instance_store_on_the_first_boot(baked):
    """The same boot (no boot of its own): an m5d.4xlarge with its two NVMe instance-store disks and the NodeConfig
    Karpenter writes for ``instanceStorePolicy: RAID0``. The agent found both disks by EC2's by-id names, made
    /dev/md/kubernetes a RAID0 of both, XFS, mounted on /mnt/k8s-disks/0, and bind-mounted the kubelet's,
    containerd's, SOCI's and the pod logs' directories from it, all before containerd and the kubelet started,
    which then ran (containerd ran the probe's container on the array)."""
    report, _ = baked
    assert b"strategy: RAID0" in FIRST_BOOT_USER_DATA.read_bytes()
    assert report.boot["instance_type"] == "m5d.4xlarge" and len(report.boot["instance_store"]) == 2
    node = _node_report(report.boot["node_report"])
    extra = node["report"]["extra"]
    storage = extra["local_storage"]
    disks = storage["disks"]
    assert len(disks) == 2 and all(n.startswith("nvme-Amazon_EC2_NVMe_Instance_Storage_AWS") for n in disks), disks
    members = sorted(device.rsplit("/", 1)[1] for device in disks.values())
    array = storage["arrays"]["kubernetes"]
    assert (array["level"], array["members"], array["fstype"]) == ("raid0", members, "xfs"), array
    assert "ARRAY /dev/md/kubernetes" in storage["mdadm_conf"]
    mounts = {m["target"]: m for m in storage["mounts"]}
    top = mounts["/mnt/k8s-disks/0"]
    assert (top["source"], top["fstype"], top["root"]) == (array["device"], "xfs", "/"), top
    for path in LOCAL_STATE_DIRS:  # a bind mount: the same file system, the array's folder of that name
        bind = mounts[path]
        assert (bind["device"], bind["root"]) == (top["device"], "/" + path.rsplit("/", 1)[1]), bind
    units = storage["mount_units"]
    assert all(props["ActiveState"] == "active" for props in units.values()) and len(units) == 5, units
    # ordering: every mount was up before containerd and the kubelet were started (systemd's monotonic clock)
    services = ("containerd.service", "kubelet.service")
    started = min(int(extra["units"][name]["InactiveExitTimestampMonotonic"]) for name in services)
    assert max(int(props["ActiveEnterTimestampMonotonic"]) for props in units.values()) < started, units
    assert extra["units"]["kubelet.service"]["ActiveState"] == "active"
    assert extra["container"]["ran"], extra["container"]
    journal = "\n".join(extra["bootstrap_journal"])
    assert "ran: mdadm --create --force --verbose /dev/md/kubernetes --level=0" in journal, journal


# One check per area of the hardening role (tests/infra/test_hardening.py). The bake runs playbooks/node.yml, whose
# hardening role keeps its defaults: every area on. Each must pass on the booted node, the node that started
# containerd, ran a container and started the kubelet (the first-boot tests above). test_mount_options_live can only
# pass there (a container's mounts are its runtime's); SELinux is set on Amazon Linux 2023 only, and this bake is
# Debian: its check is the one hardening check allowed to skip.
HARDENING_AREA_CHECKS = (
    "test_sysctl_applied", "test_core_dumps_disabled", "test_module_disabled", "test_ssh_no_root_login",
    "test_auditd_installed_and_enabled", "test_restricted_dirs", "test_unneeded_service_masked", "test_login_defs",
    "test_pam_lockout_stack", "test_pam_password_quality_stack", "test_no_unexpected_suid_sgid",
    "test_mount_options_live", "test_cron_restricted", "test_no_extra_uid0", "test_system_accounts_locked",
    "test_no_rhosts_netrc", "test_legacy_packages_removed", "test_repository_signatures",
    "test_ctrl_alt_del_disabled",
)  # fmt: skip
HARDENING_MAY_SKIP = ("test_selinux_state",)


def junit_outcomes(junit: Path, module: str) -> dict[str, str]:
    """Test name (with its parameters) -> passed / skipped / failed, for the tests of one tests/infra module."""
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.get("classname", "").rsplit(".", 1)[-1] != module:
            continue
        tags = {child.tag for child in case}
        outcome = "failed" if tags & {"failure", "error"} else "skipped" if "skipped" in tags else "passed"
        outcomes[case.get("name", "")] = outcome
    return outcomes


def test_checks_pass_on_the_booted_node_over_ssh(baked):
    """tests/infra ran over SSH (key from IMDS, installed by cloud-init) against the running node."""
    report, _ = baked
    ssh = report.boot["verify_ssh"]
    assert ssh["failed"] == 0, ssh["log"]
    assert ssh["passed"] >= 100
    junit = Path(ssh["junit"]).read_text()
    # checks that can only pass on a booted node ran there, not skipped
    for name in ("test_first_boot_ran_from_imds", "test_cis_3_2_9"):
        assert name in junit
    hardening = junit_outcomes(Path(ssh["junit"]), "test_hardening")
    for check in HARDENING_AREA_CHECKS:  # every area applied on the node, not skipped
        runs = {name: outcome for name, outcome in hardening.items() if name.split("[")[0] == check}
        assert runs and set(runs.values()) == {"passed"}, (check, runs)
    skipped = sorted({name.split("[")[0] for name, outcome in hardening.items() if outcome == "skipped"})
    assert set(skipped) <= set(HARDENING_MAY_SKIP), skipped
    assert report.boot["powered_off_cleanly"]


BAD_LAUNCHES = {
    "no-user-data": {"user_data": None, "imds": "v2", "reason": "no user data"},
    "malformed": {"user_data": b"#!/bin/bash\n/etc/eks/bootstrap.sh\n", "imds": "v2", "reason": "cluster"},
    "imds-unreachable": {"user_data": b"", "imds": "unreachable", "reason": "unreachable"},
    "imdsv1-only": {"user_data": b"", "imds": "v1-only", "reason": "HTTP 403"},
}
# The bad launch that is a first boot of its own; the others run the bootstrap unit again in that instance with the
# metadata service changed (a boot each would cost three more TCG boots; the unit, its journal and the console are
# the same). It keeps IMDSv2 answering, so cloud-init installs the SSH key the reruns are driven through.
FIRST_BAD = "no-user-data"


@dataclass
class BadRun:
    """One run of the bootstrap unit on a node given bad input: what the tests look at."""

    units: dict[str, dict[str, str]]
    journal: str  # this run's journal (its invocation only)
    console: str  # the serial console during this run
    files: dict[str, str]

    def unit(self, name: str) -> dict[str, str]:
        return dict(self.units.get(name, {}))


def _first_bad_run(node: NodeReport) -> BadRun:
    console = node.console_log.read_text(errors="replace")
    return BadRun(node.node.get("units", {}), "\n".join(node.node["bootstrap_journal"]), console, node.node["files"])


def _ssh(node: NodeReport, command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    argv = ["ssh", "-i", str(node.ssh_key), "-p", str(node.ssh_port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            f"{node.ssh_user}@127.0.0.1", command]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def _rerun_bad(node: NodeReport, name: str, karpenter: bytes) -> BadRun:
    """Serve case NAME's metadata, start the failed bootstrap unit again, and read what this run did."""
    case = BAD_LAUNCHES[name]
    assert node.imds is not None
    node.imds.user_data = case["user_data"] if case["user_data"] != b"" else karpenter
    node.imds.tokens_disabled = case["imds"] == "v1-only"
    node.imds.unreachable = case["imds"] == "unreachable"
    console_before = node.console_log.stat().st_size
    unit = "nodeforge-bootstrap.service"
    # one SSH session for the run and its reading (a session costs the emulated node a second or two of CPU):
    # the unit started again, then the probe's units/journal/files JSON, then this run's journal, between marker lines
    mark = "nodeforge-rerun-" + name
    script = (
        f"systemctl reset-failed {unit}; systemctl start {unit}; r=$?; echo; echo {mark}-start $r; "
        f"/usr/bin/python3 {PROBE_EXTRA_SCRIPT} --no-container; r=$?; echo; echo {mark}-probe $r; "
        f"journalctl -o cat --no-pager _SYSTEMD_INVOCATION_ID=$(systemctl show -P InvocationID {unit})"
    )
    run = _ssh(node, "sudo sh -c " + shlex.quote(script))
    found = re.search(rf"^{mark}-start (\d+)\n(.*)^{mark}-probe (\d+)\n(.*)", run.stdout, re.S | re.M)
    assert found, f"{name}: the rerun's output is not as written: {run.stdout[-2000:]}{run.stderr[-2000:]}"
    started, probe_out, probe_rc, journal = found.groups()
    assert started != "0", f"{name}: the bootstrap unit succeeded: {run.stdout}{run.stderr}"
    assert probe_rc == "0", run.stderr
    extra = json.loads(probe_out)
    time.sleep(1)  # the console's last lines reach the file
    with node.console_log.open("rb") as handle:
        handle.seek(console_before)
        console = handle.read().decode(errors="replace")
    return BadRun(extra["units"], journal, console, extra["files"])


def _mng_twice(bake_run, tmp_path_factory) -> tuple[NodeReport, NodeReport, bytes]:
    """A managed-node-group user data under OVMF (its bootstrap.sh call with ``--local-disks mount``, on an instance
    with two instance-store disks), then the same instance started again (a reboot: root volume and instance store
    as the first boot left them)."""
    disk = bake_run.wait_disk().disk
    mng = (USER_DATA_DIR / "mng-al2-local-disks.mime").read_bytes()
    options = LaunchOptions(
        disk=disk,
        work_dir=tmp_path_factory.mktemp("mng-uefi"),
        user_data=mng,
        firmware="uefi",
        memory_mb=1536,
        instance_type="m5d.4xlarge",
        instance_store=(8 << 30, 8 << 30),
        timeout=bake_run.boot_timeout,
    )
    first = launch(options)
    # the restart is the bake group's last boot: on its longest path from here (conftest.LeadCpu), as the immutable
    # chain was before it (measured: the restart started 22 minutes into make test and ended the group)
    bake_run.take_lead()
    try:
        return first, launch(options), mng  # the second boots the root volume the first left
    finally:
        bake_run.leave_lead()


def _bad_launches(bake_run, tmp_path_factory) -> dict[str, BadRun]:
    """The bad launches: one first boot without user data, then the other bad cases in that instance."""
    disk = bake_run.wait_disk().disk
    karpenter = (USER_DATA_DIR / "karpenter-al2023.mime").read_bytes()
    case = BAD_LAUNCHES[FIRST_BAD]
    options = LaunchOptions(
        disk=disk,
        work_dir=tmp_path_factory.mktemp(f"bad-{FIRST_BAD}"),
        user_data=case["user_data"],
        imds=case["imds"],
        memory_mb=1536,
        ssh=True,
        keep_running=True,
        timeout=bake_run.boot_timeout,
    )
    node = launch(options)
    try:
        runs = {FIRST_BAD: _first_bad_run(node)}
        for name in BAD_LAUNCHES:
            if name != FIRST_BAD:
                runs[name] = _rerun_bad(node, name, karpenter)
    finally:
        node.power_off()
    return runs


# The extra launches of the session's disk, each its own instance and root volume: conftest.bake_runs starts them
# with the bake group, and they boot as soon as the bake has built its disk (beside the bake's own first boot).
BAKE_RUNS = {"mng-uefi": _mng_twice, "bad-launches": _bad_launches}


@pytest.fixture(scope="session")
def mng_uefi(bake_runs) -> tuple[NodeReport, NodeReport, bytes]:
    return bake_runs.result("mng-uefi")


@pytest.fixture(scope="session")
def bad_launches(bake_runs) -> dict[str, BadRun]:
    return bake_runs.result("bad-launches")


def _as_dict(node: NodeReport) -> dict:
    return {"report": node.report, "metadata": node.metadata, "marks": node.marks, "console_log": node.console_log}


def test_mng_user_data_configures_the_node_under_uefi(mng_uefi, baked_disk):
    first, _, user_data = mng_uefi
    assert first.ok, first.problems
    console = first.console_log.read_text(errors="replace")
    assert "(efi)" in console
    _assert_configured(_as_dict(first), user_data, baked_disk.rootfs_tar, compare_files=False)
    args = first.node["kubelet_args"]
    assert any("eks.amazonaws.com/nodegroup=ng-1" in arg for arg in args), args


def test_mng_node_files_equal_the_agents_reading(mng_uefi, baked_disk):
    first, _, user_data = mng_uefi
    _assert_files_as_computed(_as_dict(first), user_data, baked_disk.rootfs_tar)


def _mount_storage(node: NodeReport) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    storage = node.node["local_storage"]
    return storage["disks"], {m["target"]: m for m in storage["mounts"]}


def test_mng_local_disks_mount_each_disk_and_survive_the_restart(mng_uefi):
    """bootstrap.sh ``--local-disks mount`` (setup-local-disks' Mount strategy): each instance-store disk formatted
    XFS and mounted on /mnt/k8s-disks/N by a mount unit, before containerd and the kubelet start; no md array,
    no bind mount. The second boot mounts them again from the enabled units, and the agent formats nothing."""
    first, second, user_data = mng_uefi
    assert b"--local-disks mount" in user_data
    for node in (first, second):
        disks, mounts = _mount_storage(node)
        assert len(disks) == 2 and all("NVMe_Instance_Storage_AWS" in name for name in disks), disks
        assert node.node["local_storage"]["arrays"] == {}
        devices = sorted(set(disks.values()))
        assert sorted(m["source"] for m in mounts.values()) == devices, mounts
        assert sorted(mounts) == ["/mnt/k8s-disks/1", "/mnt/k8s-disks/2"]
        assert all((m["fstype"], m["root"]) == ("xfs", "/") for m in mounts.values()), mounts
        units = node.node["local_storage"]["mount_units"]
        assert sorted(units) == ["mnt-k8s\\x2ddisks-1.mount", "mnt-k8s\\x2ddisks-2.mount"], units
        assert all(props["ActiveState"] == "active" for props in units.values()), units
    started = int(first.unit("containerd.service")["InactiveExitTimestampMonotonic"])
    units = first.node["local_storage"]["mount_units"]
    assert max(int(props["ActiveEnterTimestampMonotonic"]) for props in units.values()) < started, units
    assert "ran: mkfs.xfs -l su=8b /dev/nvme" in "\n".join(first.node["bootstrap_journal"])
    assert "mkfs.xfs" not in "\n".join(second.node["bootstrap_journal"])
    assert first.node["container"]["ran"] and second.node["container"]["ran"]


def test_restart_changes_nothing(mng_uefi):
    """Second boot of the same instance: same files, the shell part not run again, the agent changed nothing."""
    first, second, _ = mng_uefi
    assert second.ok, second.problems
    # the same root volume: cloud-init's log holds both boots (a fresh volume would hold one)
    assert second.node["cloud_init_output"].count("running 'init-local'") == 2
    assert second.node["files"] == first.node["files"]
    assert second.node["cloud_init_output"].count(SHELL_PART_LINE) == 1
    journal = "\n".join(second.node["bootstrap_journal"])
    assert re.search(r"\b0 file\(s\) changed, [1-9]\d* unchanged", journal), journal
    assert not re.search(r"^(created|updated): ", journal, re.M), journal


@pytest.mark.parametrize("name", sorted(BAD_LAUNCHES))
def test_bad_launch_fails_loudly(bad_launches, name):
    run = bad_launches[name]
    reason = BAD_LAUNCHES[name]["reason"]
    agent = run.unit("nodeforge-bootstrap.service")
    assert agent["ActiveState"] == "failed" and agent["Result"] == "exit-code", agent
    started = int(agent["InactiveExitTimestampMonotonic"])
    ended = int(agent["InactiveEnterTimestampMonotonic"])
    # bounded: the agent exits by itself (Result exit-code, not timeout) before its unit's 300 s start timeout
    assert 0 < started < ended and (ended - started) / 1e6 < 300, agent
    assert reason in run.journal, run.journal
    assert reason in run.console, "the reason is not on the serial console"
    assert "/var/lib/kubelet/kubeconfig" not in run.files
    assert "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf" not in run.files
    assert run.unit("kubelet.service")["ActiveState"] != "active"
