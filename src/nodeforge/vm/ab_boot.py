"""Boot an A/B disk image under QEMU (TCG) from the disk alone, as EC2 would, and check the sealed-root facts.

The disk's own GRUB (SeaBIOS or OVMF firmware, :mod:`nodeforge.vm.qemu`) reads the slot state from the grubenv on
the ESP, takes a try if the slot is pending, and boots the slot's kernel and initramfs with
``nodeforge.slot= nodeforge.roothash= nodeforge.hashoffset=`` on the command line
(:mod:`nodeforge.vm.ab_grub`). The VM writes the disk image in place, so what GRUB recorded is what the
host reads afterwards. The boot probe of :mod:`nodeforge.vm.disk` (installed at seal time, with the sealed-root
extras of :mod:`nodeforge.immutable.layout`) reports back over the serial console; when every check passes the
slot is marked successful (host side, in the same grubenv).

The boot check's kernel arguments (probe on, IMDS readers off: this VM has no metadata service) go into the
grubenv's ``nf_cmdline`` for that boot only and are cleared afterwards: the disk as shipped has none.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nodeforge.immutable.initramfs import SWITCH_MARK, VERITY_NAME
from nodeforge.immutable.layout import LOCAL_SETTINGS_FLAG
from nodeforge.immutable.update import grub_choice, mark_successful
from nodeforge.vm import ab_grub, qemu
from nodeforge.vm import disk as diskimage
from nodeforge.vm.ab_disk import DiskLayout, read_layout
from nodeforge.vm.imds import FakeImdsServer

EXAMPLE_SETTINGS = """\
[settings.kubernetes]
cluster-name = "sealed-test"
api-server = "https://example.eks.amazonaws.com"
cluster-certificate = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCm5vZGVmb3JnZSB0ZXN0Ci0tLS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
cluster-dns-ip = "10.100.0.10"
max-pods = 29
"""
EXAMPLE_DNS = "10.100.0.10"

#: Kernel command line for a boot check: the units that read IMDS are skipped (this boot has no NIC): the
#: bootstrap agent and cloud-init (its generator honours ``cloud-init=disabled``; otherwise its Ec2 datasource
#: waits 120 s for 169.254.169.254 and the unit fails); the local settings file renders /etc instead, and the
#: fixture kubelet (no cluster to join) is masked.
BOOT_CHECK_CMDLINE: tuple[str, ...] = (
    "nodeforge.bootstrap=0",
    "nodeforge.markboot=0",
    "cloud-init=disabled",
    LOCAL_SETTINGS_FLAG,
    "systemd.mask=kubelet.service",
)
#: Kernel command line for a boot check with the settings from IMDS (a fake IMDSv2 on the host, reached through the
#: VM's NIC): the EC2 bootstrap unit reads the TOML user data and renders /etc, as on EC2. cloud-init is off (the
#: sealed node's settings come from the agent; its Ec2 datasource would add minutes under TCG); the fixture kubelet
#: is masked.
IMDS_CHECK_CMDLINE: tuple[str, ...] = ("cloud-init=disabled", "systemd.mask=kubelet.service", "nodeforge.markboot=0")
# (Both boot checks mask the kubelet, so the node's own mark-boot unit, which requires it, is off: the host marks a
# boot check's slot when every check passes. run_on_node boots with the node's own units deciding.)
#: Kernel command line of :func:`run_on_node`: no boot probe (it would power off), the node's own units decide; the
#: serial console stays the kernel's and the units' (journal+console), network up for IMDS and the update source.
NODE_RUN_CMDLINE: tuple[str, ...] = (
    "console=ttyS0",
    "systemd.show_status=auto",
    "net.ifnames=0",
    "mitigations=off",
    "panic=-1",
    "systemd.mask=serial-getty@ttyS0.service",
    "cloud-init=disabled",
)
_WAIT_ONLINE_MASK = "systemd.mask=systemd-networkd-wait-online.service"


@dataclass
class ImmutableBootResult:
    """One boot of an A/B disk: the chosen slot, the probe's report, and the sealed-root checks."""

    disk: Path
    slot: str
    root_hash: str
    consumed_try: bool
    skipped: str
    boot: diskimage.BootResult
    checks: dict[str, bool] = field(default_factory=dict)
    marked_successful: bool = False
    seconds: float = 0.0
    firmware: str = "bios"

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def facts(self) -> dict[str, Any]:
        extra = self.boot.report.get("extra")
        return extra if isinstance(extra, dict) else {}

    def to_dict(self) -> dict[str, Any]:
        boot = asdict(self.boot)
        boot["console_log"] = str(self.boot.console_log)
        return {
            "disk": str(self.disk),
            "slot": self.slot,
            "firmware": self.firmware,
            "root_hash": self.root_hash,
            "consumed_try": self.consumed_try,
            "skipped": self.skipped,
            "ok": self.ok,
            "checks": self.checks,
            "marked_successful": self.marked_successful,
            "seconds": round(self.seconds, 1),
            "facts": self.facts,
            "boot": {k: boot[k] for k in ("system_state", "failed_units", "unit_states", "root_mount", "seconds")},
            "console_log": str(self.boot.console_log),
        }


def evaluate(
    result: diskimage.BootResult, *, expect_dns: str | None, units: Sequence[str], source: str = "local"
) -> dict[str, bool]:
    """The sealed-root checks, each True/False, from the probe's report.

    ``source``: where the settings came from, ``local`` (the state partition's file, local-settings unit) or
    ``imds`` (the TOML user data over IMDSv2, the EC2 bootstrap unit).
    """
    facts = result.report.get("extra") if isinstance(result.report.get("extra"), dict) else {}
    get = lambda key: str(facts.get(key, ""))  # noqa: E731
    checks = {
        "system running, no failed units": result.ok,
        "root from dm-verity device": get("root_source") == f"/dev/mapper/{VERITY_NAME}"
        and " verity " in f" {get('dm_table')} ",
        "dm-verity status verified (V)": get("dm_status").strip().endswith(" V"),
        "root read-only (/ and /usr)": get("root_options").split(",")[0] == "ro"
        and get("root_writable") == "no"
        and get("usr_writable") == "no",
        "/etc is a writable overlay": get("etc_fstype") == "overlay" and get("etc_writable") == "yes",
        "/var writable (state partition)": get("var_fstype") == "ext4" and get("var_writable") == "yes",
        "/opt/cni is an overlay": get("opt_cni_fstype") == "overlay",
        # kubelet, containerd, runc, the agent and their configuration on the verity device itself
        "node components in the sealed root": "sealed_missing" in facts and get("sealed_missing").strip() == "",
    }
    for unit in units:
        checks[f"{unit} active"] = result.unit_states.get(unit) == "active"
    if expect_dns:
        if source == "imds":
            agent = result.unit_states.get("nodeforge-bootstrap")
            name, ran = "/etc rendered from the IMDS user data", agent == "active"
        else:
            name, ran = "/etc rendered from settings", get("local_settings") == "active"
        checks[name] = (
            ran and expect_dns in get("kubelet_config_dns").split(",") and get("kubelet_config_in_upper") == "yes"
        )
        checks["sealed /etc unchanged"] = expect_dns not in get("sealed_kubelet_config_dns").split(",")
    return checks


@dataclass
class _Before:
    """What the grubenv says before power-on: the slot GRUB should pick, and its state."""

    slot: str
    tries: int
    skipped: str


def _before(layout: DiskLayout) -> _Before:
    record, _env, slot, _changes, skipped = grub_choice(layout)
    return _Before(slot=slot, tries=record.slots[slot].tries_left, skipped=skipped)


def _set_cmdline(layout: DiskLayout, cmdline: str) -> None:
    env = layout.read_env()
    env["nf_cmdline"] = cmdline
    layout.write_env(env)


def _run(
    disk: Path,
    *,
    firmware: str,
    memory_mb: int,
    timeout: float,
    console: Path,
    until: str | None,
    cmdline: str,
    imds_port: int | None = None,
) -> tuple[qemu.LaunchResult, DiskLayout]:
    with _in_place(disk, firmware=firmware, memory_mb=memory_mb, cmdline=cmdline, imds_port=imds_port) as (
        instance,
        layout,
    ):
        result, _ = qemu.run_to_report(
            qemu.qemu_argv(instance, console),
            console,
            timeout=timeout,
            label=f"{firmware} boot of {disk}",
            marks={"grub": ab_grub.GRUB_MARK, "initramfs": SWITCH_MARK},
            until=until,
        )
    return result, layout


@contextlib.contextmanager
def _in_place(
    disk: Path,
    *,
    firmware: str,
    memory_mb: int,
    cmdline: str,
    imds_port: int | None = None,
    forwards: tuple[tuple[str, int, int], ...] = (),
) -> Iterator[tuple[qemu.Instance, DiskLayout]]:
    """An instance booting the disk itself (its grubenv is the state the host reads between boots), with
    ``cmdline`` in the grubenv's ``nf_cmdline`` while the context lasts (removed after, with the VM's work dir)."""
    layout = read_layout(disk)
    instance = qemu.Instance(
        image=disk,
        work_dir=disk.with_name(f"{disk.name}.vm"),
        firmware=firmware,
        memory_mb=memory_mb,
        in_place=True,
        imds_port=imds_port,
        forwards=forwards,
    )
    qemu.create_overlay(instance)
    _set_cmdline(layout, cmdline)
    try:
        yield instance, layout
    finally:
        _set_cmdline(layout, "")
        shutil.rmtree(instance.work_dir, ignore_errors=True)


def _booted(layout: DiskLayout, console_text: str) -> tuple[str, str, int]:
    """``(slot GRUB recorded in nf_boot, slot the initramfs opened, tries left)`` after a boot."""
    env = layout.read_env()
    slot = env.get("nf_boot", "")
    found = re.findall(r"nodeforge-initramfs: slot ([ab]): root hash ([0-9a-f]+) open through dm-verity", console_text)
    opened = found[-1][0] if found else ""
    tries = int(env.get(ab_grub.var(slot, "tries"), "0") or 0) if slot in ab_grub.SLOTS else 0
    return slot, opened, tries


@dataclass
class SlotBoot:
    """A boot from the disk alone up to the initramfs's switch to the verity root (no systemd, no checks)."""

    disk: Path
    firmware: str
    slot: str
    """The slot GRUB booted (its ``nf_boot`` in the grubenv)."""
    opened: str
    """The slot the initramfs opened through dm-verity (console)."""
    root_hash: str
    consumed_try: bool
    tries_left: int
    skipped: str
    seconds: float
    marks: dict[str, float]
    console_log: Path

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "disk": str(self.disk), "console_log": str(self.console_log)}


def boot_slot(
    disk: Path,
    *,
    firmware: str = "bios",
    timeout: float = 240,
    memory_mb: int = 1024,
    console_log: Path | None = None,
) -> SlotBoot:
    """Power the disk on with ``firmware`` and stop once the initramfs switches to the slot GRUB chose.

    Shows which slot the disk's boot loader picked, that the try was taken, and that the slot's root opened
    through dm-verity -- in ~20 s under TCG instead of a full boot. The kernel command line is the shipped one.
    Raises :class:`~nodeforge.vm.disk.BootCheckError` (console tail) if that point is not reached.
    """
    disk = Path(disk)
    before = _before(read_layout(disk))
    console = console_log or disk.with_name(f"{disk.stem}-{firmware}-console.log")
    result, layout = _run(
        disk, firmware=firmware, memory_mb=memory_mb, timeout=timeout, console=console, until=SWITCH_MARK, cmdline=""
    )
    slot, opened, tries = _booted(layout, result.console_text)
    record = layout.read_record()
    return SlotBoot(
        disk=disk,
        firmware=firmware,
        slot=slot,
        opened=opened,
        root_hash=record.slots[slot].root_hash if slot in ab_grub.SLOTS else "",
        consumed_try=slot == before.slot and tries < before.tries,
        tries_left=tries,
        skipped=before.skipped,
        seconds=result.seconds,
        marks=result.marks,
        console_log=console,
    )


def boot_disk(
    disk: Path,
    *,
    firmware: str = "bios",
    timeout: float = 300,
    mark: bool = True,
    expect_dns: str | None = EXAMPLE_DNS,
    probe_units: Sequence[str] | None = None,
    memory_mb: int = 1024,
    console_log: Path | None = None,
    extra_cmdline: Sequence[str] | None = None,
    user_data: str | None = None,
) -> ImmutableBootResult:
    """Boot ``disk`` once from the disk alone (GRUB picks the slot) and check the sealed-root facts.

    Settings: with ``user_data`` (Bottlerocket TOML) the VM gets a NIC and a fake IMDSv2 serving it, and the EC2
    bootstrap unit renders /etc from it (:data:`IMDS_CHECK_CMDLINE`); without, the local-settings unit renders it
    from the state partition's settings file (:data:`BOOT_CHECK_CMDLINE`). The guest writes the disk (GRUB's
    try, first-boot seeding of the state partition). With ``mark`` the slot is marked successful when every
    check passes. Raises :class:`~nodeforge.vm.disk.BootCheckError` if no report arrives.
    """
    disk = Path(disk)
    started = time.monotonic()
    before = _before(read_layout(disk))
    source = "local" if user_data is None else "imds"
    if extra_cmdline is None:
        extra_cmdline = BOOT_CHECK_CMDLINE if user_data is None else IMDS_CHECK_CMDLINE
    if probe_units is None:
        probe_units = ("containerd",) if user_data is None else ("containerd", "nodeforge-bootstrap")
    probe_wait = max(20, int(timeout * 0.6))
    args = diskimage.kernel_cmdline(probe_wait=probe_wait, extra=extra_cmdline, root_args=()).split()
    if user_data is not None:  # the agent needs the network up to reach IMDS: wait for it, as on EC2
        args = [a for a in args if a != _WAIT_ONLINE_MASK]
    console = console_log or disk.with_name(f"{disk.stem}-console.log")
    with contextlib.ExitStack() as stack:
        port = None
        if user_data is not None:
            imds = stack.enter_context(FakeImdsServer())
            imds.user_data = user_data.encode()
            port = int(imds.endpoint.rsplit(":", 1)[1])
        launched, layout = _run(
            disk,
            firmware=firmware,
            memory_mb=memory_mb,
            timeout=timeout,
            console=console,
            until=None,
            cmdline=" ".join(args),
            imds_port=port,
        )
    report = launched.report
    result = diskimage.BootResult(
        system_state=report["state"],
        failed_units=report["failed"],
        unit_states=report["units"],
        root_mount=report["root"],
        seconds=launched.seconds,
        console_log=console,
        powered_off=launched.powered_off,
        report=report,
    )
    slot, opened, tries = _booted(layout, launched.console_text)
    record = layout.read_record()
    facts = report.get("extra") if isinstance(report.get("extra"), dict) else {}
    checks = {
        f"GRUB ({firmware}) chose slot {before.slot.upper()}, as the grubenv says": slot == before.slot,
        "the initramfs opened that slot": opened == slot and f"slot={slot} " in str(facts.get("boot_env", "")),
    }
    checks.update(evaluate(result, expect_dns=expect_dns, units=probe_units, source=source))
    outcome = ImmutableBootResult(
        disk=disk,
        slot=slot,
        root_hash=record.slots[slot].root_hash if slot in ab_grub.SLOTS else "",
        consumed_try=slot == before.slot and tries < before.tries,
        skipped=before.skipped,
        boot=result,
        checks=checks,
        firmware=firmware,
    )
    if mark and outcome.ok:
        mark_successful(disk)
        outcome.marked_successful = True
    outcome.seconds = time.monotonic() - started
    return outcome


@dataclass
class NodeRun:
    """One QEMU run of the disk in which the node may reboot itself any number of times (no host action between)."""

    disk: Path
    firmware: str
    console_text: str
    console_log: Path
    seconds: float
    boots: list[str]
    """The slots GRUB booted, in order (its console lines)."""

    def to_dict(self) -> dict[str, Any]:
        return {"disk": str(self.disk), "firmware": self.firmware, "boots": self.boots,
                "seconds": round(self.seconds, 1), "console_log": str(self.console_log)}  # fmt: skip


UPDATE_SERVER = ("169.254.100.1", 8080)
"""Where :func:`run_on_node`'s guest reaches the host's file server (a guestfwd: the user network stays restricted)."""


def update_url(path: str) -> str:
    """The guest's URL of ``path`` under :func:`run_on_node`'s ``serve`` directory."""
    return f"http://{UPDATE_SERVER[0]}:{UPDATE_SERVER[1]}/{path.strip('/')}/"


@contextlib.contextmanager
def _file_server(directory: Path) -> Iterator[int]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port, yielded) while the context lasts."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


_GRUB_BOOT = re.compile(re.escape(ab_grub.GRUB_MARK) + r" booting slot ([ab]) ")


def grub_boots(console_text: str) -> list[str]:
    """The slots GRUB booted in a run, in order, from its ``nodeforge-grub: booting slot S`` console lines."""
    return _GRUB_BOOT.findall(console_text)


def run_on_node(
    disk: Path,
    *,
    until: Callable[[str, Any], bool],
    user_data: str,
    firmware: str = "bios",
    timeout: float = 1200,
    memory_mb: int = 1536,
    extra_cmdline: Sequence[str] = (),
    console_log: Path | None = None,
    serve: Path | None = None,
) -> NodeRun:
    """Power the disk on and let the node run its own units, rebooting itself (QEMU without ``-no-reboot``).

    The user data (settings) is served by a fake IMDSv2; ``until(console_text, imds)`` is asked every half second
    with the whole console so far and the IMDS state (whose ``user_data`` it may change: a new user data for the
    next boot, as on a stopped instance) and ends the run when it returns True (QEMU is killed). The command line
    (:data:`NODE_RUN_CMDLINE` + ``extra_cmdline``, e.g. ``nodeforge.health_timeout=60``) goes into the grubenv's
    ``nf_cmdline`` for the run and is removed afterwards. ``serve``: a directory the host serves over HTTP to the
    guest at :data:`UPDATE_SERVER` (``http://169.254.100.1:8080/...``: sealed roots for on-node updates). Raises
    :class:`~nodeforge.vm.disk.BootCheckError` (console tail) when QEMU stops first or ``timeout`` passes.
    """
    disk = Path(disk)
    console = console_log or disk.with_name(f"{disk.stem}-node-{firmware}-console.log")
    with contextlib.ExitStack() as stack:
        imds = stack.enter_context(FakeImdsServer())
        imds.user_data = user_data.encode()
        forwards: tuple[tuple[str, int, int], ...] = ()
        if serve is not None:
            forwards = ((*UPDATE_SERVER, stack.enter_context(_file_server(Path(serve)))),)
        instance, _layout = stack.enter_context(
            _in_place(
                disk,
                firmware=firmware,
                memory_mb=memory_mb,
                cmdline=" ".join([*NODE_RUN_CMDLINE, *extra_cmdline]),
                imds_port=int(imds.endpoint.rsplit(":", 1)[1]),
                forwards=forwards,
            )
        )
        argv = [a for a in qemu.qemu_argv(instance, console) if a != "-no-reboot"]

        def done(text: str) -> bool:
            """the console lines the run waits for"""
            return until(text, imds)

        result, _ = qemu.run_to_report(
            argv, console, timeout=timeout, label=f"{firmware} run of {disk} (node reboots itself)", until=done
        )
    return NodeRun(
        disk=disk,
        firmware=firmware,
        console_text=result.console_text,
        console_log=console,
        seconds=result.seconds,
        boots=grub_boots(result.console_text),
    )
