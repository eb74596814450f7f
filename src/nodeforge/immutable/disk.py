"""The A/B disk image: a GPT (made with ``sfdisk`` on the image file) with a boot record, two root slots and state.

Layout (1 MiB aligned)::

    1  NF-BOOTCFG   1 MiB   the boot record, two checksummed copies (:mod:`nodeforge.immutable.record`)
    2  NF-ROOT-A    slot    [erofs data | dm-verity hash tree | kernel | initramfs]
    3  NF-ROOT-B    slot    same layout, the update target while A is active (and vice versa)
    4  NF-STATE     state   ext4, mounted on /var at boot (settings file, containerd, kubelet state)

Each slot carries its own kernel and initramfs (Bottlerocket keeps them in BOOT-A/BOOT-B), so an
update never mixes a new root with an old kernel. Everything works on the image *file* with byte
offsets: no loop devices, no root-only device mapper on the host.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nodeforge.immutable import signing
from nodeforge.immutable.errors import DiskError, ToolError
from nodeforge.immutable.initramfs import SLOT_PARTNAMES, STATE_PARTNAME
from nodeforge.immutable.record import RECORD_AREA, SLOTS, BootRecord, SlotInfo, read_record, write_record
from nodeforge.immutable.seal import SealedRoot
from nodeforge.immutable.tools import run

MIB = 1024 * 1024
SECTOR = 512
BOOTCFG = "NF-BOOTCFG"
# the partition names the initramfs looks the slots and the state partition up by
STATE = STATE_PARTNAME
SLOT_PARTS = SLOT_PARTNAMES
LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
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

    def slot(self, slot: str) -> Partition:
        return self.partitions[SLOT_PARTS[slot]]

    def read_record(self) -> BootRecord:
        return read_record(self.path, self.bootcfg.start)

    def write_record(self, record: BootRecord) -> BootRecord:
        return write_record(self.path, self.bootcfg.start, record)

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
    """Read the GPT of ``disk`` (``sfdisk --json``); :class:`DiskError` naming it if it is not an A/B disk."""
    disk = Path(disk)
    if not disk.is_file():
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
        parts[name] = Partition(index, name, int(entry["start"]) * sector, int(entry["size"]) * sector)
    missing = [n for n in (BOOTCFG, *SLOT_PARTS.values(), STATE) if n not in parts]
    if missing:
        raise DiskError(f"{disk}: not a nodeforge A/B disk (partitions {', '.join(missing)} missing)")
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
    """Bytes a slot needs for ``sealed`` (data + hash tree + kernel + initramfs, aligned)."""
    end = _align(sealed.image_bytes + sealed.hash_bytes, MIB) + _align(sealed.kernel_bytes, 4096)
    return end + sealed.initrd_bytes


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
    total = MIB + MIB + 2 * slot_bytes + state_bytes + MIB
    disk.parent.mkdir(parents=True, exist_ok=True)
    tmp = disk.with_name(f".{disk.name}.tmp-{os.getpid()}")
    state_tmp = disk.with_name(f".{disk.name}.state-{os.getpid()}")
    try:
        with tmp.open("wb") as fh:
            fh.truncate(total)
        script = ["label: gpt", "unit: sectors", "first-lba: 2048"]
        sizes = [(BOOTCFG, MIB), (SLOT_PARTS["a"], slot_bytes), (SLOT_PARTS["b"], slot_bytes), (STATE, state_bytes)]
        for name, size in sizes:
            script.append(f'size={size // SECTOR}, type={LINUX_FS_TYPE}, name="{name}"')
        argv = ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(tmp)]
        run(argv, subject=disk, what="writing the partition table", stdin="\n".join(script) + "\n")
        layout = read_layout(tmp)
        _state_image(state_tmp, layout.state.size, settings, metadata)
        fd = os.open(tmp, os.O_WRONLY)
        try:
            _copy_into(state_tmp, fd, layout.state.start, skip_zeros=True)
            os.pwrite(fd, b"\0" * RECORD_AREA, layout.bootcfg.start)
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
    return read_layout(disk)


__all__ = ["SLOTS", "DiskLayout", "Partition", "create_disk", "read_layout", "write_payload", "write_public_key"]
