"""The immutable variant end to end, on the session's bake (tests/e2e/conftest.py): the image sealed by
`nodeforge image seal-image` (the step packer/local.pkr.hcl runs for variant = "immutable": export, erofs +
dm-verity, root hash into the manifest), then the bake's immutable stage: the A/B disk boots itself under SeaBIOS
(its GRUB reads the slot state from the grubenv on the ESP and picks slot A), through the verity device, with /etc
rendered by the EC2 bootstrap unit from Bottlerocket TOML user data served over IMDSv2 (a fake IMDS on the host).
On a copy of that disk, a tampered update is refused and a good one is made pending in slot B with one try.

Then the node updates itself (issue 15 §2, docs/immutable.md "Updates and rollback on the node"): two variants of the
baked root (good; broken: its kubelet unit fails) are served by the host over HTTP, and Bottlerocket's
settings.updates in the user data make the node write them into its inactive slot and reboot. One QEMU run, on a
copy of the disk as the bake stage built it (a new instance of the same AMI), in which the node reboots itself: the
broken update is not marked and the node falls back to A after the health bound (GRUB skips B, its one try spent);
the user data then names the good root (a settings change, acted on at the next boot), which marks itself. The next
power-on, under OVMF, boots the good B again from its grubenv (no try taken: it is marked).

The whole chain is one of the bake group's runs (conftest.bake_runs): it starts when Packer has built the image,
beside the bake's own first boot and the other launches; the node's updates run beside the bake stage's boot.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from nodeforge.bake.pipeline import BakeOptions, BakeReport, _seal
from nodeforge.immutable import UpdateRefusedError, update
from nodeforge.immutable.pipeline import DISK_NAME
from nodeforge.immutable.seal import SealedRoot, seal_rootfs
from nodeforge.vm.ab_boot import EXAMPLE_SETTINGS, boot_slot, run_on_node, update_url

# shares the session's bake: same xdist group as tests/e2e/test_bake.py
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("bake")]

_TOOLS = ("qemu-system-x86_64", "mkfs.erofs", "veritysetup", "sfdisk", "mkfs.ext4")


def _seal_image(bake_run, out: Path) -> tuple[Path, float]:
    """Seal the baked image as the Packer template does (its CLI, as a process): out/immutable/sealed, out/rootfs.tar,
    the root hash in a copy of Packer's manifest."""
    missing = [t for t in _TOOLS if not shutil.which(t, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")]
    if missing:
        pytest.fail(f"missing tools {missing}: scripts/setup.sh installs them")
    baked = bake_run.wait_image()
    manifest = out / "manifest.json"
    shutil.copyfile(baked.manifest, manifest)
    started = time.monotonic()
    command = [sys.executable, "-m", "nodeforge.cli", "image", "seal-image", baked.image,
               "--out", str(out / "immutable" / "sealed"), "--manifest", str(manifest),
               "--rootfs-tar", str(out / "rootfs.tar")]  # fmt: skip
    sealing = subprocess.run(command, capture_output=True, text=True, check=False)
    assert sealing.returncode == 0, sealing.stdout + sealing.stderr
    return manifest, round(time.monotonic() - started, 1)


def _bake_stage(image: str, out: Path, timings: dict[str, float], on_disk) -> BakeReport:
    """The bake's immutable stage on the sealed root: the A/B disk, booted under SeaBIOS (slot A). ``on_disk(disk)``
    is called as soon as the disk is built, before its boot."""
    report = BakeReport(manifest=str(out / "manifest.json"), variant="immutable")

    def stage(name, fn):
        begun = time.monotonic()
        try:
            result = fn()
        finally:
            timings[name] = round(time.monotonic() - begun, 1)
        if name == "disk":
            on_disk(out / "immutable" / DISK_NAME)
        return result

    _seal(BakeOptions(variant="immutable"), report, out / "rootfs.tar", out, image, stage)
    return report


def _sparse_copy(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "--sparse=always", str(source), str(target)], check=True)
    return target


def _immutable_chain(bake_run, tmp_path_factory) -> dict[str, object]:
    """Seal; the bake stage (disk, boot) beside the sealing of the update variants and, once its disk is built, the
    node's own updates on a copy of it; a copy of the disk as the bake stage left it (for the host-side update
    checks). Each step's result, or its exception, by name; "failed" is the first failure before any step."""
    out = tmp_path_factory.mktemp("immutable")
    steps: dict[str, object] = {}
    try:
        manifest, seconds = _seal_image(bake_run, out)
    except BaseException as exc:
        return {"failed": exc}
    timings = {"seal-image": seconds}
    serve = out / "serve"
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="immutable") as pool:
        variants = pool.submit(variant_seals, out / "rootfs.tar", serve)
        updates: list[Future] = []

        def on_disk(disk: Path) -> None:  # a new instance of the same image: a copy of the disk as built
            copy = _sparse_copy(disk, out / "disk-node-update.img")
            updates.append(pool.submit(_node_updates, copy, variants, serve))

        try:
            report = _bake_stage(bake_run.image, out, timings, on_disk)
            steps["sealed"] = (report, manifest, timings)
            steps["disk_as_baked"] = _sparse_copy(Path(report.immutable["disk"]), out / "disk-as-baked.img")
        except BaseException as exc:
            steps["failed"] = exc
        if updates:
            try:
                steps["node_update"] = updates[0].result()
            except BaseException as exc:
                steps["node_update"] = exc
    return steps


def _immutable_run(bake_run, tmp_path_factory) -> dict[str, object]:
    """The chain on the group's longest path (conftest.LeadCpu): its pool's threads and processes start there too."""
    bake_run.take_lead()
    try:
        return _immutable_chain(bake_run, tmp_path_factory)
    finally:
        bake_run.leave_lead()


def _step(bake_runs, name: str):
    steps = bake_runs.result("immutable")
    value = steps.get(name, steps.get("failed"))
    if isinstance(value, BaseException):
        raise value
    assert value is not None, f"the immutable chain has no step {name!r}: {sorted(steps)}"
    return value


BAKE_RUNS = {"immutable": _immutable_run}


@pytest.fixture(scope="module")
def sealed(bake_runs):
    report, manifest, timings = _step(bake_runs, "sealed")
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


def test_tampered_update_refused_good_update_pending(sealed, bake_runs, tmp_path):
    """Host-side updates of the disk as the bake left it (a copy: the node's own updates run on the disk itself). The
    pending slot's boots are the node's: test_node_updates_itself_and_rolls_back_by_itself."""
    report, _ = sealed
    disk = _step(bake_runs, "disk_as_baked")
    sealed_dir = Path(report.immutable["sealed_dir"])
    tampered = tmp_path / "tampered"
    shutil.copytree(sealed_dir, tampered)
    image_bytes = report.immutable["sizes"]["sealed_image_bytes"]
    with (tampered / "root.img").open("r+b") as fh:
        fh.seek(image_bytes // 3)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0x01]))
    before = update.status(disk)
    with pytest.raises(UpdateRefusedError, match=r"root\.img"):
        update.update_slot(disk, tampered)
    assert update.status(disk) == before and before["selected"] == "a"

    result = update.update_slot(disk, sealed_dir, root_hash=report.immutable["root_hash"], tries=1)
    assert result.slot == "b"
    status = update.status(disk)
    assert status["slots"]["b"]["state"] == "pending" and status["selected"] == "b"
    pending = status["slots"]["b"]
    assert (pending["root_hash"], pending["tries_left"]) == (report.immutable["root_hash"], 1)
    assert status["slots"]["a"]["state"] == "good"


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
    successful. The run ends there (QEMU killed: a power-off); the next power-on (OVMF) boots B again.
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
    again = boot_slot(disk, firmware="uefi", timeout=300)
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
    # the next power-on (OVMF this time): GRUB boots the good B again without taking a try (it is marked)
    again = outcome["again"]
    assert (again.slot, again.opened, again.consumed_try) == ("b", "b", False), again.to_dict()


def _node_updates(disk: Path, variants: Future, serve: Path) -> dict:
    """The scenario on ``disk`` once the variants are sealed."""
    good, broken, sealing = variants.result()
    return {"disk": disk, "good": good, "broken": broken, "seal_seconds": sealing,
            **node_update_scenario(disk, good, broken, serve)}  # fmt: skip


def variant_seals(rootfs_tar: Path, serve: Path) -> tuple[SealedRoot, SealedRoot, float]:
    """The good and the broken variant of the baked root, sealed into ``serve`` (served over HTTP to the node)."""
    assert rootfs_tar.is_file(), f"the rootfs tar {rootfs_tar} is gone"
    serve.mkdir()
    started = time.monotonic()
    good = variant_seal(rootfs_tar, serve, "good", GOOD_MARKER)
    broken = variant_seal(rootfs_tar, serve, "broken", BROKEN_KUBELET_DROPIN)
    return good, broken, round(time.monotonic() - started, 1)


def test_node_updates_itself_and_rolls_back_by_itself(bake_runs):
    outcome = _step(bake_runs, "node_update")
    print(json.dumps({"seal_seconds": outcome["seal_seconds"], "run": outcome["run"].to_dict(), "swap": outcome["swap"],
                      "again": outcome["again"].to_dict()}, default=str))  # fmt: skip
    check_node_update(outcome["disk"], outcome["good"], outcome["broken"], outcome)
