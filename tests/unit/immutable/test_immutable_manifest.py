"""The sealed root's identity written into the Packer manifest's custom_data (what the catalog records)."""

from __future__ import annotations

import json

import pytest

from nodeforge.immutable.errors import SealError
from nodeforge.immutable.manifest import record_seal


def manifest_file(tmp_path, custom):
    path = tmp_path / "manifest.json"
    builds = [{"name": "old", "custom_data": {"os": "debian12"}}, {"name": "node", "custom_data": custom}]
    path.write_text(json.dumps({"builds": builds, "last_run_uuid": "x"}))
    return path


def test_root_hash_recorded_in_the_last_build(sealed_pair, tmp_path):
    sealed, _ = sealed_pair
    path = manifest_file(tmp_path, {"os": "debian12", "arch": "x86_64", "variant": "immutable"})
    record_seal(path, sealed)
    record_seal(path, sealed)  # twice: the os suffix is added once
    document = json.loads(path.read_text())
    custom = document["builds"][-1]["custom_data"]
    assert custom == {
        "os": "debian12-immutable",
        "arch": "x86_64",
        "variant": "immutable",
        "root_hash": sealed.root_hash,
        "root_fs": f"{sealed.fs_type}+dm-verity",
        "verity_salt": sealed.verity.salt,
        "seal_tree_sha256": sealed.inputs["tree_sha256"],
        "seal_image_sha256": sealed.inputs["image_sha256"],
        "seal_source_date_epoch": str(sealed.inputs["source_date_epoch"]),
        "seal_fs_options": " ".join(sealed.inputs["fs_options"]),
        "seal_tools": ", ".join(sealed.inputs["tools"]),
    }
    assert all(isinstance(v, str) for v in custom.values())  # the catalog's custom_data contract
    assert custom["seal_tools"].startswith("erofs-utils ")
    assert document["builds"][0]["custom_data"] == {"os": "debian12"}  # earlier builds untouched
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("text", ["not json", '{"builds": []}', '{"no": "builds"}'])
def test_bad_manifest_named(sealed_pair, tmp_path, text):
    path = tmp_path / "manifest.json"
    path.write_text(text)
    with pytest.raises(SealError, match=r"manifest\.json: not a Packer manifest"):
        record_seal(path, sealed_pair[0])
    assert path.read_text() == text
