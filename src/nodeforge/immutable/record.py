"""The A/B boot record: which slot boots, Bottlerocket-style priority / tries_left / successful per slot.

Two parts, each with one owner:

* **Slot state** (priority, tries left, successful, the last boot) and what GRUB needs to boot a slot (root hash,
  hash offset, kernel and initramfs blocklists) live in the GRUB environment block on the ESP
  (:mod:`nodeforge.vm.ab_grub` names the variables): the boot loader and the host tools read and write
  the same block. :func:`to_env` / :func:`from_env` map a :class:`BootRecord` to and from its variables.
* **The payload description** of a slot (salt, data blocks, sizes and sha256 of the kernel and initramfs,
  version) is written with the payload into the slot itself: a *slot descriptor* (4 KiB before the signature
  trailer), plain ``key=value`` text readable with ``dd | head``, ending in ``checksum=<sha256>`` and NUL-padded
  (:func:`encode` / :func:`decode`). It changes only when the slot is rewritten.

Selection (what the boot loader does, :meth:`BootRecord.select`, :func:`nodeforge.vm.ab_grub.choose`):
among slots with a root hash, ``priority > 0`` and (``successful`` or ``tries_left > 0``), the highest priority
wins (ties: A). Booting a slot that is not yet successful consumes one try; once tries run out without
``mark-successful``, the slot is skipped, which is the automatic rollback.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nodeforge.immutable.errors import RecordError
from nodeforge.vm.ab_grub import MAX_TRIES, SLOTS, blocklist, var

MAGIC = "nodeforge-slot v1"
COPY_SIZE = 4096
"""Size of a slot descriptor."""
MAX_PRIORITY = 15


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
    """Slot the last boot attempt used (GRUB's ``nf_boot``; mark-successful marks this one)."""
    note: str = ""
    cmdline: str = ""
    """Extra kernel arguments GRUB appends (``nf_cmdline``; empty on a shipped disk)."""

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
            "cmdline": self.cmdline,
            "slots": {s: {**asdict(info), "state": info.describe()} for s, info in self.slots.items()},
        }


_INT_FIELDS = {f.name for f in fields(SlotInfo) if f.type in ("int", int)}
_BOOL_FIELDS = {f.name for f in fields(SlotInfo) if f.type in ("bool", bool)}
#: What the slot descriptor holds (the payload); the state fields live in the grubenv.
PAYLOAD_FIELDS = tuple(f.name for f in fields(SlotInfo) if f.name not in ("priority", "tries_left", "successful"))


def encode(info: SlotInfo) -> bytes:
    """A slot descriptor for ``info``'s payload (text + checksum line, NUL-padded to :data:`COPY_SIZE`)."""
    lines = [MAGIC]
    for name in PAYLOAD_FIELDS:
        text = str(getattr(info, name))
        if "\n" in text:
            raise RecordError(f"slot descriptor field {name} cannot hold {text!r}")
        lines.append(f"{name}={text}")
    body = ("\n".join(lines) + "\n").encode()
    data = body + f"checksum={hashlib.sha256(body).hexdigest()}\n".encode()
    if len(data) > COPY_SIZE:
        raise RecordError(f"slot descriptor too large ({len(data)} > {COPY_SIZE} bytes)")
    return data.ljust(COPY_SIZE, b"\0")


def decode(raw: bytes) -> SlotInfo:
    """Parse a slot descriptor; :class:`RecordError` (with the reason) if it is empty, torn or corrupt."""
    text = raw.split(b"\0", 1)[0]
    if not text.strip():
        raise RecordError("empty slot descriptor")
    marker = text.rfind(b"checksum=")
    if marker < 0:
        raise RecordError("no checksum line")
    body, checksum = text[:marker], text[marker + len("checksum=") :].strip().decode(errors="replace")
    if hashlib.sha256(body).hexdigest() != checksum:
        raise RecordError("checksum mismatch (torn or corrupt slot descriptor)")
    lines = body.decode(errors="replace").splitlines()
    if not lines or lines[0] != MAGIC:
        raise RecordError(f"bad magic {lines[0] if lines else ''!r}")
    info = SlotInfo()
    for line in lines[1:]:
        key, sep, value = line.partition("=")
        if not sep:
            raise RecordError(f"malformed line {line!r}")
        if key not in PAYLOAD_FIELDS:
            continue  # a newer writer's field: ignore
        try:
            if key in _INT_FIELDS:
                setattr(info, key, int(value))
            else:
                setattr(info, key, value)
        except ValueError as exc:
            raise RecordError(f"bad value in {line!r}: {exc}") from exc
    return info


def to_env(record: BootRecord) -> dict[str, str]:
    """The grubenv variables of ``record`` (priority and tries clamped to what GRUB's script handles)."""
    env: dict[str, str] = {}
    for slot in SLOTS:
        info = record.slots[slot]
        info.priority = max(0, min(MAX_PRIORITY, info.priority))
        info.tries_left = max(0, min(MAX_TRIES, info.tries_left))
        filled = info.filled
        env[var(slot, "priority")] = str(info.priority)
        env[var(slot, "tries")] = str(info.tries_left)
        env[var(slot, "ok")] = "1" if info.successful else "0"
        env[var(slot, "roothash")] = info.root_hash
        env[var(slot, "hashoffset")] = str(info.hash_offset) if filled else "0"
        env[var(slot, "kernel")] = blocklist(info.kernel_offset, info.kernel_size) if filled else ""
        env[var(slot, "initrd")] = blocklist(info.initrd_offset, info.initrd_size) if filled else ""
    env["nf_boot"] = record.last_boot
    env["nf_gen"] = str(record.generation)
    env["nf_note"] = record.note.replace("\n", " ")
    env["nf_cmdline"] = record.cmdline
    return env


def from_env(env: dict[str, str], descriptors: dict[str, SlotInfo | None], *, subject: str) -> BootRecord:
    """The record from grubenv variables plus each slot's descriptor (``None``: unreadable).

    A slot the grubenv names a root hash for must have a descriptor with the same root hash: anything else is a
    :class:`RecordError` naming ``subject`` and the slot.
    """

    def number(name: str) -> int:
        try:
            return int(env.get(name, "0") or "0")
        except ValueError as exc:
            raise RecordError(f"{subject}: grubenv variable {name}={env[name]!r} is not a number") from exc

    record = BootRecord(
        generation=number("nf_gen"),
        last_boot=env.get("nf_boot", ""),
        note=env.get("nf_note", ""),
        cmdline=env.get("nf_cmdline", ""),
    )
    for slot in SLOTS:
        root_hash = env.get(var(slot, "roothash"), "")
        desc = descriptors.get(slot)
        if root_hash:
            if desc is None or desc.root_hash != root_hash:
                found = "none" if desc is None else desc.root_hash
                raise RecordError(
                    f"{subject}: grubenv names root hash {root_hash} for slot {slot.upper()}, "
                    f"its slot descriptor has {found}"
                )
            info = desc
        else:
            info = SlotInfo()
        info.priority = number(var(slot, "priority"))
        info.tries_left = number(var(slot, "tries"))
        info.successful = env.get(var(slot, "ok")) == "1"
        record.slots[slot] = info
    return record
