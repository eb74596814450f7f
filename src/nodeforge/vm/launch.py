"""Launch a node image the way EC2 does, and read what the node did with its user data.

:func:`build_launch_disk` turns a baked root filesystem tar into the self-booting disk of
:mod:`nodeforge.vm.bootdisk`, with the boot probe and :mod:`nodeforge.vm.node_probe` (what the node did) and a
small OCI image for the probe's container run. :func:`launch` powers on an instance of it with firmware only:
GRUB on the disk picks the kernel; cloud-init (Ec2 datasource) and ``nodeforge-bootstrap.service`` read
IMDSv2 from a fake IMDS on 127.0.0.1 that the guest reaches at 169.254.169.254, serving the instance's
identity, placement, MAC, public key and the user data given. It waits for the probe's report, then, if asked,
keeps the VM up for SSH (``nodeforge verify --ssh``) and powers it off with an ACPI power button press.
:func:`expected_files` runs the same agent on this host, against the same IMDS answers and user data, into a
scratch root: the files the node must hold.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeforge.vm import bootdisk, qemu
from nodeforge.vm.disk import PROBE_CMDLINE_FLAG
from nodeforge.vm.imds import DEFAULT_METADATA, FakeImds, FakeImdsServer

__all__ = [
    "IMDS_MODES",
    "LaunchError",
    "LaunchOptions",
    "NodeReport",
    "build_launch_disk",
    "expected_files",
    "instance_metadata",
    "launch",
    "parse_instance_store",
]

IMDS_MODES = ("v2", "v1-only", "unreachable")
USER_DATA_DIR = Path(__file__).with_name("userdata")
DEFAULT_USER_DATA = USER_DATA_DIR / "karpenter-al2023.mime"
"""What Karpenter writes for an AL2023 node (a user shell part, then its NodeConfig): ``nodeforge launch``'s example."""
FIRST_BOOT_USER_DATA = USER_DATA_DIR / "karpenter-al2023-raid0.mime"
"""The bake's first boot: the same, from an EC2NodeClass with ``instanceStorePolicy: RAID0`` (Karpenter then sets
``spec.instance.localStorage.strategy: RAID0``; karpenter-provider-aws pkg/providers/amifamily/bootstrap/nodeadm.go)."""
PROBE_IMAGE_PATH = "var/lib/nodeforge-probe/busybox-oci.tar"
# Kernel command line of a launch disk: the probe reports once the boot is done and leaves the VM up (the host
# powers it off); the serial console is the probe's, not a login prompt's.
LAUNCH_CMDLINE = (
    PROBE_CMDLINE_FLAG,
    "nodeforge.bootprobe.wait=900",
    "nodeforge.bootprobe.poweroff=0",
    "systemd.mask=serial-getty@ttyS0.service",
)
MARKS = {
    "grub": bootdisk.GRUB_BANNER,
    "cloud_init": "running 'init-local'",
    "report": "NODEFORGE-BOOTPROBE-BEGIN",
}


class LaunchError(RuntimeError):
    """The instance could not be launched (bad input, missing tool): names the input."""


@dataclass
class LaunchOptions:
    disk: Path
    work_dir: Path
    user_data: bytes | None = None
    instance_type: str = "m5.large"
    firmware: str = "bios"
    imds: str = "v2"
    ssh: bool = False
    timeout: float = 900
    memory_mb: int = 2048
    instance_id: str = "i-0a1b2c3d4e5f60718"
    keep_running: bool = False
    """Leave the VM up after the report (the caller powers it off with :meth:`NodeReport.power_off`)."""
    instance_store: tuple[int, ...] = ()
    """Sizes in bytes of the instance's instance-store NVMe disks (:func:`parse_instance_store`)."""


@dataclass
class NodeReport:
    """What one launch saw: the probe's report, timings, and (with SSH) how to reach the node."""

    report: dict[str, Any]
    seconds: float
    marks: dict[str, float]
    console_log: Path
    metadata: dict[str, str]
    ssh_port: int | None = None
    ssh_key: Path | None = None
    ssh_user: str = "ec2-user"
    problems: list[str] = field(default_factory=list)
    _proc: subprocess.Popen[bytes] | None = None
    _monitor: Path | None = None
    _imds_stack: contextlib.ExitStack | None = None
    imds: FakeImds | None = None
    """The instance's metadata service while the VM runs (``keep_running``): change what it answers."""

    @property
    def node(self) -> dict[str, Any]:
        extra = self.report.get("extra")
        return extra if isinstance(extra, dict) else {}

    @property
    def ok(self) -> bool:
        return not self.problems

    def unit(self, name: str) -> dict[str, str]:
        return dict(self.node.get("units", {}).get(name, {}))

    def unit_seconds(self, name: str, prop: str = "ActiveEnterTimestampMonotonic") -> float | None:
        """Seconds from kernel start to a unit's state change (systemd's monotonic clock), or None."""
        value = self.unit(name).get(prop, "0")
        return round(int(value) / 1e6, 1) if value.isdigit() and int(value) else None

    def save(self, path: Path) -> None:
        """The whole report (probe, node, timings, problems) as JSON: what tests and users read afterwards."""
        import json

        data = {
            "report": self.report,
            "seconds": self.seconds,
            "marks": self.marks,
            "metadata": self.metadata,
            "problems": self.problems,
            "console_log": str(self.console_log),
        }
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")

    def ssh_target(self) -> str:
        return f"{self.ssh_user}@127.0.0.1:{self.ssh_port}"

    def power_off(self, timeout: float = 120) -> bool:
        """Press the ACPI power button and wait for the guest to power off (True) or kill it (False)."""
        clean = False
        try:
            if self._proc is not None and self._proc.poll() is None and self._monitor is not None:
                with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(5)
                    sock.connect(str(self._monitor))
                    sock.sendall(b"system_powerdown\n")
                    time.sleep(0.5)
                try:
                    self._proc.wait(timeout=timeout)
                    clean = self._proc.returncode == 0
                except subprocess.TimeoutExpired:
                    clean = False
        finally:
            if self._proc is not None:
                qemu.kill_group(self._proc)
            if self._imds_stack is not None:
                self._imds_stack.close()
                self._imds_stack = None
        return clean


def instance_metadata(options: LaunchOptions) -> dict[str, str]:
    """The IMDS answers of the instance: nodeadm's mock instance, with this launch's id and type."""
    md = dict(DEFAULT_METADATA)
    md.update(
        {
            "instance-id": options.instance_id,
            "instance-type": options.instance_type,
            "ami-id": "ami-0nodeforge000000",
            "hostname": md["local-hostname"],
        }
    )
    return md


def build_launch_disk(rootfs_tar: Path, out_dir: Path, *, oci_image: Path | None = None) -> bootdisk.BootDisk:
    """The self-booting disk of a baked root, with the first-boot probe (and OCI_IMAGE for its container run), and
    the udev rule that names QEMU's instance-store NVMe disks as EC2 names them (:mod:`nodeforge.vm.qemu`)."""
    probe_source = Path(__file__).with_name("node_probe.py").read_text()
    with tempfile.TemporaryDirectory(prefix="nodeforge-launch-") as tmp:
        rule = Path(tmp) / "instance-store.rules"
        rule.write_text(qemu.INSTANCE_STORE_UDEV_RULE)
        extra_files = {qemu.INSTANCE_STORE_UDEV_PATH: rule}
        if oci_image is not None:
            extra_files[PROBE_IMAGE_PATH] = oci_image
        return bootdisk.build_boot_disk(
            rootfs_tar,
            out_dir,
            probe_units=["containerd", "kubelet", "nodeforge-bootstrap", "cloud-final"],
            cmdline_extra=LAUNCH_CMDLINE,
            extra_probe_script="#!/usr/bin/python3\n" + probe_source,
            extra_files=extra_files,
        )


_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
DEFAULT_INSTANCE_STORE_SIZE = 8 << 30
MAX_INSTANCE_STORE_DISKS = 24  # EC2's most instance-store volumes on one instance type


def parse_instance_store(spec: str) -> tuple[int, ...]:
    """``N`` or ``NxSIZE`` (SIZE in bytes or with K/M/G/T, binary; default 8G): N disks of SIZE bytes each.

    Raises :class:`LaunchError` naming ``--instance-store`` and the value on anything else.
    """
    text = spec.strip()
    count_text, sep, size_text = text.partition("x")
    why = ""
    if not count_text.isdigit():
        why = "N must be a whole number of disks"
    elif not 0 <= int(count_text) <= MAX_INSTANCE_STORE_DISKS:
        why = f"N must be between 0 and {MAX_INSTANCE_STORE_DISKS}"
    size = DEFAULT_INSTANCE_STORE_SIZE
    if not why and sep:
        unit = size_text[-1:].upper() if size_text[-1:].isalpha() else ""
        number = size_text[: len(size_text) - len(unit)] if unit else size_text
        if unit not in _SIZE_UNITS or not number.isdigit() or int(number) == 0:
            why = "SIZE must be a positive whole number with an optional K, M, G or T suffix"
        else:
            size = int(number) * _SIZE_UNITS[unit]
            if size % 512:
                why = "SIZE must be a multiple of 512 bytes (the disks' sector)"
    if why:
        raise LaunchError(f"--instance-store {spec!r}: {why} (N or NxSIZE, e.g. 2 or 2x8G)")
    return (size,) * int(count_text)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ssh_keypair(work_dir: Path) -> tuple[Path, str]:
    key = work_dir / "ssh-key"
    if not key.exists():
        proc = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nodeforge-launch", "-f", str(key)],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise LaunchError(f"ssh-keygen failed: {proc.stderr.strip()}")
    return key, key.with_suffix(".pub").read_text().strip()


def _assess(report: dict[str, Any], options: LaunchOptions) -> list[str]:
    """What says the node did not configure itself (empty: it did)."""
    problems: list[str] = []
    extra = report.get("extra") if isinstance(report.get("extra"), dict) else {}
    if report.get("state") != "running":
        problems.append(f"system state is {report.get('state')!r}, failed units: {report.get('failed')}")
    units = extra.get("units", {})
    agent = units.get("nodeforge-bootstrap.service", {})
    if agent.get("Result") != "success" or agent.get("ActiveState") != "active":
        problems.append(
            f"nodeforge-bootstrap.service: {agent.get('ActiveState')} ({agent.get('Result')}, "
            f"exit {agent.get('ExecMainStatus')})"
        )
    kubelet = units.get("kubelet.service", {})
    if kubelet.get("ActiveState") != "active":
        problems.append(f"kubelet.service is {kubelet.get('ActiveState')} ({kubelet.get('SubState')})")
    if not extra.get("kubelet_args"):
        problems.append("the kubelet was not started with any arguments")
    container = extra.get("container", {})
    if not container.get("ran"):
        problems.append(f"containerd did not run a container: {container.get('detail') or container.get('output')}")
    return problems


@contextlib.contextmanager
def _imds(options: LaunchOptions, metadata: dict[str, str], public_key: str | None) -> Iterator[FakeImds | None]:
    if options.imds == "unreachable":
        yield None
        return
    server = FakeImdsServer()
    state = server.state
    state.metadata = dict(metadata)
    state.user_data = options.user_data
    state.tokens_disabled = options.imds == "v1-only"
    if public_key:
        state.public_keys = {"nodeforge-launch": public_key}
    with server:
        yield state


def launch(options: LaunchOptions) -> NodeReport:
    """Power on an instance of OPTIONS.disk with OPTIONS.user_data; return what the node reported.

    Raises :class:`BootCheckError` if no report arrives within the timeout (console tail included).
    """
    if options.firmware not in qemu.FIRMWARES:
        raise LaunchError(f"--firmware: unknown firmware {options.firmware!r} (one of {', '.join(qemu.FIRMWARES)})")
    if options.imds not in IMDS_MODES:
        raise LaunchError(f"--imds: unknown mode {options.imds!r} (one of {', '.join(IMDS_MODES)})")
    if not options.disk.is_file():
        raise LaunchError(f"{options.disk}: disk image not found (bake one, or pass a rootfs tar)")
    options.work_dir.mkdir(parents=True, exist_ok=True)
    key: Path | None = None
    public_key: str | None = None
    if options.ssh:
        key, public_key = _ssh_keypair(options.work_dir)
    metadata = instance_metadata(options)
    stack = contextlib.ExitStack()
    imds_state = stack.enter_context(_imds(options, metadata, public_key))
    instance = qemu.Instance(
        image=options.disk,
        work_dir=options.work_dir,
        firmware=options.firmware,
        memory_mb=options.memory_mb,
        instance_id=options.instance_id,
        instance_type=options.instance_type,
        mac=metadata["mac"],
        imds_port=int(imds_state.endpoint.rsplit(":", 1)[1]) if imds_state is not None else None,
        ssh_port=_free_port() if options.ssh else None,
        instance_store=tuple(options.instance_store),
    )
    monitor = options.work_dir / "monitor.sock"
    monitor.unlink(missing_ok=True)
    try:
        if not instance.overlay.exists():
            qemu.create_overlay(instance)
        qemu.create_instance_store(instance)
        argv = qemu.qemu_argv(instance, options.work_dir / "console.log")
        argv += ["-monitor", f"unix:{monitor},server=on,wait=off"]
        boot_index = len(list(options.work_dir.glob("console*.log")))
        console = options.work_dir / ("console.log" if boot_index == 0 else f"console-{boot_index + 1}.log")
        argv = [a.replace(str(options.work_dir / "console.log"), str(console)) for a in argv]
        result, proc = qemu.run_to_report(
            argv, console, timeout=options.timeout, label=f"launch of {options.disk}", marks=MARKS, keep_running=True
        )
    except BaseException:
        stack.close()
        raise
    node = NodeReport(
        report=result.report,
        seconds=result.seconds,
        marks=result.marks,
        console_log=console,
        metadata=metadata,
        ssh_port=instance.ssh_port,
        ssh_key=key,
        problems=_assess(result.report, options),
        _proc=proc,
        _monitor=monitor,
        _imds_stack=stack,
        imds=imds_state,
    )
    if not options.keep_running:
        node.power_off()
    return node


def restart(options: LaunchOptions) -> NodeReport:
    """Start the same instance again (its root volume as the last run left it): a stop/start or reboot."""
    return launch(options)


def expected_files(
    user_data: bytes,
    metadata: dict[str, str],
    *,
    kubelet_version: str,
    cpus: int = 1,
    extra_args: Sequence[str] = (),
    rootfs_tar: Path | None = None,
) -> dict[str, str]:
    """Run the agent here against the same IMDS answers and USER_DATA into a scratch root; its files by path.

    ROOTFS_TAR seeds that root with the image's /etc and node binaries (the agent merges into the image's kubelet
    and containerd configuration, and picks the kubeconfig's credentials by what is installed), so the files
    returned are the ones the agent writes on that image. Only the files the agent wrote are returned.
    """
    server = FakeImdsServer()
    server.state.metadata = dict(metadata)
    server.state.user_data = user_data
    with server as state, tempfile.TemporaryDirectory(prefix="nodeforge-expected-") as tmp:
        seeded: dict[str, float] = {}
        if rootfs_tar is not None:
            members = [
                "etc",
                "usr/bin/kubelet",
                "usr/bin/aws-iam-authenticator",
                "usr/bin/runc",
                "usr/sbin/runc",
                "var/lib/kubelet",
            ]
            subprocess.run(
                ["tar", "-xf", str(rootfs_tar), "-C", tmp, "--no-same-owner", "--ignore-failed-read", *members],
                capture_output=True,
                check=False,
            )
            seeded = {str(p): p.stat().st_mtime for p in Path(tmp).rglob("*") if p.is_file() and not p.is_symlink()}
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
        cmd = [
            sys.executable, "-m", "nodeforge.bootstrap", "--root", tmp, "--no-start",
            "--imds-endpoint", state.endpoint, "--kubelet-version", kubelet_version, "--cpus", str(cpus),
            *extra_args,
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if proc.returncode != 0:
            raise LaunchError(f"the agent refused this user data here too (exit {proc.returncode}): {proc.stderr}")
        files: dict[str, str] = {}
        for path in Path(tmp).rglob("*"):
            if path.is_file() and not path.is_symlink() and seeded.get(str(path)) != path.stat().st_mtime:
                files["/" + str(path.relative_to(tmp))] = path.read_text(errors="replace")
        return files
