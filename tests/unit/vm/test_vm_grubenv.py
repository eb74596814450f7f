"""The grubenv format (our reader/writer vs grub-editenv), finding it in a FAT ESP, and the slot choice GRUB makes."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from nodeforge.immutable.errors import RecordError
from nodeforge.immutable.record import BootRecord, SlotInfo, from_env, to_env
from nodeforge.vm import ab_grub, grubenv

HASH = "ab" * 32
_GRUB = pytest.mark.skipif(not shutil.which("grub-editenv"), reason="grub-editenv (grub-common) not installed")


def test_render_parse_roundtrip_and_size():
    values = {"nf_a_priority": "1", "nf_note": "back\\slash and\nnewline", "empty": ""}
    block = grubenv.render(values)
    assert len(block) == grubenv.ENV_SIZE and block.startswith(grubenv.HEADER) and block.endswith(b"#")
    assert grubenv.parse(block) == values
    assert grubenv.parse(grubenv.empty()) == {}


@pytest.mark.parametrize(
    ("block", "reason"),
    [
        (b"# GRUB Environment Block\n", "25 bytes"),
        (b"x" * 1024, "not a GRUB environment block"),
        ((b"# GRUB Environment Block\nnovalue\n").ljust(1024, b"#"), "malformed line"),
        ((b"# GRUB Environment Block\na=b").ljust(1024, b"x"), "not terminated"),
    ],
)
def test_parse_rejects(block, reason):
    with pytest.raises(RecordError, match=reason):
        grubenv.parse(block, subject="esp")


def test_render_rejects_bad_names_and_overflow():
    with pytest.raises(RecordError, match="not a valid GRUB variable name"):
        grubenv.render({"a-b": "1"})
    with pytest.raises(RecordError, match="holds 1024"):
        grubenv.render({"x": "y" * 1000})


@_GRUB
def test_grub_editenv_reads_ours_and_we_read_its(tmp_path):
    ours = tmp_path / "ours"
    ours.write_bytes(grubenv.render({"nf_a_tries": "3", "nf_note": "two words", "odd": "a\\b"}))
    listed = subprocess.run(["grub-editenv", str(ours), "list"], capture_output=True, text=True, check=True).stdout
    assert listed.splitlines() == ["nf_a_tries=3", "nf_note=two words", "odd=a\\b"]
    theirs = tmp_path / "theirs"
    subprocess.run(["grub-editenv", str(theirs), "create"], check=True)
    subprocess.run(["grub-editenv", str(theirs), "set", "nf_boot=b", "nf_note=x\\y"], check=True)
    # Debian's grub-editenv adds a "# WARNING" comment line; the variables and their escaping are the same bytes.
    assert b"\nnf_boot=b\nnf_note=x\\\\y\n#" in theirs.read_bytes()
    assert grubenv.parse(theirs.read_bytes()) == {"nf_boot": "b", "nf_note": "x\\y"}


@pytest.mark.skipif(not shutil.which("mcopy") or not shutil.which("mkfs.vfat"), reason="needs mtools, dosfstools")
def test_locate_in_fat_and_write_in_place(tmp_path):
    esp = tmp_path / "esp.img"
    with esp.open("wb") as fh:
        fh.truncate(16 * 1024 * 1024)
    subprocess.run(["mkfs.vfat", "-F", "16", str(esp)], check=True, capture_output=True)
    filler, env = tmp_path / "filler", tmp_path / "grubenv"
    filler.write_bytes(b"z" * 5000)
    env.write_bytes(grubenv.render({"nf_a_tries": "1"}))
    subprocess.run(["mmd", "-i", str(esp), "::/grub"], check=True)
    for src, dest in ((filler, "::/grub/filler"), (env, "::/grub/grubenv")):
        subprocess.run(["mcopy", "-i", str(esp), str(src), dest], check=True)
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 4096 + esp.read_bytes())  # the ESP at an offset, as in the disk
    offset, size = grubenv.locate_fat_file(disk, 4096, "/grub/grubenv")
    assert size == 1024 and disk.read_bytes()[offset : offset + 1024] == env.read_bytes()
    with disk.open("r+b") as fh:
        fh.seek(offset)
        fh.write(grubenv.render({"nf_a_tries": "0", "nf_boot": "a"}))
    out = tmp_path / "back"
    subprocess.run(["mcopy", "-i", f"{disk}@@4096", "::/grub/grubenv", str(out)], check=True)
    assert grubenv.parse(out.read_bytes()) == {"nf_a_tries": "0", "nf_boot": "a"}
    with pytest.raises(RecordError, match=r"/grub/missing not found"):
        grubenv.locate_fat_file(disk, 4096, "/grub/missing")
    with pytest.raises(RecordError, match="no FAT boot sector"):
        grubenv.locate_fat_file(disk, 0, "/grub/grubenv")


def _env(**slots: tuple[int, int, int]) -> dict[str, str]:
    record = BootRecord()
    for slot, (priority, tries, ok) in slots.items():
        record.slots[slot] = SlotInfo(
            priority=priority, tries_left=tries, successful=bool(ok), root_hash=HASH, kernel_size=10, initrd_size=10
        )
    return to_env(record)


@pytest.mark.parametrize(
    ("slots", "chosen", "tries_after"),
    [
        ({"a": (1, 0, 1)}, "a", "0"),  # the good slot, no try taken
        ({"a": (1, 0, 1), "b": (2, 1, 0)}, "b", "0"),  # pending update: B, its only try taken
        ({"a": (1, 0, 1), "b": (2, 0, 0)}, "a", "0"),  # B's tries used up, never marked: back to A
        ({"a": (1, 0, 1), "b": (2, 3, 0)}, "b", "2"),
        ({"a": (2, 0, 1), "b": (2, 0, 1)}, "a", "0"),  # tie: A
        ({"a": (0, 0, 1), "b": (1, 0, 1)}, "b", "0"),  # A disabled
        ({"a": (1, 0, 0), "b": (0, 0, 0)}, None, None),  # nothing bootable
    ],
)
def test_choose(slots, chosen, tries_after):
    env = _env(**slots)
    slot, changes = ab_grub.choose(env)
    assert slot == chosen
    if chosen is None:
        assert changes == {}
    else:
        assert changes == {f"nf_{chosen}_tries": tries_after, "nf_boot": chosen}
        # the Python record agrees with GRUB's choice
        record = from_env(env, {s: SlotInfo(root_hash=HASH) for s in "ab"}, subject="t")
        assert record.select() == chosen


def test_record_env_roundtrip_and_budget():
    record = BootRecord(note="updated slot b (pending, 1 tries)", last_boot="a")
    for slot in "ab":
        record.slots[slot] = SlotInfo(
            priority=1, tries_left=15, root_hash=HASH, hash_offset=291024896, kernel_offset=293601280,
            kernel_size=14190528, initrd_offset=307793920, initrd_size=6503024,
        )  # fmt: skip
    record.cmdline = "x" * 330  # the boot check's arguments
    env = to_env(record)
    assert env["nf_a_kernel"] == "573440+27716" and env["nf_a_initrd"] == "601160+12702"
    grubenv.render(env)  # fits the 1024 bytes with the boot check's arguments
    back = from_env(env, {s: SlotInfo(root_hash=HASH) for s in "ab"}, subject="t")
    assert back.slots["a"].tries_left == 15 and back.last_boot == "a" and back.cmdline == record.cmdline
    with pytest.raises(RecordError, match=r"disk\.img: grubenv names root hash .* slot B, its slot descriptor has no"):
        from_env(env, {"a": SlotInfo(root_hash=HASH), "b": None}, subject="disk.img")
    env["nf_a_priority"] = "x"
    with pytest.raises(RecordError, match="nf_a_priority"):
        from_env(env, {s: SlotInfo(root_hash=HASH) for s in "ab"}, subject="t")


@pytest.mark.skipif(not shutil.which("grub-script-check"), reason="grub-script-check (grub-common) not installed")
def test_grub_cfg_is_valid_grub_script(tmp_path):
    cfg = tmp_path / "grub.cfg"
    cfg.write_text(ab_grub.grub_cfg({"a": 2, "b": 3}))
    subprocess.run(["grub-script-check", str(cfg)], check=True)
    text = cfg.read_text()
    assert 'save_env --file "$nf_env" nf_b_tries nf_boot' in text and "(hd0" not in text
    assert 'if [ "$nf_a_tries" = 15 ]; then set nf_a_tries=14' in text
    assert "linux ($nf_disk,gpt$nf_part)$nf_kernel root=/dev/mapper/nf-root" in text
