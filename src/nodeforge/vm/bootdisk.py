"""A disk that boots itself, laid out like an EKS AMI's root volume: GPT, GRUB for BIOS and UEFI, ext4 root.

Amazon Linux 2023 AMIs carry one GPT disk with the root filesystem in partition 1, a BIOS boot partition
(127) holding GRUB's core image, and an EFI system partition (128) holding GRUB's EFI binary; whichever
firmware the instance type has (SeaBIOS-style legacy boot or UEFI), the boot loader on the disk picks the
kernel and initramfs from the image's own ``/boot``. :func:`build_boot_disk` builds the same thing from a baked
root filesystem tar, using only the distribution's packages (Debian: grub-pc-bin, grub-efi-amd64-bin,
dosfstools, mtools, e2fsprogs, fdisk) and no loop devices or mounts:

* the root is extracted, patched for a VM boot (:func:`nodeforge.vm.disk.prepare_vm_root`, the boot probe),
  given ``/boot/grub/grub.cfg`` naming the newest kernel in ``/boot``, and written with ``mkfs.ext4 -d``
  straight into partition 1 of the disk file (``-E offset=``);
* BIOS: ``grub-mkimage -O i386-pc`` builds a core image that finds the root by filesystem UUID and reads
  ``/boot/grub/grub.cfg``; it goes into the BIOS boot partition, and GRUB's ``boot.img`` into the MBR's code
  area with the core's location patched in (what ``grub-bios-setup`` does on a block device);
* UEFI: ``grub-mkimage -O x86_64-efi`` builds ``\\EFI\\BOOT\\BOOTX64.EFI`` (the removable-media path the
  firmware boots without NVRAM entries) on a FAT ESP made with ``mkfs.vfat`` and filled with ``mcopy``.

The disk is written under a temporary name and renamed into place: a failed build leaves no ``disk.img``.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nodeforge.vm import disk as vmdisk

__all__ = [
    "BIOS_BOOT_TYPE",
    "ESP_TYPE",
    "BootDisk",
    "BootDiskError",
    "build_boot_disk",
    "copy_at",
    "esp_image",
    "grub_cfg",
    "grub_image",
    "install_bios",
    "node_cmdline",
    "read_partitions",
]

BIOS_BOOT_TYPE = "21686148-6449-6E6F-744E-656564454649"
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
# Partition numbers and sizes as on an Amazon Linux 2023 AMI's root volume.
ROOT_PARTNUM = 1
BIOS_PARTNUM = 127
ESP_PARTNUM = 128
_MIB = 1024 * 1024
_SECTOR = 512
_BIOS_START = 1 * _MIB
_BIOS_SIZE = 1 * _MIB
_ESP_START = _BIOS_START + _BIOS_SIZE
_ESP_SIZE = 16 * _MIB
_ROOT_START = _ESP_START + _ESP_SIZE
_GPT_TAIL = 1 * _MIB  # room for the backup GPT

GRUB_DIR = Path("/usr/lib/grub")
# Modules built into the core images: enough to find the root by UUID on GPT/ext4 and boot Linux from it, with
# the console on the first serial port (EC2's console) as well as the screen.
_GRUB_COMMON = [
    "part_gpt",
    "ext2",
    "search",
    "search_fs_uuid",
    "configfile",
    "normal",
    "linux",
    "echo",
    "test",
    "serial",
    "terminal",
    "gzio",
    "sleep",
    "halt",
    "reboot",
]
_GRUB_MODULES = {
    "i386-pc": ["biosdisk", *_GRUB_COMMON],
    "x86_64-efi": ["fat", "efi_gop", "efi_uga", *_GRUB_COMMON],
}
# The kernel command line an EKS AL2023 AMI boots with, less what this root cannot honour (SELinux: Debian
# stands in for Amazon Linux here). console=ttyS0 last: it becomes /dev/console, which EC2's serial console
# and get-console-output show.
BASE_CMDLINE = (
    "ro",
    "console=tty0",
    "console=ttyS0,115200n8",
    "nvme_core.io_timeout=4294967295",
    "rd.emergency=poweroff",
    "rd.shell=0",
    "quiet",
)
GRUB_BANNER = "nodeforge-grub: booting"


class BootDiskError(vmdisk.DiskImageError):
    """A step of building the self-booting disk failed (names the step and the tool's output)."""


@dataclass
class BootDisk:
    """A self-booting raw GPT disk image and what is on it."""

    disk: Path
    size_bytes: int
    root_uuid: str
    kernel_version: str
    cmdline: str
    partitions: dict[int, tuple[int, int]] = field(default_factory=dict)
    """Partition number -> (start byte, size in bytes)."""
    probe_units: list[str] = field(default_factory=list)
    modifications: list[str] = field(default_factory=list)


def node_cmdline(root_uuid: str, extra: Sequence[str] = ()) -> str:
    return " ".join([f"root=UUID={root_uuid}", *BASE_CMDLINE, *extra])


def grub_cfg(kernel: str, initrd: str, cmdline: str, *, title: str) -> str:
    """The boot loader configuration written to the image's ``/boot/grub/grub.cfg``."""
    return f"""\
# GRUB configuration of a nodeforge node image, written by nodeforge.vm.bootdisk.
# Read by the core image on the BIOS boot partition and by \\EFI\\BOOT\\BOOTX64.EFI on the ESP.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
menuentry "{title}" {{
    echo "{GRUB_BANNER} {kernel} ($grub_platform)"
    linux {kernel} {cmdline}
    initrd {initrd}
}}
"""


def _early_cfg(root_uuid: str) -> str:
    return (
        f"search --no-floppy --fs-uuid --set=root {root_uuid}\n"
        "set prefix=($root)/boot/grub\n"
        "configfile $prefix/grub.cfg\n"
    )


def _run(step: str, cmd: list[str], *, disk: Path, stdin: str | None = None) -> None:
    tool = shutil.which(cmd[0])
    if tool is None:
        raise BootDiskError(f"{disk}: {step}: {cmd[0]} not found (scripts/setup.sh installs it)")
    proc = subprocess.run([tool, *cmd[1:]], input=stdin, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        out = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BootDiskError(f"{disk}: {step} failed ({cmd[0]} exit {proc.returncode}):\n{out}")


def grub_image(
    platform: str, out: Path, early: Path, *, disk: Path, modules: Sequence[str] = (), prefix: str = "/boot/grub"
) -> None:
    """GRUB's core image for ``platform`` (``i386-pc`` or ``x86_64-efi``) with ``early`` built in, to ``out``.

    ``modules`` are built in besides the ones this disk needs (nothing is loaded from disk later).
    """
    if not (GRUB_DIR / platform).is_dir():
        package = "grub-pc-bin" if platform == "i386-pc" else "grub-efi-amd64-bin"
        raise BootDiskError(f"{disk}: GRUB for {platform} not found under {GRUB_DIR} (install {package})")
    fmt = "i386-pc" if platform == "i386-pc" else "x86_64-efi"
    _run(
        f"grub-mkimage ({platform})",
        ["grub-mkimage", "-O", fmt, "-d", str(GRUB_DIR / platform), "-o", str(out), "-c", str(early),
         "-p", prefix, *dict.fromkeys([*_GRUB_MODULES[platform], *modules])],
        disk=disk,
    )  # fmt: skip


def install_bios(disk_file: Path, core: Path, *, disk: Path, start: int = _BIOS_START, size: int = _BIOS_SIZE) -> None:
    """GRUB's boot.img in the MBR code area, pointing at core.img in the BIOS boot partition (bytes START, SIZE)."""
    core_bytes = bytearray(core.read_bytes())
    sectors = -(-len(core_bytes) // _SECTOR)
    if sectors * _SECTOR > size:
        raise BootDiskError(f"{disk}: GRUB core image ({len(core_bytes)} bytes) does not fit the BIOS boot partition")
    core_bytes += b"\0" * (sectors * _SECTOR - len(core_bytes))
    bios_start = start
    start = bios_start // _SECTOR
    # diskboot.img (the core's first sector) loads the rest from the blocklist at its end: start, count, segment.
    struct.pack_into("<QHH", core_bytes, _SECTOR - 12, start + 1, sectors - 1, 0x820)
    boot = bytearray((GRUB_DIR / "i386-pc" / "boot.img").read_bytes())
    if len(boot) != _SECTOR:
        raise BootDiskError(f"{disk}: unexpected {GRUB_DIR / 'i386-pc/boot.img'} ({len(boot)} bytes)")
    struct.pack_into("<Q", boot, 0x5C, start)  # where the core image starts (LBA)
    boot[0x66:0x68] = b"\x90\x90"  # a hard disk: trust the drive number the BIOS passes (as grub-bios-setup)
    with disk_file.open("r+b") as fh:
        mbr = bytearray(fh.read(_SECTOR))
        mbr[0:0x1B8] = boot[0:0x1B8]  # code only: the protective MBR's partition table and signature stay
        fh.seek(0)
        fh.write(mbr)
        fh.seek(bios_start)
        fh.write(core_bytes)


def esp_image(
    esp: Path,
    efi_binary: Path,
    *,
    disk: Path,
    size: int = _ESP_SIZE,
    volume_id: str | None = None,
    files: Sequence[tuple[Path, str]] = (),
) -> None:
    """A FAT16 ESP image at ``esp`` with ``\\EFI\\BOOT\\BOOTX64.EFI`` and ``files`` (host path, ESP path) on it.

    ``volume_id`` (8 hex digits) is the FAT serial GRUB's ``search --fs-uuid`` finds it by (as ``XXXX-XXXX``).
    """
    with esp.open("wb") as fh:
        fh.truncate(size)
    mkfs = ["mkfs.vfat", "-F", "16", "-n", "EFI", *(["-i", volume_id] if volume_id else []), str(esp)]
    _run("mkfs.vfat (ESP)", mkfs, disk=disk)
    dirs = {"/EFI", "/EFI/BOOT"}
    for _src, dest in files:
        parent = dest.rsplit("/", 1)[0]
        while parent:
            dirs.add(parent)
            parent = parent.rsplit("/", 1)[0]
    _run("mmd (ESP)", ["mmd", "-i", str(esp), *(f"::{d}" for d in sorted(dirs))], disk=disk)
    _run("mcopy (ESP)", ["mcopy", "-i", str(esp), str(efi_binary), "::/EFI/BOOT/BOOTX64.EFI"], disk=disk)
    for src, dest in files:
        _run(f"mcopy (ESP {dest})", ["mcopy", "-i", str(esp), str(src), f"::{dest}"], disk=disk)


def copy_at(src: Path, dst: Path, offset: int) -> None:
    """Copy ``src`` into ``dst`` at byte ``offset``, skipping all-zero chunks (``dst`` is fresh and sparse)."""
    chunk = 4 * _MIB
    with src.open("rb") as fin, dst.open("r+b") as fout:
        fout.seek(offset)
        while data := fin.read(chunk):
            if data.count(0) == len(data):
                fout.seek(len(data), 1)
            else:
                fout.write(data)


def read_partitions(disk_file: Path) -> dict[int, dict[str, str | int]]:
    """Partition number -> {start, size (bytes), type, name} as sfdisk reads the GPT of ``disk_file``."""
    import json

    proc = subprocess.run(["sfdisk", "--json", str(disk_file)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BootDiskError(f"{disk_file}: no readable partition table: {proc.stderr.strip()}")
    table = json.loads(proc.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", _SECTOR))
    out: dict[int, dict[str, str | int]] = {}
    for part in table.get("partitions", []):
        number = int(part["node"][len(str(disk_file)) :])
        out[number] = {
            "start": int(part["start"]) * sector,
            "size": int(part["size"]) * sector,
            "type": str(part["type"]).upper(),
            "name": str(part.get("name", "")),
        }
    return out


def build_boot_disk(
    rootfs_tar: Path,
    out_dir: Path,
    *,
    probe_units: Sequence[str] | None = None,
    cmdline_extra: Sequence[str] = (),
    extra_probe_script: str | None = None,
    extra_files: dict[str, Path] | None = None,
    name: str = "disk.img",
) -> BootDisk:
    """Build ``out_dir/NAME``: a raw GPT disk that boots the baked root under BIOS and UEFI firmware alone.

    ``cmdline_extra`` is appended to the kernel command line in the image's grub.cfg (the boot check adds the
    boot probe's switch there: nothing is passed by the host at boot). ``probe_units`` are the units the boot
    probe reports (default containerd); ``extra_probe_script`` adds a JSON object to its report.
    """
    rootfs_tar = Path(rootfs_tar)
    out_dir = Path(out_dir)
    units = list(vmdisk.DEFAULT_PROBE_UNITS if probe_units is None else probe_units)
    if not rootfs_tar.is_file():
        raise vmdisk.RootfsTarNotFoundError(f"{rootfs_tar}: rootfs tar not found")
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    scratch = Path(tempfile.mkdtemp(prefix=".nodeforge-bootdisk-", dir=out_dir))
    # sfdisk takes a partition's number from the trailing digits of the name it is given (NAME + number): the
    # temporary name must not end in a digit of its own (a random suffix could).
    tmp_disk = out_dir / f".{name}.tmp-{scratch.name}.img"
    try:
        root = scratch / "root"
        root.mkdir()
        vmdisk.extract_rootfs(rootfs_tar, root)
        root.chmod(0o755)
        version, kernel, initrd = vmdisk.find_kernel(root, rootfs_tar)
        root_uuid = str(uuid.uuid4())
        notes = vmdisk.prepare_vm_root(root)
        notes += _write_fstab(root, root_uuid)
        vmdisk.install_boot_probe(root, units, extra_script=extra_probe_script)
        for rel, src in (extra_files or {}).items():
            target = root / rel.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            notes.append(f"added /{rel.lstrip('/')} (boot check only)")
        cmdline = node_cmdline(root_uuid, cmdline_extra)
        kernel_path = "/" + str(kernel.relative_to(root))
        initrd_path = "/" + str(initrd.relative_to(root))
        vmdisk.write_root_file(
            root / "boot/grub/grub.cfg",
            grub_cfg(kernel_path, initrd_path, cmdline, title=f"nodeforge node ({version or 'kernel'})"),
        )
        notes.append(f"wrote /boot/grub/grub.cfg (kernel {kernel_path})")

        early = scratch / "early.cfg"
        early.write_text(_early_cfg(root_uuid))
        core = scratch / "core.img"
        efi = scratch / "BOOTX64.EFI"
        grub_image("i386-pc", core, early, disk=final)
        grub_image("x86_64-efi", efi, early, disk=final)
        esp = scratch / "esp.img"
        esp_image(esp, efi, disk=final)

        used, inodes = vmdisk._tree_usage(root)
        root_size = vmdisk._image_size(used, inodes)
        total = _ROOT_START + root_size + _GPT_TAIL
        with tmp_disk.open("wb") as fh:
            fh.truncate(total)
        layout = "\n".join(
            [
                "label: gpt",
                f"first-lba: {_BIOS_START // _SECTOR}",
                f"{tmp_disk}{ROOT_PARTNUM} : start={_ROOT_START // _SECTOR}, size={root_size // _SECTOR}, "
                f'type={LINUX_FS_TYPE}, name="Linux"',
                f"{tmp_disk}{BIOS_PARTNUM} : start={_BIOS_START // _SECTOR}, size={_BIOS_SIZE // _SECTOR}, "
                f'type={BIOS_BOOT_TYPE}, name="BIOS Boot Partition"',
                f"{tmp_disk}{ESP_PARTNUM} : start={_ESP_START // _SECTOR}, size={_ESP_SIZE // _SECTOR}, "
                f'type={ESP_TYPE}, name="EFI System Partition"',
                "",
            ]
        )
        _run("sfdisk (GPT)", ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(tmp_disk)],
             disk=final, stdin=layout)  # fmt: skip
        install_bios(tmp_disk, core, disk=final)
        copy_at(esp, tmp_disk, _ESP_START)
        inode_count = max(root_size // 16384, inodes + inodes // 2 + 4096)
        _run(
            "mkfs.ext4 (root)",
            ["mkfs.ext4", "-F", "-q", "-t", "ext4", "-b", "4096", "-N", str(inode_count), "-L", vmdisk.FS_LABEL,
             "-U", root_uuid, "-E", f"offset={_ROOT_START},lazy_itable_init=0,lazy_journal_init=0",
             "-d", str(root), str(tmp_disk), f"{root_size // 1024}k"],
            disk=final,
        )  # fmt: skip
        tmp_disk.replace(final)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        tmp_disk.unlink(missing_ok=True)
    parts = read_partitions(final)
    return BootDisk(
        disk=final,
        size_bytes=final.stat().st_size,
        root_uuid=root_uuid,
        kernel_version=version,
        cmdline=cmdline,
        partitions={n: (int(p["start"]), int(p["size"])) for n, p in parts.items()},
        probe_units=units,
        modifications=notes,
    )


def _write_fstab(root: Path, root_uuid: str) -> list[str]:
    fstab = root / "etc/fstab"
    existing = ""
    if fstab.exists() and not fstab.is_symlink():
        existing = fstab.read_text(errors="replace")
    kept = [line for line in existing.splitlines() if not _is_root_entry(line)]
    text = "\n".join([*kept, "# root filesystem, added by nodeforge.vm.bootdisk",
                      f"UUID={root_uuid}\t/\text4\tdefaults,relatime,errors=remount-ro\t0\t1", ""])  # fmt: skip
    vmdisk.write_root_file(fstab, text.lstrip("\n"))
    return [f"/etc/fstab: root by UUID={root_uuid}"]


def _is_root_entry(line: str) -> bool:
    fields = line.split()
    return len(fields) >= 2 and not fields[0].startswith("#") and fields[1] == "/"
