"""A/B operations on a disk image: update the inactive slot, start a boot, mark it successful, roll back.

State machine (per slot: priority, tries_left, successful; see :mod:`nodeforge.immutable.record`):

* ``update``: the sealed root is verified (``veritysetup verify`` against the expected root hash)
  *before* anything is written; the target slot is first disabled in the record, then written,
  then checked in place (root hash recomputed from the written data, hash tree and kernel/initramfs
  compared byte for byte); only then does the record make it the pending slot
  (priority above the active one, ``tries_left`` = tries, not successful). Any failure leaves the
  previously active slot active.
* ``begin_boot`` (what GRUB does at power-on, :mod:`nodeforge.vm.ab_grub`): selects the slot,
  consumes one try if it is pending, remembers it as ``last_boot`` -- on the disk file, for tools and tests;
  a booted disk has GRUB do it.
* ``mark_successful`` (after the boot reached "ready"): marks ``last_boot`` successful.
* A pending slot whose tries ran out is no longer selected: the previous slot boots (automatic
  rollback). ``rollback`` makes that explicit (disables the current slot) or rolls back a good slot
  on request.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nodeforge.immutable import signing, verity
from nodeforge.immutable.errors import DiskError, UpdateRefusedError, VerityError
from nodeforge.immutable.record import MAX_PRIORITY, BootRecord, SlotInfo, other
from nodeforge.immutable.seal import SealedRoot
from nodeforge.vm import ab_grub
from nodeforge.vm.ab_disk import DiskLayout, read_layout, region_sha256, write_payload

DEFAULT_TRIES = 1


@dataclass
class UpdateResult:
    """Outcome of :func:`update_slot`."""

    disk: Path
    slot: str
    previous: str
    root_hash: str
    tries_left: int
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "disk": str(self.disk)}


@dataclass
class BootChoice:
    """What :func:`begin_boot` chose."""

    slot: str
    info: SlotInfo
    consumed_try: bool
    skipped: str = ""
    """Why the higher-priority slot was not chosen (automatic rollback), if it was skipped."""


def _selected(record: BootRecord, subject: Path | str) -> str:
    """The slot the record boots now; :class:`DiskError` naming ``subject`` when none is bootable."""
    active = record.select()
    if active is None:
        raise DiskError(f"{subject}: no bootable slot in the boot record ({record.to_dict()['slots']})")
    return active


def verify_slot(layout: DiskLayout, slot: str, info: SlotInfo, sealed: SealedRoot | None = None) -> float:
    """Check ``slot`` in place: root hash recomputed from its data; hash tree, boot files, signature vs ``sealed``."""
    started = time.monotonic()
    with layout.path.open("rb") as fh:
        actual = verity.root_hash_of(
            fh, offset=layout.slot(slot).start, data_blocks=info.data_blocks, salt=info.salt, subject=layout.path
        )
    if actual != info.root_hash:
        raise VerityError(
            f"{layout.path}: slot {slot.upper()} data does not match root hash {info.root_hash} (got {actual})"
        )
    checks = [(info.kernel_offset, info.kernel_size, info.kernel_sha256, "kernel")]
    checks.append((info.initrd_offset, info.initrd_size, info.initrd_sha256, "initramfs"))
    if sealed is not None:
        checks.append((info.hash_offset, info.hash_bytes, verity_sha(sealed), "hash tree"))
    for offset, size, want, what in checks:
        if region_sha256(layout, slot, offset, size) != want:
            raise VerityError(f"{layout.path}: slot {slot.upper()} {what} differs from what was written")
    if sealed is not None:
        want_trailer = sealed.signature_file.read_bytes() if sealed.signed else bytes(signing.TRAILER_SIZE)
        if layout.read_trailer(slot) != want_trailer:
            raise VerityError(f"{layout.path}: slot {slot.upper()} signature trailer differs from what was written")
    return time.monotonic() - started


def verity_sha(sealed: SealedRoot) -> str:
    """sha256 of the sealed hash tree file."""
    return hashlib.sha256(sealed.hash_tree.read_bytes()).hexdigest()


def update_target(record: BootRecord, *, running: str | None = None, subject: Path | str = "") -> tuple[str, str]:
    """``(slot kept, slot an update writes)``: the kept slot is the best proven one, else the one that boots now.

    ``running`` is the slot the caller runs from (an update on the node): an update never writes it, so when the
    rule would pick it (the node runs a pending slot while the other is the proven one) the update is refused.
    """
    good = [s for s in record.slots if record.slots[s].bootable and record.slots[s].successful]
    keep = max(good, key=lambda s: (record.slots[s].priority, s == "a")) if good else _selected(record, subject)
    target = other(keep)
    if running is not None and target == running:
        raise UpdateRefusedError(
            f"{subject}: the running slot {running.upper()} is not marked successful and slot {keep.upper()} is the "
            f"proven one: an update would overwrite the running root; let this boot be marked successful "
            f"(nodeforge-mark-boot) or reboot into slot {keep.upper()} first"
        )
    return keep, target


def update_slot(
    disk: Path,
    sealed_dir: Path,
    *,
    root_hash: str | None = None,
    tries: int = DEFAULT_TRIES,
    running: str | None = None,
) -> UpdateResult:
    """Write the sealed root in ``sealed_dir`` into the inactive slot of ``disk`` and make it pending.

    ``root_hash`` is the hash the update must have (e.g. from a signed catalog); default: the one in
    ``seal.json``. Raises :class:`UpdateRefusedError` (active slot untouched) when the sealed root does
    not verify against it. ``running``: the slot the caller booted from (on the node), never written.
    The sealed root is checked with ``veritysetup verify`` where it is installed, else by recomputing the whole
    hash tree in Python (:func:`nodeforge.immutable.verity.verify_sealed`; the sealed node has no veritysetup).
    """
    layout = read_layout(disk)
    record = layout.read_record()
    active, target = update_target(record, running=running, subject=layout.path)
    sealed = SealedRoot.load(Path(sealed_dir))
    seconds: dict[str, float] = {}
    expected = sealed.root_hash
    if root_hash is not None:
        expected = verity.check_root_hash(root_hash, subject=sealed.directory / "seal.json")
        if expected != sealed.root_hash:
            raise UpdateRefusedError(
                f"{sealed.directory / 'seal.json'}: root hash {sealed.root_hash} is not the expected {expected}; "
                f"update refused, slot {active.upper()} stays active"
            )
    try:
        took, engine = verity.verify_sealed(sealed.image, sealed.hash_tree, expected)
        seconds[f"verify sealed ({engine})"] = took
    except VerityError as exc:
        raise UpdateRefusedError(f"{exc}\nupdate refused, slot {active.upper()} stays active") from exc
    public_pem = layout.public_key()
    if public_pem is not None:  # the initramfs would refuse this root: refuse it before writing
        trailer = sealed.signature_file.read_bytes() if sealed.signed else b""
        ok, verdict = signing.run_verify_script(signing.key_area(public_pem), trailer, expected, required=True)
        if not ok:
            raise UpdateRefusedError(
                f"{sealed.directory}: {verdict}\nupdate refused, slot {active.upper()} stays active"
            )

    # Disable the target first: a crash while writing must never leave a half-written slot selectable.
    record.slots[target] = SlotInfo()
    record.note = f"writing slot {target}"
    record = layout.write_record(record)
    started = time.monotonic()
    info = write_payload(layout, target, sealed)
    seconds["write"] = time.monotonic() - started
    try:
        seconds["verify slot"] = verify_slot(layout, target, info, sealed)
    except VerityError as exc:
        raise UpdateRefusedError(f"{exc}\nupdate refused, slot {active.upper()} stays active") from exc

    info.priority = min(MAX_PRIORITY, record.slots[active].priority + 1)
    if info.priority <= record.slots[active].priority:  # at the ceiling: step the active one down
        record.slots[active].priority = info.priority - 1
    info.tries_left = max(1, tries)
    info.successful = False
    record.slots[target] = info
    record.note = f"updated slot {target} (pending, {info.tries_left} tries)"
    layout.write_record(record)
    return UpdateResult(
        disk=layout.path,
        slot=target,
        previous=active,
        root_hash=info.root_hash,
        tries_left=info.tries_left,
        seconds={k: round(v, 2) for k, v in seconds.items()},
    )


def grub_choice(layout: DiskLayout) -> tuple[BootRecord, dict[str, str], str, dict[str, str], str]:
    """The slot GRUB will boot next and what it will write (nothing is written here).

    Returns the boot record, the grubenv, the slot, GRUB's grubenv changes, and why a higher-priority slot is
    skipped ("" when none is). Raises :class:`DiskError` when no slot is bootable.
    """
    record = layout.read_record()
    env = layout.read_env()
    slot, changes = ab_grub.choose(env)
    if slot is None:
        raise DiskError(f"{layout.path}: no bootable slot in the boot record ({record.to_dict()['slots']})")
    skipped = ""
    alt = record.slots[other(slot)]
    if alt.filled and alt.priority > record.slots[slot].priority and not alt.bootable:
        skipped = f"slot {other(slot).upper()} skipped: {alt.describe()} (tries exhausted without mark-successful)"
    return record, env, slot, changes, skipped


def begin_boot(disk: Path) -> BootChoice:
    """What GRUB does at power-on, on the disk file: choose the slot, take a try if it is pending, persist it.

    The same decision as the disk's grub.cfg (:func:`nodeforge.vm.ab_grub.choose` on the same grubenv,
    the same variables written); for tests and tools that do not boot the disk.
    """
    layout = read_layout(disk)
    record, env, slot, changes, skipped = grub_choice(layout)
    info = record.slots[slot]
    consumed = changes[ab_grub.var(slot, "tries")] != str(info.tries_left)
    layout.write_env({**env, **changes})
    info.tries_left = int(changes[ab_grub.var(slot, "tries")])
    return BootChoice(slot=slot, info=info, consumed_try=consumed, skipped=skipped)


def mark_successful(disk: Path) -> str:
    """Mark the slot of the last boot attempt successful (the boot reached "ready"); returns it."""
    layout = read_layout(disk)
    record = layout.read_record()
    slot = record.last_boot or _selected(record, layout.path)
    info = record.slots[slot]
    if not info.filled or info.priority <= 0:
        raise DiskError(f"{disk}: slot {slot.upper()} is not bootable; nothing to mark successful")
    info.successful = True
    info.tries_left = 0
    peer = record.slots[other(slot)]
    if peer.priority >= info.priority:
        peer.priority = max(0, info.priority - 1)
    record.note = f"slot {slot} marked successful"
    layout.write_record(record)
    return slot


def rollback(disk: Path) -> tuple[str, str]:
    """Disable the current (highest-priority) slot and make the other, previously good slot active.

    Returns ``(from_slot, to_slot)``. Raises :class:`DiskError` if the other slot has nothing
    bootable (never filled or never successful).
    """
    layout = read_layout(disk)
    record = layout.read_record()
    filled = [s for s in record.slots if record.slots[s].filled and record.slots[s].priority > 0]
    if not filled:
        raise DiskError(f"{disk}: no slot to roll back from")
    current = max(filled, key=lambda s: (record.slots[s].priority, s == "a"))
    target = other(current)
    prev = record.slots[target]
    if not prev.filled or not prev.successful:
        raise DiskError(
            f"{disk}: cannot roll back from slot {current.upper()}: slot {target.upper()} "
            f"is {prev.describe()} (never booted successfully)"
        )
    cur = record.slots[current]
    cur.priority, cur.tries_left, cur.successful = 0, 0, False
    prev.priority = max(prev.priority, 1)
    record.note = f"rolled back from slot {current} to slot {target}"
    layout.write_record(record)
    return current, target


def status(disk: Path) -> dict[str, Any]:
    """The boot record plus the partition layout, as a dict (``status`` command, JSON)."""
    layout = read_layout(disk)
    record = layout.read_record()
    data = record.to_dict()
    data["disk"] = str(layout.path)
    data["partitions"] = {
        p.name: {"number": p.number, "start": p.start, "size": p.size} for p in layout.partitions.values()
    }
    return data
