"""QEMU launched like an EC2 instance: firmware, its own disk, a NIC, IMDS at 169.254.169.254, EC2's SMBIOS identity.

* Firmware: ``bios`` (SeaBIOS, i440fx) or ``uefi`` (OVMF, q35) boot the disk alone: no ``-kernel``.
* The instance's disk is a qcow2 overlay on the image (an EBS volume made from the AMI's snapshot): the image is
  never written, and a second start of the same instance boots what the first one left (stop/start, reboot).
* Network: QEMU user networking on 169.254.0.0/16, ``restrict=on`` (nothing leaves the VM but the forwards
  below); a guest connection to 169.254.169.254:80 is handed to a fake IMDS on 127.0.0.1 (one ``socat`` per
  connection, QEMU's ``guestfwd=...-cmd:``); SSH is forwarded from 127.0.0.1:PORT.
* Instance store: N NVMe controllers, one namespace each, on sparse raw files in the work dir (created with a
  fresh root volume, kept across restarts of the instance like a reboot keeps them). EC2 names them
  ``Amazon EC2 NVMe Instance Storage`` (NVMe model number) with a serial ``AWS`` + 17 hex digits; QEMU 7.2's
  ``nvme`` device takes ``serial=`` but its model number is fixed (``QEMU NVMe Ctrl``, no property): the serial is
  EC2's form, and the launch disk carries a udev rule (:data:`INSTANCE_STORE_UDEV_RULE`) giving such a disk the
  ``/dev/disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_<serial>`` name EC2's model number gives it.
* SMBIOS says what EC2's does (manufacturer "Amazon EC2", a system UUID and serial starting "ec2", the instance
  id as the chassis asset tag), so cloud-init's Ec2 datasource identifies the platform as on EC2.

Reports come from the boot probe (:mod:`nodeforge.vm.disk`) on the serial console, which goes to a file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeforge.vm.disk import PROBE_BEGIN, PROBE_END, BootCheckError, ProbeReportError, parse_probe_report

__all__ = [
    "FIRMWARES",
    "Instance",
    "LaunchResult",
    "create_instance_store",
    "create_overlay",
    "qemu_argv",
    "run_to_report",
]

FIRMWARES = ("bios", "uefi")
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
IMDS_ADDRESS = "169.254.169.254"
GUEST_NET = "169.254.0.0/16"
CONSOLE_TAIL_LINES = 40
INSTANCE_STORE_MODEL = "Amazon EC2 NVMe Instance Storage"
QEMU_NVME_MODEL = "QEMU NVMe Ctrl"  # hw/nvme/ctrl.c: the model number QEMU 7.2 reports, not settable
INSTANCE_STORE_SERIAL_PREFIX = "AWS"
INSTANCE_STORE_UDEV_PATH = "etc/udev/rules.d/61-nodeforge-qemu-instance-store.rules"
INSTANCE_STORE_UDEV_RULE = (
    "# nodeforge launch disks only (not in the image): QEMU's NVMe model number cannot be set, so an instance-store\n"
    "# disk of a launch (serial AWS...) gets the by-id name EC2's model number gives it.\n"
    f'KERNEL=="nvme*[0-9]n*[0-9]", ENV{{DEVTYPE}}=="disk", ATTRS{{model}}=="{QEMU_NVME_MODEL}", '
    f'ATTRS{{serial}}=="{INSTANCE_STORE_SERIAL_PREFIX}*", '
    f'SYMLINK+="disk/by-id/nvme-{INSTANCE_STORE_MODEL.replace(" ", "_")}_$attr{{serial}}"\n'
)


@dataclass
class Instance:
    """One VM: its disk (an overlay on the image), firmware, identity and forwards."""

    image: Path
    work_dir: Path
    firmware: str = "bios"
    memory_mb: int = 2048
    cpus: int = 1
    instance_id: str = "i-0123456789abcdef0"
    instance_type: str = "m5.large"
    mac: str = "0e:49:61:0f:c3:11"
    imds_port: int | None = None
    ssh_port: int | None = None
    in_place: bool = False
    """Boot the image itself (raw, written in place) instead of an overlay: a disk whose state the host reads
    between boots (the A/B disk's grubenv, which its boot loader writes)."""
    forwards: tuple[tuple[str, int, int], ...] = ()
    """Guest TCP services on the host: ``(guest address, guest port, host port on 127.0.0.1)`` (e.g. an update
    server), forwarded like the IMDS (the user network stays restricted)."""
    instance_store: tuple[int, ...] = ()
    """Sizes in bytes of the instance-store NVMe disks (EC2 attaches them in this order)."""

    @property
    def overlay(self) -> Path:
        return self.work_dir / "root-volume.qcow2"

    def instance_store_disk(self, index: int) -> Path:
        return self.work_dir / f"instance-store-{index}.img"

    def instance_store_serial(self, index: int) -> str:
        """EC2's form (``AWS`` + 17 upper-case hex digits: 20 characters, the NVMe serial field's width)."""
        digest = hashlib.sha256(f"{self.instance_id}:instance-store:{index}".encode()).hexdigest()
        return INSTANCE_STORE_SERIAL_PREFIX + digest[:17].upper()

    @property
    def efi_vars(self) -> Path:
        return self.work_dir / "efi-vars.fd"

    def system_uuid(self) -> str:
        digest = hashlib.sha256(self.instance_id.encode()).hexdigest()
        raw = "ec2" + digest[3:32]
        return f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:32]}"


@dataclass
class LaunchResult:
    """One power-on to the boot probe's report."""

    report: dict[str, Any]
    seconds: float
    console_log: Path
    powered_off: bool
    console_text: str = ""
    marks: dict[str, float] = field(default_factory=dict)
    """Seconds from power-on to console lines of interest (first seen)."""


def _opt(value: Path | str) -> str:
    return str(value).replace(",", ",,")


def create_overlay(instance: Instance) -> None:
    """A fresh root volume for INSTANCE: a qcow2 overlay on the (read-only) image, plus its own UEFI variables."""
    if instance.firmware not in FIRMWARES:
        raise ValueError(f"unknown firmware {instance.firmware!r} (one of {', '.join(FIRMWARES)})")
    if not instance.image.is_file():
        raise BootCheckError(f"{instance.image}: disk image not found")
    instance.work_dir.mkdir(parents=True, exist_ok=True)
    instance.overlay.unlink(missing_ok=True)
    if instance.in_place:
        _instance_devices(instance)
        return
    tool = shutil.which("qemu-img")
    if tool is None:
        raise BootCheckError("qemu-img not found (install qemu-utils)")
    proc = subprocess.run(
        [tool, "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(instance.image.resolve()), str(instance.overlay)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BootCheckError(f"{instance.overlay}: qemu-img create failed: {proc.stderr.strip()}")
    _instance_devices(instance)


def _instance_devices(instance: Instance) -> None:
    """What a new instance gets besides its root volume: its own UEFI variables, blank instance-store disks."""
    if instance.firmware == "uefi":
        if not OVMF_CODE.is_file():
            raise BootCheckError(f"{OVMF_CODE} not found (install ovmf)")
        shutil.copyfile(OVMF_VARS, instance.efi_vars)
    for index in range(len(instance.instance_store)):  # a new root volume: a new instance, blank instance store
        instance.instance_store_disk(index).unlink(missing_ok=True)
    create_instance_store(instance)


def create_instance_store(instance: Instance) -> None:
    """The instance-store disks INSTANCE lacks, blank and sparse (existing ones are kept: a reboot keeps them)."""
    for index, size in enumerate(instance.instance_store):
        path = instance.instance_store_disk(index)
        if path.exists() and path.stat().st_size == size:
            continue
        with path.open("wb") as fh:
            fh.truncate(size)


def qemu_argv(instance: Instance, console_log: Path) -> list[str]:
    """The QEMU command line of INSTANCE (TCG: this machine has no usable KVM)."""
    machine = "q35" if instance.firmware == "uefi" else "pc"
    argv = [
        "qemu-system-x86_64", "-accel", "tcg", "-machine", machine,
        "-m", str(instance.memory_mb), "-smp", str(instance.cpus),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-chardev", f"file,id=ser0,path={_opt(console_log)}", "-serial", "chardev:ser0",
        "-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
        "-smbios", f"type=1,manufacturer=Amazon EC2,product={instance.instance_type},"
        f"serial={instance.system_uuid()},uuid={instance.system_uuid()}",
        "-smbios", f"type=3,manufacturer=Amazon EC2,asset={instance.instance_id}",
    ]  # fmt: skip
    if instance.in_place:
        argv += ["-drive", f"file={_opt(instance.image)},format=raw,if=virtio"]
    else:
        argv += ["-drive", f"file={_opt(instance.overlay)},format=qcow2,if=virtio"]
    for index in range(len(instance.instance_store)):
        argv += [
            "-drive", f"file={_opt(instance.instance_store_disk(index))},format=raw,if=none,id=store{index}",
            "-device", f"nvme,drive=store{index},serial={instance.instance_store_serial(index)}",
        ]  # fmt: skip
    if instance.firmware == "uefi":
        argv += [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_opt(OVMF_CODE)}",
            "-drive", f"if=pflash,format=raw,unit=1,file={_opt(instance.efi_vars)}",
        ]  # fmt: skip
    netdev = f"user,id=net0,net={GUEST_NET},restrict=on"
    forwards = list(instance.forwards)
    if instance.imds_port is not None:
        forwards.insert(0, (IMDS_ADDRESS, 80, instance.imds_port))
    socat = shutil.which("socat") or "socat"
    for address, port, host_port in forwards:
        netdev += f",guestfwd=tcp:{address}:{port}-cmd:{socat} - TCP:127.0.0.1:{host_port}"
    if instance.ssh_port is not None:
        netdev += f",hostfwd=tcp:127.0.0.1:{instance.ssh_port}-:22"
    argv += ["-netdev", netdev, "-device", f"virtio-net-pci,netdev=net0,mac={instance.mac}"]
    return argv


def console_tail(path: Path, lines: int = CONSOLE_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").replace("\r", "")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if not line.startswith("+ ")][-lines:])


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _goal(until: str | Callable[[str], bool] | None, default: str) -> str:
    if until is None:
        return default
    if isinstance(until, str):
        return repr(until)
    return str(getattr(until, "__doc__", None) or "the awaited console lines")


def run_to_report(
    cmd: list[str],
    console: Path,
    *,
    timeout: float,
    poweroff_grace: float = 30,
    label: str,
    marks: dict[str, str] | None = None,
    keep_running: bool = False,
    until: str | Callable[[str], bool] | None = None,
) -> tuple[LaunchResult, subprocess.Popen[bytes] | None]:
    """Run CMD (QEMU) until the boot probe's report appears on CONSOLE; return it and how long it took.

    Raises :class:`BootCheckError` with the console's last lines if QEMU exits first, no report arrives within
    TIMEOUT seconds, or the report is malformed. MARKS maps a name to a console substring: the result records
    when each first appeared. With ``keep_running`` the VM is left up and its process returned (the caller
    stops it with :func:`kill_group`); otherwise QEMU is given POWEROFF_GRACE seconds to power off, then killed.
    With ``until`` the run ends as soon as that console substring appears (report ``{}``, QEMU killed): a boot
    that only has to show how far it got (e.g. which slot the boot loader chose); a callable ``until`` is asked with
    the whole console text so far (several boots of one run: a guest that reboots itself).
    """
    qemu = shutil.which(cmd[0])
    if qemu is None:
        raise BootCheckError(f"{cmd[0]} not found on PATH (install qemu-system-x86)")
    cmd = [qemu, *cmd[1:]]
    console.parent.mkdir(parents=True, exist_ok=True)
    console.write_bytes(b"")
    qemu_log = console.with_name(console.name + ".qemu")
    wanted = dict(marks or {})
    seen_at: dict[str, float] = {}
    start = time.monotonic()
    with qemu_log.open("wb") as qlog:
        qlog.write(("+ " + shlex.join(cmd) + "\n").encode())
        qlog.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=qlog, stderr=subprocess.STDOUT, start_new_session=True
        )
    handed_over = False
    try:
        seen = ""
        offset = 0
        while True:
            with console.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            seen += chunk.decode(errors="replace")
            now = time.monotonic() - start
            for name, needle in wanted.items():
                if name not in seen_at and needle in seen:
                    seen_at[name] = round(now, 1)
            reached = until(seen) if callable(until) else until is not None and until in seen
            if reached or (until is None and PROBE_END in seen and PROBE_BEGIN in seen):
                seconds = now
                break
            rc = proc.poll()
            if rc is not None:
                raise BootCheckError(
                    f"{label}: QEMU exited (code {rc}) after {now:.0f}s without "
                    f"{_goal(until, 'a boot probe report')}; "
                    f"QEMU output: {console_tail(qemu_log, 5)}",
                    console_log=console,
                    console_tail=console_tail(console),
                )
            if now > timeout:
                raise BootCheckError(
                    f"{label}: no {_goal(until, 'boot probe report')} within {timeout:.0f}s; QEMU killed",
                    console_log=console,
                    console_tail=console_tail(console),
                )
            time.sleep(0.5)
        if until is not None:
            kill_group(proc)
        try:
            report = parse_probe_report(seen) if until is None else {}
        except ProbeReportError as exc:
            raise BootCheckError(f"{label}: {exc}", console_log=console, console_tail=console_tail(console)) from exc
        powered_off = False
        if keep_running:
            handed_over = True
        else:
            try:
                proc.wait(timeout=poweroff_grace)
                powered_off = proc.returncode == 0
            except subprocess.TimeoutExpired:
                powered_off = False
            seen = console.read_bytes().decode(errors="replace")
    finally:
        if not handed_over:
            kill_group(proc)
    result = LaunchResult(
        report=report,
        seconds=round(seconds, 1),
        console_log=console,
        powered_off=powered_off,
        console_text=seen.replace("\r", ""),
        marks=seen_at,
    )
    return result, (proc if handed_over else None)
