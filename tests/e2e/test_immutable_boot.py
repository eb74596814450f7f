"""The immutable variant end to end, on the session's bake (tests/e2e/conftest.py): the image sealed by
`nodeforge image seal-image` (the step packer/local.pkr.hcl runs for variant = "immutable": export, erofs +
dm-verity, root hash into the manifest), then the bake's immutable stage: the A/B disk boots itself under SeaBIOS
(its GRUB reads the slot state from the grubenv on the ESP and picks slot A), through the verity device, with /etc
rendered by the EC2 bootstrap unit from Bottlerocket TOML user data served over IMDSv2 (a fake IMDS on the host).
Then a tampered update is refused and a good one is made pending in slot B with one try: under OVMF the disk's GRUB
boots B and takes the try, and the node renders /etc from *changed* user data (a settings change takes effect at the
next boot; the sealed root is untouched). B is not marked successful, so the next power-on (SeaBIOS) falls back to A
by itself; that boot stops when the initramfs switches to the verity root (~20-40 s).
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
from nodeforge.vm.ab_boot import EXAMPLE_SETTINGS, boot_disk, boot_slot

# shares the session's bake: same xdist group as tests/e2e/test_bake.py
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("bake")]

_TOOLS = ("qemu-system-x86_64", "mkfs.erofs", "veritysetup", "sfdisk", "mkfs.ext4")


@pytest.fixture(scope="module")
def sealed(baked_disk, tmp_path_factory):
    """Seal the baked image as the Packer template does, then run the bake's immutable stage."""
    missing = [t for t in _TOOLS if not shutil.which(t, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")]
    if missing:
        pytest.fail(f"missing tools {missing}: scripts/setup.sh installs them")
    out = tmp_path_factory.mktemp("immutable")
    manifest = out / "manifest.json"
    shutil.copyfile(baked_disk.manifest, manifest)
    timings: dict[str, float] = {}
    started = time.monotonic()
    result = CliRunner().invoke(
        app,
        ["image", "seal-image", baked_disk.image, "--out", str(out / "immutable" / "sealed"),
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

    _seal(BakeOptions(variant="immutable"), report, out / "rootfs.tar", out, baked_disk.image, stage)
    print("\n" + json.dumps({"timings": timings, **report.immutable}, indent=2, default=str))
    return report, manifest


def test_sealed_root_boots_through_verity(sealed):
    report, _ = sealed
    boot = report.immutable["boot"]
    assert boot["ok"], f"failed checks: {[k for k, v in boot['checks'].items() if not v]}"
    assert boot["slot"] == "a" and boot["marked_successful"] and boot["firmware"] == "bios"
    assert boot["checks"]["GRUB (bios) chose slot A, as the grubenv says"]
    assert boot["checks"]["the initramfs opened that slot"] and boot["checks"]["dm-verity status verified (V)"]
    assert boot["checks"]["/etc rendered from the IMDS user data"] and boot["checks"]["nodeforge-bootstrap active"]
    status = update.status(Path(report.immutable["disk"]))
    assert status["last_boot"] == "a" and status["slots"]["a"]["state"] == "good"
    assert status["cmdline"] == ""  # the boot check's kernel arguments are gone from the disk
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

    result = update.update_slot(disk, sealed_dir, root_hash=report.immutable["root_hash"], tries=1)
    assert result.slot == "b"
    status = update.status(disk)
    assert status["slots"]["b"]["state"] == "pending" and status["selected"] == "b"

    # The disk's own GRUB (UEFI this time) boots the pending slot B and takes its only try (save_env); the node
    # renders /etc from the user data IMDS serves now (another cluster DNS): the change takes effect at this boot.
    changed = EXAMPLE_SETTINGS.replace('cluster-dns-ip = "10.100.0.10"', 'cluster-dns-ip = "172.20.0.10"')
    assert changed != EXAMPLE_SETTINGS
    b_boot = boot_disk(disk, firmware="uefi", timeout=420, mark=False, user_data=changed, expect_dns="172.20.0.10")
    print(json.dumps(b_boot.to_dict(), default=str))
    assert b_boot.ok, f"failed checks: {[k for k, v in b_boot.checks.items() if not v]}"
    assert (b_boot.slot, b_boot.consumed_try, b_boot.marked_successful) == ("b", True, False)
    assert b_boot.checks["GRUB (uefi) chose slot B, as the grubenv says"]
    assert b_boot.facts["kubelet_config_dns"] == "172.20.0.10" and b_boot.facts["sealed_kubelet_config_dns"] == "none"
    assert b_boot.root_hash == report.immutable["root_hash"]
    status = update.status(disk)
    assert status["last_boot"] == "b" and status["slots"]["b"]["state"] == "exhausted"

    # Nobody marked B successful: the next power-on falls back to A, with no host action in between.
    fallback = boot_slot(disk, firmware="bios", timeout=300)
    print(json.dumps(fallback.to_dict(), default=str))
    assert (fallback.slot, fallback.opened, fallback.consumed_try) == ("a", "a", False)
    assert "slot B skipped: exhausted" in fallback.skipped
    assert update.status(disk)["last_boot"] == "a"
