"""Boot a baked rootfs as a raw ext4 disk under QEMU (TCG, no network) and check it comes up.

Inputs (environment):
  NODEFORGE_BOOT_ROOTFS_TAR    rootfs tar to boot (the bake pipeline's `docker export`); skipped if unset
  NODEFORGE_BOOT_PROBE_UNITS   comma-separated units that must be active (default: containerd)
  NODEFORGE_BOOT_TIMEOUT       seconds to wait for the boot probe report (default: 300)
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from nodeforge.vm.disk import boot_check, build_disk_image

pytestmark = pytest.mark.e2e

_TAR_ENV = "NODEFORGE_BOOT_ROOTFS_TAR"


def _rootfs_tar() -> Path:
    value = os.environ.get(_TAR_ENV, "").strip()
    if not value:
        pytest.skip(f"{_TAR_ENV} not set (path to the baked image's `docker export` tar)")
    return Path(value)


def _probe_units() -> list[str]:
    raw = os.environ.get("NODEFORGE_BOOT_PROBE_UNITS", "containerd")
    return [u.strip() for u in raw.split(",") if u.strip()]


@pytest.mark.skipif(os.geteuid() != 0, reason="building the disk image needs root (numeric owners, mkfs -d)")
@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed")
@pytest.mark.skipif(not shutil.which("mkfs.ext4"), reason="mkfs.ext4 not installed")
def test_rootfs_boots_under_qemu(tmp_path):
    tar = _rootfs_tar()
    units = _probe_units()

    t0 = time.monotonic()
    image = build_disk_image(tar, tmp_path / "image", probe_units=units)
    build_s = time.monotonic() - t0
    print(
        f"\nbuild_disk_image: {build_s:.1f}s, disk {image.size_bytes / 2**20:.0f} MiB, "
        f"kernel {image.kernel_version}, modifications: {image.modifications}"
    )

    timeout = float(os.environ.get("NODEFORGE_BOOT_TIMEOUT", "300"))
    t0 = time.monotonic()
    # off EC2 there is no metadata service: the bootstrap unit stands aside, as in the bake
    result = boot_check(image, timeout=timeout, extra_cmdline=["nodeforge.bootstrap=0"])
    boot_s = time.monotonic() - t0
    print(f"boot_check: {boot_s:.1f}s total, report after {result.seconds:.1f}s")
    print(f"BootResult: {result}")

    source, fstype, options = [*result.root_mount.split(), "", "", ""][:3]
    assert result.ok, (
        f"system state {result.system_state!r}, failed units {result.failed_units}, "
        f"pending jobs {result.report.get('jobs')}; console log {result.console_log}"
    )
    assert source == "/dev/vda", result.root_mount
    assert fstype == "ext4", result.root_mount
    assert "rw" in options.split(","), result.root_mount
    for unit in units:
        assert result.unit_states.get(unit) == "active", f"{unit}: {result.unit_states}"
