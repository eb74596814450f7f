"""The immutable variant end to end, on the session's bake (tests/e2e/conftest.py): the image sealed by
`nodeforge image seal-image` (the step packer/local.pkr.hcl runs for variant = "immutable": export, erofs +
dm-verity, root hash into the manifest), then the bake's immutable stage: A/B disk, booted under QEMU (TCG) from
the verity device with /etc rendered from a settings file; then a tampered update refused and a good one made
pending in the other slot. NODEFORGE_IMMUTABLE_BOOT_B=1 also boots slot B after the update (one more minute).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nodeforge.bake.pipeline import BakeOptions, BakeReport, _seal
from nodeforge.cli import app
from nodeforge.immutable import UpdateRefusedError, update
from nodeforge.immutable.boot import boot_disk

# shares the session's bake: same xdist group as tests/e2e/test_bake.py
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("bake")]

_TOOLS = ("qemu-system-x86_64", "mkfs.erofs", "veritysetup", "sfdisk", "mkfs.ext4")


@pytest.fixture(scope="module")
def sealed(baked, tmp_path_factory):
    """Seal the baked image as the Packer template does, then run the bake's immutable stage."""
    missing = [t for t in _TOOLS if not shutil.which(t, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")]
    if missing:
        pytest.fail(f"missing tools {missing}: scripts/setup.sh installs them")
    bake_report, _ = baked
    out = tmp_path_factory.mktemp("immutable")
    manifest = out / "manifest.json"
    shutil.copyfile(bake_report.manifest, manifest)
    timings: dict[str, float] = {}
    started = time.monotonic()
    result = CliRunner().invoke(
        app,
        ["image", "seal-image", bake_report.image, "--out", str(out / "immutable" / "sealed"),
         "--manifest", str(manifest), "--rootfs-tar", str(out / "rootfs.tar")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    timings["seal-image"] = round(time.monotonic() - started, 1)
    report = BakeReport(manifest=str(manifest), variant="immutable")

    def stage(name, fn):
        begun = time.monotonic()
        try:
            return fn()
        finally:
            timings[name] = round(time.monotonic() - begun, 1)

    _seal(BakeOptions(variant="immutable"), report, out / "rootfs.tar", out, bake_report.image, stage)
    print("\n" + json.dumps({"timings": timings, **report.immutable}, indent=2, default=str))
    return report, manifest


def test_sealed_root_boots_through_verity(sealed):
    report, _ = sealed
    boot = report.immutable["boot"]
    assert boot["ok"], f"failed checks: {[k for k, v in boot['checks'].items() if not v]}"
    assert boot["slot"] == "a" and boot["marked_successful"]
    sizes = report.immutable["sizes"]
    assert sizes["sealed_image_bytes"] < sizes["rootfs_tar_bytes"]


def test_root_hash_recorded_for_the_catalog(sealed):
    report, manifest = sealed
    custom = json.loads(manifest.read_text())["builds"][-1]["custom_data"]
    assert custom["variant"] == "immutable" and custom["os"].endswith("-immutable")
    assert custom["root_hash"] == report.immutable["root_hash"] and len(custom["root_hash"]) == 64
    seal_json = json.loads(Path(report.immutable["seal_json"]).read_text())
    assert seal_json["root_hash"] == custom["root_hash"]


def test_tampered_update_refused_good_update_pending(sealed, tmp_path):
    report, _ = sealed
    disk = Path(report.immutable["disk"])
    sealed_dir = Path(report.immutable["sealed_dir"])
    tampered = tmp_path / "tampered"
    shutil.copytree(sealed_dir, tampered)
    image_bytes = report.immutable["sizes"]["sealed_image_bytes"]
    with (tampered / "root.img").open("r+b") as fh:
        fh.seek(image_bytes // 3)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))
    with pytest.raises(UpdateRefusedError, match=r"root\.img"):
        update.update_slot(disk, tampered)
    assert update.status(disk)["selected"] == "a"

    result = update.update_slot(disk, sealed_dir, root_hash=report.immutable["root_hash"])
    assert result.slot == "b"
    status = update.status(disk)
    assert status["slots"]["b"]["state"] == "pending" and status["selected"] == "b"
    if os.environ.get("NODEFORGE_IMMUTABLE_BOOT_B") == "1":
        second = boot_disk(disk, timeout=300, snapshot=True)
        assert second.slot == "b" and second.consumed_try and second.ok
        assert update.status(disk)["slots"]["b"]["state"] == "good"
