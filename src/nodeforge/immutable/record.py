"""The A/B boot record: which slot boots, Bottlerocket-style priority / tries_left / successful per slot.

Stored raw in the small ``NF-BOOTCFG`` partition as two copies (at 0 and 64 KiB). Each copy is
plain ``key=value`` text (readable with ``dd | head`` from a shell) ending in a
``checksum=<sha256 of everything before that line>`` line, NUL-padded to 4 KiB. Readers take the
valid copy with the highest ``generation``; writers write generation N+1 over the *other* copy and
fsync. A torn or corrupt write therefore never loses the previous state: the old copy stays valid
until the new one is complete (the same idea as GPT's primary/backup headers).

Selection (what a boot loader does, :meth:`BootRecord.select`): among slots with a root hash,
``priority > 0`` and (``successful`` or ``tries_left > 0``), the highest priority wins (ties: A).
Booting a slot that is not yet successful consumes one try; once tries run out without
``mark-successful``, the slot is skipped, which is the automatic rollback.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nodeforge.immutable.errors import RecordError

SLOTS = ("a", "b")
MAGIC = "nodeforge-bootcfg v1"
COPY_SIZE = 4096
COPY_OFFSETS = (0, 64 * 1024)
RECORD_AREA = 128 * 1024
MAX_PRIORITY = 15
MAX_TRIES = 15


def other(slot: str) -> str:
    """The other slot of the pair."""
    return "b" if slot == "a" else "a"


@dataclass
class SlotInfo:
    """State and payload location of one root slot (offsets are relative to the slot partition)."""

    priority: int = 0
    tries_left: int = 0
    successful: bool = False
    root_hash: str = ""
    salt: str = ""
    data_blocks: int = 0
    hash_offset: int = 0
    hash_bytes: int = 0
    kernel_offset: int = 0
    kernel_size: int = 0
    kernel_sha256: str = ""
    initrd_offset: int = 0
    initrd_size: int = 0
    initrd_sha256: str = ""
    version: str = ""

    @property
    def filled(self) -> bool:
        return bool(self.root_hash)

    @property
    def bootable(self) -> bool:
        return self.filled and self.priority > 0 and (self.successful or self.tries_left > 0)

    def describe(self) -> str:
        """One word for ``status``: empty, good, pending, exhausted, disabled."""
        if not self.filled:
            return "empty"
        if self.priority <= 0:
            return "disabled"
        if self.successful:
            return "good"
        return "pending" if self.tries_left > 0 else "exhausted"


@dataclass
class BootRecord:
    """Both slots' state, the generation counter and the last boot attempt."""

    generation: int = 0
    slots: dict[str, SlotInfo] = field(default_factory=lambda: {s: SlotInfo() for s in SLOTS})
    last_boot: str = ""
    """Slot the last boot attempt used (set by begin_boot; mark-successful marks this one)."""
    note: str = ""

    def select(self) -> str | None:
        """The slot a boot would use now, or None if no slot is bootable."""
        candidates = [s for s in SLOTS if self.slots[s].bootable]
        if not candidates:
            return None
        return max(candidates, key=lambda s: (self.slots[s].priority, s == "a"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "selected": self.select(),
            "last_boot": self.last_boot,
            "note": self.note,
            "slots": {s: {**asdict(info), "state": info.describe()} for s, info in self.slots.items()},
        }


_INT_FIELDS = {f.name for f in fields(SlotInfo) if f.type in ("int", int)}
_BOOL_FIELDS = {f.name for f in fields(SlotInfo) if f.type in ("bool", bool)}


def encode(record: BootRecord) -> bytes:
    """Serialise one copy (text + checksum line, NUL-padded to :data:`COPY_SIZE`)."""
    lines = [MAGIC, f"generation={record.generation}", f"last_boot={record.last_boot}"]
    lines.append(f"note={record.note.replace(chr(10), ' ')}")
    for slot in SLOTS:
        for name, value in asdict(record.slots[slot]).items():
            text = str(int(value)) if isinstance(value, bool) else str(value)
            if "\n" in text or "=" in name:
                raise RecordError(f"boot record field {slot}.{name} cannot hold {text!r}")
            lines.append(f"{slot}.{name}={text}")
    body = ("\n".join(lines) + "\n").encode()
    data = body + f"checksum={hashlib.sha256(body).hexdigest()}\n".encode()
    if len(data) > COPY_SIZE:
        raise RecordError(f"boot record too large ({len(data)} > {COPY_SIZE} bytes)")
    return data.ljust(COPY_SIZE, b"\0")


def decode(raw: bytes) -> BootRecord:
    """Parse one copy; raise :class:`RecordError` (with the reason) if it is empty, torn or corrupt."""
    text = raw.split(b"\0", 1)[0]
    if not text.strip():
        raise RecordError("empty copy")
    marker = text.rfind(b"checksum=")
    if marker < 0:
        raise RecordError("no checksum line")
    body, checksum = text[:marker], text[marker + len("checksum=") :].strip().decode(errors="replace")
    if hashlib.sha256(body).hexdigest() != checksum:
        raise RecordError("checksum mismatch (torn or corrupt copy)")
    lines = body.decode(errors="replace").splitlines()
    if not lines or lines[0] != MAGIC:
        raise RecordError(f"bad magic {lines[0] if lines else ''!r}")
    record = BootRecord()
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if not sep:
            raise RecordError(f"malformed line {line!r}")
        try:
            if key == "generation":
                record.generation = int(value)
            elif key == "last_boot":
                record.last_boot = value
            elif key == "note":
                record.note = value
            else:
                slot, _, name = key.partition(".")
                if slot not in SLOTS or not hasattr(record.slots[slot], name):
                    continue  # a newer writer's field: ignore
                if name in _INT_FIELDS:
                    setattr(record.slots[slot], name, int(value))
                elif name in _BOOL_FIELDS:
                    setattr(record.slots[slot], name, value not in ("0", "", "false"))
                else:
                    setattr(record.slots[slot], name, value)
        except ValueError as exc:
            raise RecordError(f"bad value in {line!r}: {exc}") from exc
    return record


def read_record(disk: Path, area_offset: int) -> BootRecord:
    """The newest valid copy in the record area at ``area_offset`` of ``disk``."""
    errors: list[str] = []
    best: BootRecord | None = None
    with Path(disk).open("rb") as fh:
        for index, copy_offset in enumerate(COPY_OFFSETS):
            fh.seek(area_offset + copy_offset)
            try:
                record = decode(fh.read(COPY_SIZE))
            except RecordError as exc:
                errors.append(f"copy {index}: {exc}")
                continue
            if best is None or record.generation > best.generation:
                best = record
    if best is None:
        raise RecordError(f"{disk}: boot record unreadable, both copies invalid ({'; '.join(errors)})")
    return best


def write_record(disk: Path, area_offset: int, record: BootRecord) -> BootRecord:
    """Write ``record`` as the next generation over the older copy (fsync'd); returns it with the new generation.

    The newer copy is never touched, so a crash mid-write leaves the previous state readable.
    """
    try:
        current = read_record(disk, area_offset).generation
    except RecordError:
        current = 0
    record.generation = max(current, record.generation) + 1
    for info in record.slots.values():
        info.priority = max(0, min(MAX_PRIORITY, info.priority))
        info.tries_left = max(0, min(MAX_TRIES, info.tries_left))
    data = encode(record)
    fd = os.open(disk, os.O_WRONLY)
    try:
        os.pwrite(fd, data, area_offset + COPY_OFFSETS[record.generation % 2])
        os.fsync(fd)
    finally:
        os.close(fd)
    return record
