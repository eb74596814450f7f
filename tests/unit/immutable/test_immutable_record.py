"""The A/B boot record: the slot descriptor's encoding and checksum, and slot selection."""

from __future__ import annotations

import pytest

from nodeforge.immutable.errors import RecordError
from nodeforge.immutable.record import COPY_SIZE, BootRecord, SlotInfo, decode, encode

HASH = "ab" * 32


def _record(**slot_a) -> BootRecord:
    record = BootRecord()
    record.slots["a"] = SlotInfo(root_hash=HASH, **({"priority": 1, "successful": True} | slot_a))
    return record


def test_descriptor_roundtrip_holds_the_payload_only():
    info = SlotInfo(priority=2, tries_left=1, root_hash="cd" * 32, salt="00ff", kernel_offset=4096, version="v1")
    decoded = decode(encode(info))
    assert len(encode(info)) == COPY_SIZE
    assert (decoded.root_hash, decoded.salt, decoded.kernel_offset, decoded.version) == ("cd" * 32, "00ff", 4096, "v1")
    assert (decoded.priority, decoded.tries_left, decoded.successful) == (0, 0, False)  # state: the grubenv's


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: b"\0" * len(raw), "empty"),
        (lambda raw: raw.replace(b"version=v1", b"version=v9"), "checksum"),
        (lambda raw: raw[:100] + b"\0" * (len(raw) - 100), "no checksum"),
    ],
)
def test_decode_rejects_damage(damage, reason):
    with pytest.raises(RecordError, match=reason):
        decode(damage(encode(SlotInfo(root_hash=HASH, version="v1"))))


def test_newlines_refused():
    with pytest.raises(RecordError, match="version"):
        encode(SlotInfo(root_hash=HASH, version="a\nb"))


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
