"""Reproducible seals: the same tree gives the same root hash, whatever the tar's order or the clock says."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from immutable_helpers import needs_tools, tiny_rootfs

from nodeforge.immutable import reproducible
from nodeforge.immutable.errors import SealError
from nodeforge.immutable.seal import SEAL_JSON, seal_rootfs

pytestmark = needs_tools


def repack(src: Path, dest: Path, *, reverse: bool = True, change: str | None = None) -> Path:
    """Write src's members to dest in reverse order (same content); ``change`` names a member to alter by a byte."""
    with tarfile.open(src) as tin, tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tout:
        members = tin.getmembers()
        for member in reversed(members) if reverse else members:
            data = tin.extractfile(member).read() if member.isfile() else None
            if data is not None and member.name == change:
                data = data[:-1] + bytes([data[-1] ^ 1])
            tout.addfile(member, None if data is None else io.BytesIO(data))
    return dest


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    """The same tree sealed twice from two tars (member order reversed), a few seconds apart."""
    base = tmp_path_factory.mktemp("repro")
    first_tar = tiny_rootfs(base / "first.tar", marker="same")
    second_tar = repack(first_tar, base / "second.tar")
    first = seal_rootfs(first_tar, base / "one")
    time.sleep(1.1)  # the clock moves on: files the seal writes get other mtimes on disk
    second = seal_rootfs(second_tar, base / "two")
    return first, second, first_tar


def test_same_tree_same_root_hash_and_bytes(twice):
    first, second, _ = twice
    assert first.root_hash == second.root_hash
    assert first.image.read_bytes() == second.image.read_bytes()
    assert first.hash_tree.read_bytes() == second.hash_tree.read_bytes()  # salt and superblock UUID fixed too
    assert first.verity.salt == second.verity.salt and first.verity.uuid == second.verity.uuid
    assert first.inputs == second.inputs


def test_inputs_recorded_in_seal_json(twice):
    first, _, tar = twice
    record = json.loads((first.directory / SEAL_JSON).read_text())
    inputs = record["inputs"]
    with tarfile.open(tar) as t:
        newest = max(m.mtime for m in t.getmembers())
    assert inputs["source_date_epoch"] == newest and inputs["source_date_epoch_from"].startswith("newest file mtime")
    assert inputs["image_sha256"] == reproducible.hashlib.sha256(first.image.read_bytes()).hexdigest()
    assert record["verity"]["salt"] == reproducible.verity_salt(inputs["image_sha256"])
    assert record["verity"]["uuid"] == reproducible.verity_uuid(inputs["image_sha256"])
    assert f"-U{reproducible.fs_uuid(inputs['tree_sha256'])}" in inputs["fs_options"]
    assert any(t.startswith("erofs-utils ") for t in inputs["tools"])


def test_one_changed_byte_changes_everything(twice, tmp_path):
    first, _, tar = twice
    changed = seal_rootfs(repack(tar, tmp_path / "changed.tar", reverse=False, change="etc/os-release"), tmp_path / "c")
    assert changed.root_hash != first.root_hash
    assert changed.inputs["tree_sha256"] != first.inputs["tree_sha256"]
    assert changed.verity.salt != first.verity.salt


def test_epoch_is_an_input(twice, tmp_path, monkeypatch):
    first, _, tar = twice
    epoch = first.inputs["source_date_epoch"]
    explicit = seal_rootfs(tar, tmp_path / "e", source_date_epoch=epoch)
    assert explicit.root_hash == first.root_hash and explicit.inputs["source_date_epoch_from"] == "argument"
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(epoch - 86400))  # older than some files: their mtimes clamp
    clamped = seal_rootfs(tar, tmp_path / "env")
    assert clamped.inputs["source_date_epoch_from"] == "$SOURCE_DATE_EPOCH"
    assert clamped.root_hash != first.root_hash


def test_bad_epoch_named(tmp_path, monkeypatch):
    tar = tiny_rootfs(tmp_path / "r.tar")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(SealError, match=r"r\.tar: SOURCE_DATE_EPOCH='yesterday'"):
        seal_rootfs(tar, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_tree_digest_ignores_creation_order_not_content(tmp_path):
    trees = []
    for name, order in (("a", ["x", "y", "z"]), ("b", ["z", "x", "y"])):
        root = tmp_path / name
        (root / "d").mkdir(parents=True)
        for entry in order:
            (root / "d" / entry).write_text(entry)
            os.utime(root / "d" / entry, (1_600_000_000, 1_600_000_000))
        (root / "link").symlink_to("d/x")
        trees.append(root)
    epoch = 1_700_000_000  # the directories (mtime now) clamp to it
    assert reproducible.tree_digest(trees[0], epoch) == reproducible.tree_digest(trees[1], epoch)
    (trees[1] / "d" / "y").chmod(0o600)
    assert reproducible.tree_digest(trees[0], epoch) != reproducible.tree_digest(trees[1], epoch)
