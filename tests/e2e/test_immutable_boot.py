"""The immutable variant end to end, on the session's bake (tests/e2e/conftest.py): the image sealed by
`nodeforge image seal-image` (the step packer/local.pkr.hcl runs for variant = "immutable": export, erofs +
dm-verity, root hash into the manifest), then the bake's immutable stage: the A/B disk boots itself under SeaBIOS
(its GRUB reads the slot state from the grubenv on the ESP and picks slot A), through the verity device, with /etc
rendered by the EC2 bootstrap unit from Bottlerocket TOML user data served over IMDSv2 (a fake IMDS on the host).
Then a tampered update is refused and a good one is made pending in slot B with one try: under OVMF the disk's GRUB
boots B and takes the try, and the node renders /etc from *changed* user data (a settings change takes effect at the
next boot; the sealed root is untouched). B is not marked successful, so the next power-on (SeaBIOS) falls back to A
by itself; that boot stops when the initramfs switches to the verity root (~20-40 s).

Then the node updates itself (issue 15 §2, docs/immutable.md "Updates and rollback on the node"): two variants of the
baked root (good; broken: its kubelet unit fails) are served by the host over HTTP, and Bottlerocket's
settings.updates in the user data make the node write them into its inactive slot and reboot. One QEMU run in which
the node reboots itself: the broken update is not marked and the node falls back to A after the health bound, the
good one marks itself; the next power-on boots it again. Adds 12-17 min under TCG with other jobs running (two lz4
seals ~80 s, the run 630-950 s, one boot to the verity root 10-35 s).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nodeforge.bake.pipeline import BakeOptions, BakeReport, _seal
from nodeforge.cli import app
from nodeforge.immutable import UpdateRefusedError, update
from nodeforge.immutable.seal import SealedRoot, seal_rootfs
from nodeforge.vm.ab_boot import EXAMPLE_SETTINGS, boot_disk, boot_slot, run_on_node, update_url

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


# -- issue 15 §2: updates and rollback on the node ----------------------------------------------------------------

#: A deliberately broken update: the kubelet unit fails (its ExecStart replaced by /bin/false), so the new boot never
#: gets healthy and is not marked.
BROKEN_KUBELET_DROPIN = (
    "etc/systemd/system/kubelet.service.d/99-nodeforge-test-broken.conf",
    "# nodeforge e2e: a deliberately broken update (the kubelet unit fails)\n"
    "[Service]\nExecStart=\nExecStart=/bin/false\n",
)
GOOD_MARKER = ("etc/nodeforge/update-test", "a good update (nodeforge e2e)\n")
#: The health bound of the run (nodeforge.health_timeout=, default 300 s): enough under TCG for the good boot, whose
#: fixture kubelet is active seconds after it starts; the broken boot waits all of it before rebooting itself.
HEALTH_TIMEOUT = 60


def variant_seal(rootfs_tar: Path, out: Path, name: str, files: tuple[str, str]) -> SealedRoot:
    """Seal ``rootfs_tar`` plus one more file (a copy of the tar with it appended); lz4 (fast) instead of lz4hc."""
    import io
    import tarfile

    tar = out / f"rootfs-{name}.tar"
    shutil.copyfile(rootfs_tar, tar)
    path, text = files
    with tarfile.open(tar, "a") as archive:
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.mtime = len(text.encode()), 0o644, 1_700_000_000
        archive.addfile(info, io.BytesIO(text.encode()))
    try:
        return seal_rootfs(tar, out / name, compression="lz4", version=name)
    finally:
        tar.unlink()


def update_settings(url: str, root_hash: str) -> str:
    """The boot check's settings plus Bottlerocket's update settings asking for ``root_hash`` from ``url``."""
    return EXAMPLE_SETTINGS + f'\n[settings.updates]\ntargets-base-url = "{url}"\nversion-lock = "{root_hash}"\n'


def node_update_scenario(disk: Path, good: SealedRoot, broken: SealedRoot, serve: Path) -> dict:
    """One run in which the node updates itself twice and reboots itself, then one more power-on.

    User data asks for the broken root: the node (slot A) downloads it from the host, verifies and writes it into
    slot B, reboots; GRUB boots B (its one try); the kubelet fails, so B is not marked and after the health bound
    the node reboots; GRUB, B's tries spent, boots A. Seeing that, the test changes the user data (as on a stopped
    instance) to the good root: A's boot applies it to slot B and reboots; B gets healthy and marks itself
    successful. The run ends there (QEMU killed: a power-off); the next power-on boots B again.
    """
    start = update.status(disk)
    assert start["selected"] == "a" and start["slots"]["a"]["state"] == "good", start
    first = update_settings(update_url(broken.directory.name), broken.root_hash)
    second = update_settings(update_url(good.directory.name), good.root_hash)
    seen: dict[str, float] = {}
    began = time.monotonic()

    def until(text: str, imds) -> bool:
        if "nodeforge-mark-boot: slot B not healthy" in text and "swap" not in seen:
            imds.user_data = second.encode()  # read at the next boot (A's), by the update unit
            seen["swap"] = round(time.monotonic() - began, 1)
        return "nodeforge-mark-boot: slot B marked successful" in text

    run = run_on_node(
        disk,
        until=until,
        user_data=first,
        serve=serve,
        extra_cmdline=[f"nodeforge.health_timeout={HEALTH_TIMEOUT}"],
        timeout=1800,  # ~950 s with a load average of 5-6 on the 2 vCPUs
    )
    text = run.console_text
    after_run = update.status(disk)
    again = boot_slot(disk, firmware="bios", timeout=300)
    return {"run": run, "text": text, "swap": seen, "after_run": after_run, "again": again}


def check_node_update(disk: Path, good: SealedRoot, broken: SealedRoot, outcome: dict) -> None:
    run, text = outcome["run"], outcome["text"]
    # GRUB's own console lines: A, B (broken, its one try), A (fallback, no host action), B (good)
    assert run.boots == ["a", "b", "a", "b"], run.boots
    assert f"nodeforge-update: slot B holds root hash {broken.root_hash}, pending with 1 tries" in text
    # B (broken) was not marked: the kubelet never became healthy within the bound, and the node rebooted itself
    unhealthy = re.search(r"mark-boot: slot B not healthy after (\d+)s \(([^)]*)\): not marked; rebooting", text)
    assert unhealthy and int(unhealthy.group(1)) >= HEALTH_TIMEOUT, text[-3000:]
    assert "kubelet.service active/running" not in unhealthy.group(2), unhealthy.group(0)
    assert f"nodeforge-update: slot B holds root hash {good.root_hash}, pending with 1 tries" in text
    assert "nodeforge-mark-boot: slot A is already marked successful; nothing to decide" in text
    after = outcome["after_run"]
    assert after["last_boot"] == "b" and after["selected"] == "b", after
    assert after["slots"]["b"]["state"] == "good" and after["slots"]["b"]["root_hash"] == good.root_hash
    assert after["slots"]["a"]["state"] == "good" and after["slots"]["a"]["priority"] < after["slots"]["b"]["priority"]
    assert after["cmdline"] == ""
    again = outcome["again"]
    assert (again.slot, again.opened, again.consumed_try) == ("b", "b", False), again.to_dict()


def test_node_updates_itself_and_rolls_back_by_itself(sealed, tmp_path):
    report, _ = sealed
    disk = Path(report.immutable["disk"])
    base = SealedRoot.load(Path(report.immutable["sealed_dir"]))
    rootfs_tar = Path(base.rootfs_tar)
    assert rootfs_tar.is_file(), f"the fixture's rootfs tar {rootfs_tar} is gone"
    serve = tmp_path / "serve"
    serve.mkdir()
    started = time.monotonic()
    good = variant_seal(rootfs_tar, serve, "good", GOOD_MARKER)
    broken = variant_seal(rootfs_tar, serve, "broken", BROKEN_KUBELET_DROPIN)
    sealing = time.monotonic() - started
    outcome = node_update_scenario(disk, good, broken, serve)
    print(json.dumps({"seal_seconds": round(sealing, 1), "run": outcome["run"].to_dict(), "swap": outcome["swap"],
                      "again": outcome["again"].to_dict()}, default=str))  # fmt: skip
    check_node_update(disk, good, broken, outcome)
