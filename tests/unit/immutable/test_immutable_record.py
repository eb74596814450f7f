"""The A/B boot record: encoding, checksum, two-copy atomic writes, corrupt copies, slot selection."""

from __future__ import annotations

import pytest

from nodeforge.immutable.errors import RecordError
from nodeforge.immutable.record import (
    COPY_OFFSETS,
    COPY_SIZE,
    RECORD_AREA,
    BootRecord,
    SlotInfo,
    decode,
    encode,
    read_record,
    write_record,
)

HASH = "ab" * 32


def _record(**slot_a) -> BootRecord:
    record = BootRecord()
    record.slots["a"] = SlotInfo(root_hash=HASH, **({"priority": 1, "successful": True} | slot_a))
    return record


def _area(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * (RECORD_AREA + 8192))
    return disk


def test_roundtrip():
    record = _record(version="v1", kernel_offset=4096)
    record.slots["b"] = SlotInfo(priority=2, tries_left=1, root_hash="cd" * 32, salt="00ff")
    record.last_boot = "b"
    decoded = decode(encode(record))
    assert decoded.slots == record.slots and decoded.last_boot == "b"
    assert len(encode(record)) == COPY_SIZE


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: b"\0" * len(raw), "empty"),
        (lambda raw: raw.replace(b"priority=1", b"priority=9"), "checksum"),
        (lambda raw: raw[:100] + b"\0" * (len(raw) - 100), "no checksum"),
    ],
)
def test_decode_rejects_damage(damage, reason):
    with pytest.raises(RecordError, match=reason):
        decode(damage(encode(_record())))


def test_select_priority_tries_successful():
    record = _record()
    assert record.select() == "a"
    record.slots["b"] = SlotInfo(root_hash=HASH, priority=2, tries_left=1)
    assert record.select() == "b"  # pending with tries left wins
    record.slots["b"].tries_left = 0
    assert record.select() == "a"  # exhausted: automatic rollback
    assert record.slots["b"].describe() == "exhausted"
    record.slots["b"].successful = True
    assert record.select() == "b"
    record.slots["a"].priority = 2
    assert record.select() == "a"  # tie -> A
    record.slots["a"].priority = record.slots["b"].priority = 0
    assert record.select() is None


def test_writes_alternate_copies_and_newest_wins(tmp_path):
    disk = _area(tmp_path)
    first = write_record(disk, 0, _record(version="one"))
    second = write_record(disk, 0, _record(version="two"))
    assert (first.generation, second.generation) == (1, 2)
    raw = disk.read_bytes()
    copies = [decode(raw[o : o + COPY_SIZE]) for o in COPY_OFFSETS]
    assert {c.slots["a"].version for c in copies} == {"one", "two"}
    assert read_record(disk, 0).slots["a"].version == "two"


def test_torn_write_keeps_previous_state(tmp_path):
    disk = _area(tmp_path)
    write_record(disk, 0, _record(version="one"))
    newest = write_record(disk, 0, _record(version="two"))
    # Simulate a crash half-way through writing generation 3 over the older copy.
    target = COPY_OFFSETS[(newest.generation + 1) % 2]
    data = encode(_record(version="three"))
    with disk.open("r+b") as fh:
        fh.seek(target)
        fh.write(data[:200])
    assert read_record(disk, 0).slots["a"].version == "two"
    # Corrupting the newest copy falls back to the older one.
    with disk.open("r+b") as fh:
        fh.seek(COPY_OFFSETS[newest.generation % 2] + 30)
        fh.write(b"XX")
    with pytest.raises(RecordError, match=r"disk\.img.*both copies invalid"):
        read_record(disk, 0)


def test_corrupt_newest_copy_falls_back(tmp_path):
    disk = _area(tmp_path)
    write_record(disk, 0, _record(version="one"))
    newest = write_record(disk, 0, _record(version="two"))
    with disk.open("r+b") as fh:
        fh.seek(COPY_OFFSETS[newest.generation % 2] + 40)
        fh.write(b"\xff")
    assert read_record(disk, 0).slots["a"].version == "one"
    # The next write goes over the corrupt copy's neighbour and wins again.
    assert write_record(disk, 0, _record(version="three")).generation == 2
    assert read_record(disk, 0).slots["a"].version == "three"


def test_empty_area_names_disk(tmp_path):
    disk = _area(tmp_path)
    with pytest.raises(RecordError, match=r"disk\.img"):
        read_record(disk, 0)


def test_values_clamped_and_newlines_refused(tmp_path):
    disk = _area(tmp_path)
    written = write_record(disk, 0, _record(priority=99, tries_left=-3))
    assert written.slots["a"].priority == 15 and written.slots["a"].tries_left == 0
    with pytest.raises(RecordError, match="version"):
        encode(_record(version="a\nb"))
