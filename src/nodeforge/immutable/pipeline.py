"""One call for the bake pipeline: seal a rootfs tar, build the self-booting A/B disk, optionally boot it once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nodeforge.immutable.seal import SealedRoot, seal_rootfs
from nodeforge.vm.ab_boot import EXAMPLE_DNS, EXAMPLE_SETTINGS, ImmutableBootResult, boot_disk
from nodeforge.vm.ab_disk import create_disk

DISK_NAME = "disk.img"
SEALED_DIR = "sealed"
T = TypeVar("T")


@dataclass
class ImmutableReport:
    """What :func:`bake_immutable` produced: sealed root, disk, sizes, timings and the boot outcome."""

    sealed: SealedRoot
    disk: Path
    disk_bytes: int
    disk_allocated_bytes: int
    timings: dict[str, float] = field(default_factory=dict)
    boot: ImmutableBootResult | None = None

    @property
    def root_hash(self) -> str:
        return self.sealed.root_hash

    def to_dict(self) -> dict[str, Any]:
        return {
            "root_hash": self.root_hash,
            "sealed_dir": str(self.sealed.directory),
            "seal_json": str(self.sealed.directory / "seal.json"),
            "fs_type": self.sealed.fs_type,
            "kernel_version": self.sealed.kernel_version,
            "sizes": {
                "rootfs_tar_bytes": self.sealed.rootfs_tar_bytes,
                "sealed_image_bytes": self.sealed.image_bytes,
                "hash_tree_bytes": self.sealed.hash_bytes,
                "initramfs_bytes": self.sealed.initrd_bytes,
                "removed_bytes": self.sealed.removed_bytes,
                "disk_bytes": self.disk_bytes,
                "disk_allocated_bytes": self.disk_allocated_bytes,
            },
            "disk": str(self.disk),
            "timings": self.timings,
            "seal_timings": self.sealed.timings,
            "boot": None if self.boot is None else self.boot.to_dict(),
        }


def bake_immutable(
    rootfs_tar: Path,
    out_dir: Path,
    *,
    boot: bool,
    settings: Path | None = None,
    stage: Callable[[str, Callable[[], T]], T] | None = None,
    boot_timeout: float = 300,
    sealed: SealedRoot | None = None,
) -> ImmutableReport:
    """Seal ``rootfs_tar`` into ``out_dir/sealed``, build ``out_dir/disk.img`` (slot A), boot it if ``boot``.

    ``settings`` is the TOML settings file put on the state partition and, for the boot, served as the instance's
    user data by a fake IMDSv2 (the node renders /etc from it as on EC2); default: an example cluster
    (``out_dir/settings.toml``). ``stage(name, fn)`` wraps each step (progress
    reporting); by default the steps just run. The boot result is in the report; a failed check
    does not raise (the caller decides), a boot that never reports raises ``BootCheckError``.
    ``sealed``: a root sealed already (``nodeforge image seal-image``, the Packer template's seal step): the
    seal step is skipped and ``rootfs_tar`` only named in the report.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def step(name: str, fn: Callable[[], T]) -> T:
        started = time.monotonic()
        try:
            return stage(name, fn) if stage is not None else fn()
        finally:
            timings[name] = round(time.monotonic() - started, 2)

    expect_dns: str | None = None
    if settings is None:
        settings = out_dir / "settings.toml"
        settings.write_text(EXAMPLE_SETTINGS)
        expect_dns = EXAMPLE_DNS
    if sealed is None:
        sealed = step("seal", lambda: seal_rootfs(rootfs_tar, out_dir / SEALED_DIR))
    disk = out_dir / DISK_NAME
    root = sealed
    step("disk", lambda: create_disk(disk, root, settings=settings))
    st = disk.stat()
    report = ImmutableReport(
        sealed=root, disk=disk, disk_bytes=st.st_size, disk_allocated_bytes=st.st_blocks * 512, timings=timings
    )
    if boot:  # the settings as EC2 hands them over: TOML user data over IMDSv2 (a fake one on the host)
        user_data = settings.read_text()
        report.boot = step(
            "boot", lambda: boot_disk(disk, timeout=boot_timeout, expect_dns=expect_dns, user_data=user_data)
        )
    return report
