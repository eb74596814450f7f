"""Launch a given baked rootfs like EC2 (opt-in): its own GRUB, IMDSv2 user data, cloud-init.

Inputs (environment):
  NODEFORGE_BOOT_ROOTFS_TAR    rootfs tar to boot (the bake's `docker export`); skipped if unset
  NODEFORGE_BOOT_USER_DATA     user data file (default: the Karpenter-style AL2023 MIME nodeforge ships)
  NODEFORGE_BOOT_FIRMWARE      bios or uefi (default bios)
  NODEFORGE_BOOT_TIMEOUT       seconds to wait for the node's report (default 900)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from nodeforge.vm.launch import DEFAULT_USER_DATA, LaunchOptions, build_launch_disk, launch

pytestmark = pytest.mark.e2e

_TAR_ENV = "NODEFORGE_BOOT_ROOTFS_TAR"


@pytest.mark.skipif(os.geteuid() != 0, reason="building the disk image needs root (numeric owners, mkfs -d)")
@pytest.mark.skipif(not shutil.which("qemu-system-x86_64"), reason="qemu-system-x86_64 not installed")
def test_given_rootfs_configures_itself_at_first_boot(tmp_path):
    value = os.environ.get(_TAR_ENV, "").strip()
    if not value:
        pytest.skip(f"{_TAR_ENV} not set (path to the baked image's `docker export` tar)")
    disk = build_launch_disk(Path(value), tmp_path / "disk")
    user_data = Path(os.environ.get("NODEFORGE_BOOT_USER_DATA", DEFAULT_USER_DATA)).read_bytes()
    node = launch(
        LaunchOptions(
            disk=disk.disk,
            work_dir=tmp_path / "instance",
            user_data=user_data,
            firmware=os.environ.get("NODEFORGE_BOOT_FIRMWARE", "bios"),
            timeout=float(os.environ.get("NODEFORGE_BOOT_TIMEOUT", "900")),
        )
    )
    print(f"report after {node.seconds} s, marks {node.marks}")
    assert node.ok, node.problems
