"""The A/B disk image: a GPT disk that boots itself (GRUB for BIOS and UEFI), two root slots and state.

Layout (1 MiB aligned; partition numbers as the GPT names them)::

    127 BIOS boot     1 MiB   GRUB's core image (BIOS); GRUB's boot.img in the MBR points at it
    128 ESP          16 MiB   FAT16: \\EFI\\BOOT\\BOOTX64.EFI (UEFI), /grub/grub.cfg, /grub/grubenv (slot state)
      1 NF-BOOTCFG    1 MiB   the public key area (:mod:`nodeforge.immutable.signing`)
      2 NF-ROOT-A     slot    [erofs data | dm-verity hash tree | kernel | initramfs | ... | descriptor | trailer]
      3 NF-ROOT-B     slot    same layout, the update target while A is active (and vice versa)
      4 NF-STATE      state   ext4, mounted on /var at boot (settings file, containerd, kubelet state)

GRUB (both firmwares) reads the slot state from the grubenv, takes a try with ``save_env`` and boots the chosen
slot's kernel and initramfs straight out of the slot partition (GRUB blocklists), with the root hash on the
kernel command line (:mod:`nodeforge.vm.ab_grub`). Each slot carries its own kernel and initramfs
(Bottlerocket keeps them in BOOT-A/BOOT-B), so an update never mixes a new root with an old kernel, and a
descriptor of its payload (:mod:`nodeforge.immutable.record`). Everything works on the image *file* with byte
offsets: no loop devices, no mounts, no root-only device mapper on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nodeforge.immutable import signing
from nodeforge.immutable.errors import DiskError, RecordError, ToolError
from nodeforge.immutable.initramfs import SLOT_PARTNAMES, STATE_PARTNAME
from nodeforge.immutable.record import COPY_SIZE, SLOTS, BootRecord, SlotInfo, decode, encode, from_env, to_env
from nodeforge.immutable.seal import SealedRoot
from nodeforge.immutable.tools import run
from nodeforge.vm import ab_grub, bootdisk, grubenv

MIB = 1024 * 1024
SECTOR = 512
BOOTCFG = "NF-BOOTCFG"
# the partition names the initramfs looks the slots and the state partition up by
STATE = STATE_PARTNAME
SLOT_PARTS = SLOT_PARTNAMES
LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
BIOS_PARTNUM, ESP_PARTNUM = bootdisk.BIOS_PARTNUM, bootdisk.ESP_PARTNUM
BIOS_NAME, ESP_NAME = "BIOS Boot Partition", "EFI System Partition"
PARTNUMS = {BOOTCFG: 1, SLOT_PARTNAMES["a"]: 2, SLOT_PARTNAMES["b"]: 3, STATE_PARTNAME: 4}
BIOS_START, BIOS_SIZE = MIB, MIB
ESP_START, ESP_SIZE = 2 * MIB, 16 * MIB
STATE_SETTINGS = "lib/nodeforge/user-data.toml"
STATE_METADATA = "lib/nodeforge/instance-metadata.json"
_CHUNK = 4 * MIB


@dataclass
class Partition:
    """One GPT partition, in bytes from the start of the disk image."""

    number: int
    name: str
    start: int
    size: int


@dataclass
class DiskLayout:
    """The partitions of an A/B disk image, by name."""

    path: Path
    partitions: dict[str, Partition]

    @property
    def bootcfg(self) -> Partition:
        return self.partitions[BOOTCFG]

    @property
    def state(self) -> Partition:
        return self.partitions[STATE]

    @property
    def esp(self) -> Partition:
        return self.partitions[ESP_NAME]

    def slot(self, slot: str) -> Partition:
        return self.partitions[SLOT_PARTS[slot]]

    def env_offset(self) -> int:
        """Byte offset in the disk of the grubenv's 1024 bytes (found through the ESP's FAT)."""
        offset, size = grubenv.locate_fat_file(self.path, self.esp.start, ab_grub.ENV_PATH)
        if size != grubenv.ENV_SIZE:
            raise RecordError(f"{self.path}: ESP {ab_grub.ENV_PATH} is {size} bytes, not {grubenv.ENV_SIZE}")
        return offset

    def read_env(self) -> dict[str, str]:
        """The GRUB environment block's variables."""
        with self.path.open("rb") as fh:
            fh.seek(self.env_offset())
            return grubenv.parse(fh.read(grubenv.ENV_SIZE), subject=f"{self.path}: ESP {ab_grub.ENV_PATH}")

    def write_env(self, values: dict[str, str]) -> None:
        """Rewrite the grubenv in place (its sectors, as GRUB's save_env does) with ``values``; fsync'd."""
        block = grubenv.render(values, subject=f"{self.path}: ESP {ab_grub.ENV_PATH}")
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, block, self.env_offset())
            os.fsync(fd)
        finally:
            os.close(fd)

    def descriptor_offset(self, slot: str) -> int:
        """Offset, within the slot, of its payload descriptor (just before the signature trailer)."""
        return self.trailer_offset(slot) - COPY_SIZE

    def read_descriptor(self, slot: str) -> SlotInfo | None:
        """The slot's payload descriptor, ``None`` if the slot has none (never written) or it is damaged."""
        with self.path.open("rb") as fh:
            fh.seek(self.slot(slot).start + self.descriptor_offset(slot))
            try:
                return decode(fh.read(COPY_SIZE))
            except RecordError:
                return None

    def read_record(self) -> BootRecord:
        """Slot state from the grubenv, each filled slot's payload from its descriptor."""
        descriptors = {s: self.read_descriptor(s) for s in SLOTS}
        return from_env(self.read_env(), descriptors, subject=str(self.path))

    def write_record(self, record: BootRecord) -> BootRecord:
        """Write ``record``'s state to the grubenv (next generation; variables GRUB or others added are kept)."""
        try:
            current = self.read_env()
        except RecordError:
            current = {}
        record.generation = max(record.generation, int(current.get("nf_gen", "0") or 0)) + 1
        self.write_env({**current, **to_env(record)})
        return record

    def public_key(self) -> str | None:
        """The PEM public key in the boot partition's key area, ``None`` if there is none."""
        with self.path.open("rb") as fh:
            fh.seek(self.bootcfg.start + signing.KEY_OFFSET)
            return signing.parse_key_area(fh.read(signing.KEY_AREA_SIZE))

    def trailer_offset(self, slot: str) -> int:
        """Offset, within the slot, of its signature trailer (the partition's last bytes)."""
        return self.slot(slot).size - signing.TRAILER_SIZE

    def read_trailer(self, slot: str) -> bytes:
        with self.path.open("rb") as fh:
            fh.seek(self.slot(slot).start + self.trailer_offset(slot))
            return fh.read(signing.TRAILER_SIZE)


def _align(value: int, to: int) -> int:
    return -(-value // to) * to


def read_layout(disk: Path) -> DiskLayout:
    """Read the GPT of ``disk``, an image file or a block device (``sfdisk --json``).

    :class:`DiskError` naming it if it is not an A/B disk.
    """
    disk = Path(disk)
    if not (disk.is_file() or disk.is_block_device()):  # an image file on the host, the boot disk on the node
        raise DiskError(f"{disk}: disk image not found")
    try:
        proc = run(["sfdisk", "--json", str(disk)], subject=disk, what="reading the partition table")
        table = json.loads(proc.stdout)["partitiontable"]
    except (ToolError, ValueError, KeyError) as exc:
        raise DiskError(f"{disk}: no readable GPT partition table ({exc})") from exc
    sector = int(table.get("sectorsize", SECTOR))
    parts: dict[str, Partition] = {}
    for index, entry in enumerate(table.get("partitions", []), start=1):
        name = entry.get("name", "")
        node = str(entry.get("node", ""))
        digits = node[len(node.rstrip("0123456789")) :]
        number = int(digits) if digits else index
        parts[name] = Partition(number, name, int(entry["start"]) * sector, int(entry["size"]) * sector)
    missing = [n for n in (BOOTCFG, *SLOT_PARTS.values(), STATE) if n not in parts]
    if missing:
        raise DiskError(f"{disk}: not a nodeforge A/B disk (partitions {', '.join(missing)} missing)")
    if ESP_NAME not in parts:
        raise DiskError(
            f"{disk}: an A/B disk without an EFI system partition (made before the disk booted itself): "
            "recreate it with `nodeforge image disk create`"
        )
    return DiskLayout(disk, parts)


def _copy_into(src: Path, fd: int, offset: int, *, skip_zeros: bool) -> None:
    """Copy ``src`` into ``fd`` at ``offset``; all-zero chunks are skipped on a fresh (sparse, zeroed) target."""
    with src.open("rb") as fh:
        pos = offset
        while chunk := fh.read(_CHUNK):
            if not (skip_zeros and chunk.count(0) == len(chunk)):
                os.pwrite(fd, chunk, pos)
            pos += len(chunk)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def payload_bytes(sealed: SealedRoot) -> int:
    """Bytes a slot needs for ``sealed`` (data + hash tree + kernel + initramfs, aligned) and its descriptor."""
    end = _align(sealed.image_bytes + sealed.hash_bytes, MIB) + _align(sealed.kernel_bytes, 4096)
    return end + _align(sealed.initrd_bytes, SECTOR) + COPY_SIZE


def write_payload(layout: DiskLayout, slot: str, sealed: SealedRoot, *, fresh: bool = False) -> SlotInfo:
    """Write ``sealed`` into ``slot``; returns the slot's payload description (priority etc. left at 0)."""
    part = layout.slot(slot)
    need = payload_bytes(sealed) + signing.TRAILER_SIZE
    if need > part.size:
        raise DiskError(
            f"{layout.path}: sealed root {sealed.directory} needs {need // MIB + 1} MiB, "
            f"slot {slot.upper()} has {part.size // MIB} MiB"
        )
    info = SlotInfo(
        root_hash=sealed.root_hash,
        salt=sealed.verity.salt,
        data_blocks=sealed.verity.data_blocks,
        hash_offset=sealed.image_bytes,
        hash_bytes=sealed.hash_bytes,
        kernel_offset=_align(sealed.image_bytes + sealed.hash_bytes, MIB),
        kernel_size=sealed.kernel_bytes,
        kernel_sha256=_sha256(sealed.kernel),
        initrd_size=sealed.initrd_bytes,
        initrd_sha256=_sha256(sealed.initrd),
        version=sealed.version,
    )
    info.initrd_offset = info.kernel_offset + _align(sealed.kernel_bytes, 4096)
    fd = os.open(layout.path, os.O_WRONLY)
    try:
        for src, offset in (
            (sealed.image, 0),
            (sealed.hash_tree, info.hash_offset),
            (sealed.kernel, info.kernel_offset),
            (sealed.initrd, info.initrd_offset),
        ):
            _copy_into(src, fd, part.start + offset, skip_zeros=fresh)
        # GRUB reads the kernel and initramfs as whole sectors (blocklists): the tails are zeros, not a previous
        # payload's bytes (the kernel's initramfs unpacker skips zero padding).
        kernel_end = info.kernel_offset + info.kernel_size
        initrd_end = info.initrd_offset + info.initrd_size
        for start, stop in ((kernel_end, info.initrd_offset), (initrd_end, _align(initrd_end, SECTOR))):
            os.pwrite(fd, bytes(stop - start), part.start + start)
        os.pwrite(fd, encode(info), part.start + layout.descriptor_offset(slot))
        # The signature trailer; zeros for an unsigned root (no stale signature of a previous root stays).
        trailer = sealed.signature_file.read_bytes() if sealed.signed else bytes(signing.TRAILER_SIZE)
        if len(trailer) != signing.TRAILER_SIZE:
            raise DiskError(f"{sealed.signature_file}: not a {signing.TRAILER_SIZE}-byte signature trailer")
        os.pwrite(fd, trailer, part.start + layout.trailer_offset(slot))
        os.fsync(fd)
    finally:
        os.close(fd)
    return info


def read_region(layout: DiskLayout, slot: str, offset: int, size: int, dest: Path) -> str:
    """Copy ``size`` bytes at ``offset`` of ``slot`` to ``dest``; returns their sha256."""
    digest = hashlib.sha256()
    with layout.path.open("rb") as src, dest.open("wb") as out:
        src.seek(layout.slot(slot).start + offset)
        left = size
        while left:
            chunk = src.read(min(_CHUNK, left))
            if not chunk:
                raise DiskError(f"{layout.path}: slot {slot.upper()} ends early (truncated image?)")
            digest.update(chunk)
            out.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def region_sha256(layout: DiskLayout, slot: str, offset: int, size: int) -> str:
    """sha256 of ``size`` bytes at ``offset`` of ``slot``."""
    digest = hashlib.sha256()
    with layout.path.open("rb") as src:
        src.seek(layout.slot(slot).start + offset)
        left = size
        while left:
            chunk = src.read(min(_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def _state_image(path: Path, size: int, settings: Path | None, metadata: dict[str, str] | None) -> None:
    seed = Path(tempfile.mkdtemp(prefix=".nodeforge-state-", dir=path.parent))
    try:
        (seed / "lib/nodeforge").mkdir(parents=True)
        if settings is not None:
            shutil.copyfile(settings, seed / STATE_SETTINGS)
            (seed / STATE_SETTINGS).chmod(0o600)
        if metadata:
            (seed / STATE_METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
        with path.open("wb") as fh:
            fh.truncate(size)
        argv = ["mkfs.ext4", "-F", "-q", "-L", STATE, "-E", "lazy_itable_init=0,lazy_journal_init=0"]
        run([*argv, "-d", str(seed), str(path)], subject=path, what="mkfs.ext4 (state partition)")
    finally:
        shutil.rmtree(seed, ignore_errors=True)


def write_public_key(disk: Path, public_pem: str | None) -> None:
    """Put ``public_pem`` in the boot partition's key area of ``disk`` (``None``: clear it)."""
    layout = read_layout(disk)
    area = signing.key_area(public_pem) if public_pem is not None else bytes(signing.KEY_AREA_SIZE)
    fd = os.open(layout.path, os.O_WRONLY)
    try:
        os.pwrite(fd, area, layout.bootcfg.start + signing.KEY_OFFSET)
        os.fsync(fd)
    finally:
        os.close(fd)


def _boot_loader(tmp: Path, layout: DiskLayout, scratch: Path, *, disk: Path) -> None:
    """GRUB for BIOS (MBR + BIOS boot partition) and UEFI (ESP), grub.cfg and an empty grubenv on the ESP."""
    volume_id = secrets.token_hex(4).upper()
    early = scratch / "early.cfg"
    early.write_text(ab_grub.early_cfg(f"{volume_id[:4]}-{volume_id[4:]}"))
    core, efi, esp = scratch / "core.img", scratch / "BOOTX64.EFI", scratch / "esp.img"
    for platform, out in (("i386-pc", core), ("x86_64-efi", efi)):
        bootdisk.grub_image(platform, out, early, disk=disk, modules=ab_grub.GRUB_MODULES, prefix="/grub")
    cfg, env = scratch / "grub.cfg", scratch / "grubenv"
    cfg.write_text(ab_grub.grub_cfg({s: layout.slot(s).number for s in SLOTS}))
    env.write_bytes(grubenv.empty())
    files = [(cfg, ab_grub.CFG_PATH), (env, ab_grub.ENV_PATH)]
    bootdisk.esp_image(esp, efi, disk=disk, size=layout.esp.size, volume_id=volume_id, files=files)
    bootdisk.copy_at(esp, tmp, layout.esp.start)
    bootdisk.install_bios(tmp, core, disk=disk, start=BIOS_START, size=BIOS_SIZE)


def create_disk(
    disk: Path,
    sealed: SealedRoot,
    *,
    slot_mb: int | None = None,
    state_mb: int = 512,
    settings: Path | None = None,
    metadata: dict[str, str] | None = None,
    public_key: Path | None = None,
) -> DiskLayout:
    """Create ``disk`` with slot A = ``sealed`` (active, known good), slot B empty, a fresh state partition.

    The disk boots itself: GRUB in the MBR + BIOS boot partition and on the ESP (``\\EFI\\BOOT\\BOOTX64.EFI``)
    reads the slot state from the ESP's ``/grub/grubenv``.

    ``slot_mb`` defaults to 1.5x the sealed payload (room for a bigger update), rounded up to 64 MiB.
    ``settings`` (TOML settings file) is put on the state partition as ``/var/lib/nodeforge/user-data.toml``.
    ``public_key`` (PEM) goes into the boot partition's key area; default: the sealed root's ``root.pub`` when it
    is signed (the initramfs then refuses any root whose signature does not verify against it).
    The image is built under a temporary name and renamed into place.
    """
    disk = Path(disk)
    if settings is not None and not Path(settings).is_file():
        raise DiskError(f"{settings}: settings file not found")
    key_file = public_key if public_key is not None else (sealed.public_key_file if sealed.signed else None)
    key_area = None
    if key_file is not None:
        try:
            key_area = signing.key_area(Path(key_file).read_text())
        except (OSError, UnicodeDecodeError, signing.SigningError) as exc:
            raise DiskError(f"{key_file}: cannot use as the boot partition's public key ({exc})") from exc
    need = payload_bytes(sealed) + signing.TRAILER_SIZE
    slot_bytes = _align(int(need * 1.5), 64 * MIB) if slot_mb is None else slot_mb * MIB
    if slot_bytes < need:
        raise DiskError(f"{disk}: slot_mb={slot_mb} is too small for {sealed.directory} ({need // MIB + 1} MiB)")
    state_bytes = state_mb * MIB
    first = ESP_START + ESP_SIZE
    total = first + MIB + 2 * slot_bytes + state_bytes + MIB
    disk.parent.mkdir(parents=True, exist_ok=True)
    # sfdisk takes a partition's number from the trailing digits of the node name: no digits at the end.
    tmp = disk.with_name(f".{disk.name}.tmp-{os.getpid()}.img")
    state_tmp = disk.with_name(f".{disk.name}.state-{os.getpid()}")
    scratch = Path(tempfile.mkdtemp(prefix=".nodeforge-grub-", dir=disk.parent))
    try:
        with tmp.open("wb") as fh:
            fh.truncate(total)
        script = ["label: gpt", "unit: sectors", f"first-lba: {BIOS_START // SECTOR}"]
        entries = [
            (BIOS_PARTNUM, BIOS_START, BIOS_SIZE, bootdisk.BIOS_BOOT_TYPE, BIOS_NAME),
            (ESP_PARTNUM, ESP_START, ESP_SIZE, bootdisk.ESP_TYPE, ESP_NAME),
        ]
        offset = first
        for name, size in [(BOOTCFG, MIB), (SLOT_PARTS["a"], slot_bytes), (SLOT_PARTS["b"], slot_bytes),
                           (STATE, state_bytes)]:  # fmt: skip
            entries.append((PARTNUMS[name], offset, size, LINUX_FS_TYPE, name))
            offset += size
        for number, start, size, ptype, name in entries:
            place = f"start={start // SECTOR}, size={size // SECTOR}"
            script.append(f'{tmp}{number} : {place}, type={ptype}, name="{name}"')
        argv = ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(tmp)]
        run(argv, subject=disk, what="writing the partition table", stdin="\n".join(script) + "\n")
        layout = read_layout(tmp)
        _boot_loader(tmp, layout, scratch, disk=disk)
        _state_image(state_tmp, layout.state.size, settings, metadata)
        fd = os.open(tmp, os.O_WRONLY)
        try:
            _copy_into(state_tmp, fd, layout.state.start, skip_zeros=True)
            if key_area is not None:
                os.pwrite(fd, key_area, layout.bootcfg.start + signing.KEY_OFFSET)
            os.fsync(fd)
        finally:
            os.close(fd)
        info = write_payload(layout, "a", sealed, fresh=True)
        info.priority, info.tries_left, info.successful = 1, 0, True
        record = BootRecord(note="created")
        record.slots = {"a": info, "b": SlotInfo()}
        layout.write_record(record)
        tmp.replace(disk)
    finally:
        tmp.unlink(missing_ok=True)
        state_tmp.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return read_layout(disk)


__all__ = ["SLOTS", "DiskLayout", "Partition", "create_disk", "read_layout", "write_payload", "write_public_key"]
