"""Boot an A/B disk image under QEMU (TCG) the way a boot loader would, and check the sealed-root facts.

The host plays the boot loader (QEMU boots the kernel directly, there is no firmware boot loader):
:func:`~nodeforge.immutable.update.begin_boot` picks the slot from the boot record and consumes a
try if it is pending; its kernel and initramfs are read out of the slot (sha256-checked) and booted
with ``nodeforge.slot= nodeforge.roothash= nodeforge.hashoffset=`` on the command line -- which is
how Bottlerocket's GRUB passes the verity root hash. The boot probe of :mod:`nodeforge.vm.disk`
(installed at seal time, with the sealed-root extras of :mod:`nodeforge.immutable.layout`) reports
back over the serial console; when every check passes the slot is marked successful.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nodeforge.immutable.disk import read_layout, read_region
from nodeforge.immutable.errors import DiskError
from nodeforge.immutable.initramfs import VERITY_NAME
from nodeforge.immutable.layout import LOCAL_SETTINGS_FLAG
from nodeforge.immutable.update import begin_boot, mark_successful
from nodeforge.vm import disk as diskimage

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
    "cloud-init=disabled",
    LOCAL_SETTINGS_FLAG,
    "systemd.mask=kubelet.service",
)


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


def evaluate(result: diskimage.BootResult, *, expect_dns: str | None, units: Sequence[str]) -> dict[str, bool]:
    """The sealed-root checks, each True/False, from the probe's report."""
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
        checks["/etc rendered from settings"] = (
            get("local_settings") == "active"
            and expect_dns in get("kubelet_config_dns").split(",")
            and get("kubelet_config_in_upper") == "yes"
        )
        checks["sealed /etc unchanged"] = expect_dns not in get("sealed_kubelet_config_dns").split(",")
    return checks


def boot_disk(
    disk: Path,
    *,
    timeout: float = 300,
    mark: bool = True,
    snapshot: bool = False,
    expect_dns: str | None = EXAMPLE_DNS,
    probe_units: Sequence[str] = ("containerd",),
    memory_mb: int = 1024,
    console_log: Path | None = None,
    extra_cmdline: Sequence[str] = BOOT_CHECK_CMDLINE,
) -> ImmutableBootResult:
    """Boot ``disk`` once (slot chosen from its boot record) and check the sealed-root facts.

    ``snapshot=False`` (default) lets the guest write the state partition (first-boot seeding persists);
    the boot record is updated on the host either way. With ``mark`` the slot is marked successful
    when every check passes. Raises :class:`~nodeforge.vm.disk.BootCheckError` if no report arrives.
    """
    disk = Path(disk)
    started = time.monotonic()
    layout = read_layout(disk)
    choice = begin_boot(disk)
    info = choice.info
    boot_dir = disk.with_name(f"{disk.name}.boot")
    boot_dir.mkdir(exist_ok=True)
    kernel, initrd = boot_dir / "vmlinuz", boot_dir / "initrd.img"
    for offset, size, want, dest in (
        (info.kernel_offset, info.kernel_size, info.kernel_sha256, kernel),
        (info.initrd_offset, info.initrd_size, info.initrd_sha256, initrd),
    ):
        if read_region(layout, choice.slot, offset, size, dest) != want:
            raise DiskError(f"{disk}: slot {choice.slot.upper()} {dest.name} does not match its recorded sha256")
    image = diskimage.DiskImage(disk=disk, kernel=kernel, initrd=initrd, size_bytes=disk.stat().st_size)
    root_args = [
        f"root=/dev/mapper/{VERITY_NAME}",
        "ro",
        f"nodeforge.slot={choice.slot}",
        f"nodeforge.roothash={info.root_hash}",
        f"nodeforge.hashoffset={info.hash_offset}",
    ]
    try:
        result = diskimage.boot_check(
            image,
            timeout=timeout,
            memory_mb=memory_mb,
            console_log=console_log or disk.with_name(f"{disk.stem}-console.log"),
            extra_cmdline=extra_cmdline,
            root_args=root_args,
            snapshot=snapshot,
        )
    finally:
        shutil.rmtree(boot_dir, ignore_errors=True)
    checks = evaluate(result, expect_dns=expect_dns, units=probe_units)
    outcome = ImmutableBootResult(
        disk=disk,
        slot=choice.slot,
        root_hash=info.root_hash,
        consumed_try=choice.consumed_try,
        skipped=choice.skipped,
        boot=result,
        checks=checks,
    )
    if mark and outcome.ok:
        mark_successful(disk)
        outcome.marked_successful = True
    outcome.seconds = time.monotonic() - started
    return outcome
