"""Seal the real baked rootfs (erofs + dm-verity), build the A/B disk, boot it under QEMU (TCG) and check it.

Then the A/B cycle on the real image: update slot B with the same sealed root, boot it (pending ->
successful), and refuse a tampered update.

Inputs (environment):
  NODEFORGE_IMMUTABLE_ROOTFS   baked rootfs tar (`docker export` of the node image); skipped if unset
  NODEFORGE_BOOT_TIMEOUT       seconds to wait for the boot probe report (default: 300)
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from nodeforge.immutable import UpdateRefusedError, bake_immutable, update
from nodeforge.immutable.boot import boot_disk

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("immutable")]

_TAR_ENV = "NODEFORGE_IMMUTABLE_ROOTFS"
_TOOLS = ("qemu-system-x86_64", "mkfs.erofs", "veritysetup", "sfdisk", "mkfs.ext4")


def _rootfs_tar() -> Path:
    value = os.environ.get(_TAR_ENV, "").strip()
    if not value:
        pytest.skip(f"{_TAR_ENV} not set (path to a baked rootfs tar, e.g. build/local/<tag>/rootfs.tar)")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"{_TAR_ENV}={value}: no such file")
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="sealing needs root (numeric owners)")
@pytest.mark.skipif(
    not all(shutil.which(t, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") for t in _TOOLS),
    reason=f"needs {', '.join(_TOOLS)} (scripts/setup.sh installs them)",
)
def test_sealed_root_boots_and_updates(tmp_path):
    tar = _rootfs_tar()
    timeout = float(os.environ.get("NODEFORGE_BOOT_TIMEOUT", "300"))

    report = bake_immutable(tar, tmp_path, boot=True, boot_timeout=timeout)
    print("\n" + json.dumps(report.to_dict(), indent=2))
    assert report.timings["seal"] < 120, report.timings
    assert report.sealed.image_bytes < report.sealed.rootfs_tar_bytes
    boot = report.boot
    assert boot is not None
    assert boot.ok, f"failed checks: {[k for k, v in boot.checks.items() if not v]}; facts {boot.facts}"
    assert boot.slot == "a" and boot.marked_successful
    assert boot.facts["root_fstype"] == "erofs"

    # Tampered update: refused, slot A stays active.
    tampered = tmp_path / "tampered"
    shutil.copytree(report.sealed.directory, tampered)
    with (tampered / "root.img").open("r+b") as fh:
        fh.seek(report.sealed.image_bytes // 3)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(UpdateRefusedError, match=r"root\.img"):
        update.update_slot(report.disk, tampered)
    assert update.status(report.disk)["selected"] == "a"

    # Good update into slot B: pending, boots, marked successful.
    started = time.monotonic()
    result = update.update_slot(report.disk, report.sealed.directory, root_hash=report.root_hash)
    print(f"update slot {result.slot}: {time.monotonic() - started:.1f}s {result.seconds}")
    assert update.status(report.disk)["slots"]["b"]["state"] == "pending"
    second = boot_disk(report.disk, timeout=timeout, snapshot=True)
    print(json.dumps(second.to_dict()["checks"], indent=2), f"boot {second.seconds:.1f}s")
    assert second.slot == "b" and second.consumed_try and second.ok
    assert update.status(report.disk)["slots"]["b"]["state"] == "good"
