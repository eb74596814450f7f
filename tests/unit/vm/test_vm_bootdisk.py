"""The self-booting disk, built for real from a tiny root (no QEMU): GPT layout, GRUB for BIOS and UEFI, root fs."""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from nodeforge.vm import bootdisk

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="extracting a root with numeric owners needs root"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("grub-mkimage", "mkfs.vfat", "mcopy", "sfdisk", "mkfs.ext4", "debugfs")),
        reason="GRUB, dosfstools, mtools, fdisk or e2fsprogs missing (scripts/setup.sh installs them)",
    ),
]


def _tiny_root_tar(path: Path) -> Path:
    files = {
        "boot/vmlinuz-6.1.0-9-cloud-amd64": b"kernel-old",
        "boot/initrd.img-6.1.0-9-cloud-amd64": b"initrd-old",
        "boot/vmlinuz-6.1.0-30-cloud-amd64": b"kernel-new",
        "boot/initrd.img-6.1.0-30-cloud-amd64": b"initrd-new",
        "etc/fstab": b"# UNCONFIGURED FSTAB\n/dev/sda1 / ext4 defaults 0 1\n",
        "etc/hosts": b"",
    }
    with tarfile.open(path, "w") as tar:
        for name in ("boot", "etc", "usr", "usr/bin"):
            info = tarfile.TarInfo(name)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
        marker = tarfile.TarInfo(".dockerenv")
        tar.addfile(marker, io.BytesIO(b""))
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> bootdisk.BootDisk:
    tmp = tmp_path_factory.mktemp("bootdisk")
    tar = _tiny_root_tar(tmp / "root.tar")
    return bootdisk.build_boot_disk(tar, tmp / "out", cmdline_extra=["nodeforge.test=1"])


def _partition_bytes(disk: bootdisk.BootDisk, number: int, dest: Path) -> Path:
    start, size = disk.partitions[number]
    with disk.disk.open("rb") as src, dest.open("wb") as out:
        src.seek(start)
        remaining = size
        while remaining:
            chunk = src.read(min(remaining, 4 << 20))
            out.write(chunk)
            remaining -= len(chunk)
    return dest


def test_layout_is_an_al2023_root_volume(built):
    parts = bootdisk.read_partitions(built.disk)
    assert sorted(parts) == [1, 127, 128]
    assert parts[127]["type"] == bootdisk.BIOS_BOOT_TYPE
    assert parts[128]["type"] == bootdisk.ESP_TYPE
    assert parts[1]["type"] == bootdisk.LINUX_FS_TYPE
    # BIOS boot and ESP first on the disk, the root after them (as amazon-eks-ami's AL2023 AMIs)
    assert parts[127]["start"] < parts[128]["start"] < parts[1]["start"]
    assert built.disk.name == "disk.img" and not list(built.disk.parent.glob(".disk.img.tmp*"))


def test_mbr_holds_grub_boot_code_pointing_at_the_core_image(built):
    with built.disk.open("rb") as fh:
        mbr = fh.read(512)
        start = struct.unpack_from("<Q", mbr, 0x5C)[0]
        fh.seek(start * 512)
        core_first = fh.read(512)
    boot_img = (bootdisk.GRUB_DIR / "i386-pc" / "boot.img").read_bytes()
    assert mbr[:0x5C] == boot_img[:0x5C]  # GRUB's own boot code
    assert mbr[510:512] == b"\x55\xaa"  # the protective MBR's signature is kept
    assert mbr[0x1BE + 4] == 0xEE  # protective MBR partition type
    assert start * 512 == built.partitions[127][0]
    block_start, count, segment = struct.unpack_from("<QHH", core_first, 500)
    assert block_start == start + 1 and segment == 0x820
    assert 0 < count < (built.partitions[127][1] // 512)


def test_esp_holds_the_removable_media_efi_binary(built, tmp_path):
    esp = _partition_bytes(built, 128, tmp_path / "esp.img")
    listing = subprocess.run(["mdir", "-b", "-i", str(esp), "::/EFI/BOOT"], capture_output=True, text=True)
    assert "BOOTX64.EFI" in listing.stdout, listing.stderr
    subprocess.run(["mcopy", "-i", str(esp), "::/EFI/BOOT/BOOTX64.EFI", str(tmp_path / "boot.efi")], check=True)
    assert (tmp_path / "boot.efi").read_bytes()[:2] == b"MZ"  # a PE/COFF image


def test_root_has_grub_cfg_for_the_newest_kernel_and_fstab_by_uuid(built, tmp_path):
    root = _partition_bytes(built, 1, tmp_path / "root.img")

    def cat(path: str) -> str:
        out = subprocess.run(["debugfs", "-R", f"cat {path}", str(root)], capture_output=True, text=True)
        return out.stdout

    cfg = cat("/boot/grub/grub.cfg")
    assert "linux /boot/vmlinuz-6.1.0-30-cloud-amd64 root=UUID=" + built.root_uuid in cfg
    assert "initrd /boot/initrd.img-6.1.0-30-cloud-amd64" in cfg
    assert "console=ttyS0,115200n8" in cfg and "nodeforge.test=1" in cfg
    assert "terminal_output serial console" in cfg
    fstab = cat("/etc/fstab")
    assert f"UUID={built.root_uuid}\t/\text4" in fstab
    assert "/dev/sda1" not in fstab  # the old root entry is replaced, not kept beside
    label = subprocess.run(["dumpe2fs", "-h", str(root)], capture_output=True, text=True).stdout
    assert built.root_uuid in label
    assert (
        "nodeforge-bootprobe"
        in subprocess.run(
            ["debugfs", "-R", "ls -l /etc/systemd/system", str(root)], capture_output=True, text=True
        ).stdout
    )


def test_missing_kernel_is_refused_and_nothing_left(tmp_path):
    tar = tmp_path / "nokernel.tar"
    with tarfile.open(tar, "w") as archive:
        info = tarfile.TarInfo("etc")
        info.type = tarfile.DIRTYPE
        archive.addfile(info)
    with pytest.raises(bootdisk.vmdisk.KernelNotFoundError, match=r"nokernel\.tar"):
        bootdisk.build_boot_disk(tar, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_grub_cfg_names_the_platform_on_the_console():
    cfg = bootdisk.grub_cfg("/boot/vmlinuz-1", "/boot/initrd.img-1", "root=UUID=x ro", title="t")
    assert f'echo "{bootdisk.GRUB_BANNER} /boot/vmlinuz-1 ($grub_platform)"' in cfg


def test_a_scratch_name_ending_in_digits_does_not_renumber_partitions(tmp_path, monkeypatch):
    """sfdisk reads a partition's number from the name's trailing digits: the temporary disk must not add its own."""
    real = bootdisk.tempfile.mkdtemp

    def mkdtemp(prefix: str = "", dir: str | None = None) -> str:
        return real(prefix=prefix, suffix="-1234", dir=dir)

    monkeypatch.setattr(bootdisk.tempfile, "mkdtemp", mkdtemp)
    built = bootdisk.build_boot_disk(_tiny_root_tar(tmp_path / "root.tar"), tmp_path / "out")
    assert sorted(built.partitions) == [1, 127, 128]
