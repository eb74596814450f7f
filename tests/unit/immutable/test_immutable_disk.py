"""The A/B disk: create, update (verified first), boot attempts, mark-successful, rollback, refusals."""

from __future__ import annotations

import json
import subprocess

import pytest
from immutable_helpers import flip_byte, needs_tools

from nodeforge.immutable import update
from nodeforge.immutable.errors import DiskError, SealedDirError, UpdateRefusedError, VerityError
from nodeforge.immutable.seal import SealedRoot
from nodeforge.vm.ab_disk import STATE, create_disk, read_layout

pytestmark = needs_tools

SETTINGS = '[settings.kubernetes]\ncluster-name = "t"\ncluster-dns-ip = "10.100.0.10"\n'


@pytest.fixture
def disk(sealed_pair, tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text(SETTINGS)
    path = tmp_path / "disk.img"
    create_disk(path, sealed_pair[0], state_mb=16, settings=settings, metadata={"instance-type": "m5.xlarge"})
    return path


def _status(disk):
    return update.status(disk)


def test_create_layout_and_record(disk, sealed_pair):
    layout = read_layout(disk)
    assert [(p.number, p.name) for p in sorted(layout.partitions.values(), key=lambda p: p.number)] == [
        (1, "NF-BOOTCFG"),
        (2, "NF-ROOT-A"),
        (3, "NF-ROOT-B"),
        (4, "NF-STATE"),
        (127, "BIOS Boot Partition"),
        (128, "EFI System Partition"),
    ]
    assert all(p.start % (1024 * 1024) == 0 for p in layout.partitions.values())
    assert layout.partitions["BIOS Boot Partition"].start < layout.esp.start < layout.bootcfg.start
    status = _status(disk)
    assert status["selected"] == "a"
    assert status["slots"]["a"]["state"] == "good" and status["slots"]["a"]["root_hash"] == sealed_pair[0].root_hash
    assert status["slots"]["b"]["state"] == "empty"
    info = layout.read_record().slots["a"]
    assert update.verify_slot(layout, "a", info, sealed_pair[0]) >= 0
    assert not list(disk.parent.glob(".disk.img*"))  # temp files gone


def test_state_partition_holds_settings(disk, tmp_path):
    layout = read_layout(disk)
    state = tmp_path / "state.img"
    with disk.open("rb") as src:
        src.seek(layout.state.start)
        state.write_bytes(src.read(layout.state.size))
    cat = subprocess.run(
        ["debugfs", "-R", "cat /lib/nodeforge/user-data.toml", str(state)], capture_output=True, text=True, check=True
    )
    assert "cluster-dns-ip" in cat.stdout
    meta = subprocess.run(
        ["debugfs", "-R", "cat /lib/nodeforge/instance-metadata.json", str(state)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(meta.stdout) == {"instance-type": "m5.xlarge"}
    label = subprocess.run(["e2label", str(state)], capture_output=True, text=True, check=True).stdout.strip()
    assert label == STATE


def test_update_mark_successful(disk, sealed_pair):
    v2 = sealed_pair[1]
    result = update.update_slot(disk, v2.directory)
    assert (result.slot, result.previous, result.tries_left) == ("b", "a", 1)
    status = _status(disk)
    assert status["selected"] == "b" and status["slots"]["b"]["state"] == "pending"
    assert status["slots"]["a"]["state"] == "good"

    choice = update.begin_boot(disk)
    assert choice.slot == "b" and choice.consumed_try
    assert update.mark_successful(disk) == "b"
    status = _status(disk)
    assert status["selected"] == "b" and status["slots"]["b"]["state"] == "good"
    assert status["slots"]["a"]["priority"] < status["slots"]["b"]["priority"]

    # The next update goes to A again (now the inactive slot).
    assert update.update_slot(disk, sealed_pair[0].directory).slot == "a"
    assert _status(disk)["selected"] == "a"


def test_second_update_replaces_the_pending_slot_not_the_good_one(disk, sealed_pair):
    assert update.update_slot(disk, sealed_pair[1].directory).slot == "b"
    assert update.update_slot(disk, sealed_pair[0].directory).slot == "b"  # B never proven: A is kept
    status = _status(disk)
    assert status["slots"]["a"]["state"] == "good" and status["slots"]["b"]["state"] == "pending"
    assert status["slots"]["b"]["root_hash"] == sealed_pair[0].root_hash


def test_tries_exhausted_rolls_back(disk, sealed_pair):
    update.update_slot(disk, sealed_pair[1].directory)
    assert update.begin_boot(disk).slot == "b"  # consumes the only try, never marked successful
    choice = update.begin_boot(disk)
    assert choice.slot == "a" and not choice.consumed_try
    assert "slot B skipped" in choice.skipped
    assert _status(disk)["slots"]["b"]["state"] == "exhausted"
    assert update.rollback(disk) == ("b", "a")
    status = _status(disk)
    assert status["selected"] == "a" and status["slots"]["b"]["state"] == "disabled"


def test_explicit_rollback_of_good_slot(disk, sealed_pair):
    update.update_slot(disk, sealed_pair[1].directory)
    update.begin_boot(disk)
    update.mark_successful(disk)
    assert update.rollback(disk) == ("b", "a")
    assert _status(disk)["selected"] == "a"
    with pytest.raises(DiskError, match="slot B"):
        update.rollback(disk)  # B was disabled; nothing good to go back to


def test_rollback_needs_a_good_previous_slot(disk):
    with pytest.raises(DiskError, match=r"disk\.img.*slot B is empty"):
        update.rollback(disk)


def test_corrupted_update_is_refused_and_active_slot_stays(disk, sealed_copy):
    copy = sealed_copy(2)
    sealed = SealedRoot.load(copy)
    flip_byte(sealed.image, 4096 + 17)
    before = _status(disk)
    with pytest.raises(UpdateRefusedError, match=r"root\.img(.|\n)*slot A stays active"):
        update.update_slot(disk, copy)
    after = _status(disk)
    assert after["selected"] == "a" and after["generation"] == before["generation"]
    assert after["slots"] == before["slots"]


def test_wrong_root_hash_is_refused(disk, sealed_pair):
    before = _status(disk)
    with pytest.raises(UpdateRefusedError, match=r"seal\.json.*slot A stays active"):
        update.update_slot(disk, sealed_pair[1].directory, root_hash=sealed_pair[0].root_hash)
    with pytest.raises(VerityError, match="64 hex"):
        update.update_slot(disk, sealed_pair[1].directory, root_hash="xyz")
    assert _status(disk) == before


def test_update_with_expected_root_hash(disk, sealed_pair):
    result = update.update_slot(disk, sealed_pair[1].directory, root_hash=sealed_pair[1].root_hash.upper())
    assert result.root_hash == sealed_pair[1].root_hash


def test_damaged_slot_detected_in_place(disk, sealed_pair):
    layout = read_layout(disk)
    info = layout.read_record().slots["a"]
    flip_byte(disk, layout.slot("a").start + 8192)
    with pytest.raises(VerityError, match=r"disk\.img.*slot A"):
        update.verify_slot(layout, "a", info, sealed_pair[0])


def test_corrupt_record_names_disk(disk):
    layout = read_layout(disk)
    offset = layout.env_offset()
    with disk.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * 64)
    with pytest.raises(DiskError, match=r"disk\.img: ESP /grub/grubenv: not a GRUB environment block"):
        update.status(disk)


def test_damaged_descriptor_of_a_named_slot_is_an_error(disk):
    layout = read_layout(disk)
    with disk.open("r+b") as fh:
        fh.seek(layout.slot("a").start + layout.descriptor_offset("a") + 40)
        fh.write(b"\xff")
    with pytest.raises(DiskError, match=r"disk\.img: grubenv names root hash \w+ for slot A, its slot descriptor"):
        update.status(disk)


def test_grub_reads_what_the_host_writes(disk, sealed_pair, tmp_path):
    """The ESP holds GRUB for UEFI, grub.cfg and the grubenv; grub-editenv lists the host's slot state."""
    layout = read_layout(disk)
    update.update_slot(disk, sealed_pair[1].directory, tries=3)
    esp = f"{disk}@@{layout.esp.start}"
    listing = subprocess.run(["mdir", "-b", "-i", esp, "::/EFI/BOOT", "::/grub"], capture_output=True, text=True)
    assert "BOOTX64.EFI" in listing.stdout and "grub.cfg" in listing.stdout and "grubenv" in listing.stdout
    env = tmp_path / "grubenv"
    subprocess.run(["mcopy", "-i", esp, "::/grub/grubenv", str(env)], check=True)
    out = subprocess.run(["grub-editenv", str(env), "list"], capture_output=True, text=True, check=True).stdout
    listed = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert listed["nf_b_roothash"] == sealed_pair[1].root_hash and listed["nf_b_tries"] == "3"
    assert listed["nf_b_priority"] == "2" and listed["nf_b_ok"] == "0" and listed["nf_a_ok"] == "1"
    with disk.open("rb") as fh:  # GRUB's boot.img in the MBR, its core image in the BIOS boot partition
        assert fh.read(512)[510:] == b"\x55\xaa"
        fh.seek(layout.partitions["BIOS Boot Partition"].start)
        assert fh.read(512) != bytes(512)


def test_bad_inputs(tmp_path, sealed_pair, disk):
    with pytest.raises(DiskError, match=r"nope\.img"):
        update.status(tmp_path / "nope.img")
    plain = tmp_path / "plain.img"
    plain.write_bytes(b"\0" * 1024 * 1024)
    with pytest.raises(DiskError, match=r"plain\.img"):
        update.status(plain)
    with pytest.raises(SealedDirError, match=r"seal\.json"):
        update.update_slot(disk, tmp_path / "not-sealed")
    with pytest.raises(DiskError, match="too small"):
        create_disk(tmp_path / "small.img", sealed_pair[0], slot_mb=1, state_mb=16)
    with pytest.raises(DiskError, match=r"nosettings\.toml"):
        create_disk(tmp_path / "x.img", sealed_pair[0], settings=tmp_path / "nosettings.toml")


def test_disk_from_before_the_boot_loader_is_named(tmp_path):
    old = tmp_path / "old.img"
    old.write_bytes(b"\0" * 8 * 1024 * 1024)
    names = ["NF-BOOTCFG", "NF-ROOT-A", "NF-ROOT-B", "NF-STATE"]
    script = "label: gpt\n" + "".join(f'size=2048, name="{n}"\n' for n in names)
    subprocess.run(["sfdisk", "--quiet", str(old)], input=script, text=True, check=True, capture_output=True)
    with pytest.raises(DiskError, match=r"old\.img: an A/B disk without an EFI system partition.*disk create"):
        update.status(old)
