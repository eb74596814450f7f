"""The on-node A/B tools (nodeforge.immutable.node) on disk-image files: boot disk discovery, update from a URL or a
directory (verified before it is marked; refusals leave the running slot and the grubenv alone), mark-boot's
mark / no-mark / reboot decisions, the update settings, the Python dm-verity check the node uses (no veritysetup
there), and the copy of the tools into a sealed root."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from immutable_helpers import flip_byte, needs_tools

from nodeforge.immutable import layout, node, update, verity
from nodeforge.immutable.errors import UpdateRefusedError, VerityError
from nodeforge.vm.ab_disk import create_disk

pytestmark = needs_tools


@pytest.fixture
def disk(sealed_pair, tmp_path):
    path = tmp_path / "disk.img"
    create_disk(path, sealed_pair[0], state_mb=16)
    return path


class _Quiet(SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        _Quiet.requests.append(self.path)


@pytest.fixture
def server(sealed_pair, tmp_path) -> Iterator[tuple[str, Path]]:
    """An HTTP server over a directory holding copies of the two sealed roots (v1, v2); yields (base URL, dir)."""
    root = tmp_path / "served"
    for sealed in sealed_pair:
        shutil.copytree(sealed.directory, root / sealed.directory.name)
    _Quiet.requests = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


class Reboots:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


# -- the Python dm-verity check ------------------------------------------------------------------------------------


def test_verify_tree_agrees_with_veritysetup(tmp_path):
    data, tree = tmp_path / "data", tmp_path / "tree"
    data.write_bytes(os.urandom(300 * 4096))  # 300 blocks: a two-level tree
    params = verity.format_hash_tree(data, tree)
    verity.verify(data, tree, params.root_hash)
    assert verity.verify_tree(data, tree, params.root_hash) >= 0
    with pytest.raises(VerityError, match=r"data: does not match root hash"):
        verity.verify_tree(data, tree, "0" * 64)
    flip_byte(tree, 4096 + 40)  # a hash in the tree, not the superblock
    with pytest.raises(VerityError, match=r"tree: hash tree differs"):
        verity.verify_tree(data, tree, params.root_hash)
    with pytest.raises(VerityError):  # veritysetup agrees that the tree is damaged
        verity.verify(data, tree, params.root_hash)


@pytest.mark.parametrize("blocks", [1, 2, 128, 129, 16513])
def test_verify_tree_agrees_with_veritysetup_at_each_tree_depth(tmp_path, blocks):
    """No level (1 block: the root is the block's hash), one level (2, 128), two (129), three (128 * 129 + 1)."""
    data, tree = tmp_path / "data", tmp_path / "tree"
    data.write_bytes(os.urandom(blocks * 4096))
    params = verity.format_hash_tree(data, tree)
    assert verity.verify_tree(data, tree, params.root_hash) >= 0
    with data.open("rb") as fh:
        assert verity.root_hash_of(fh, offset=0, data_blocks=blocks, salt=params.salt) == params.root_hash
    flip_byte(data, blocks * 4096 - 1)  # the last block
    with pytest.raises(VerityError, match=r"data: does not match root hash"):
        verity.verify_tree(data, tree, params.root_hash)


def test_verify_tree_refuses_a_changed_data_block_and_a_foreign_file(sealed_copy):
    copy = sealed_copy(1)
    sealed = node.update.SealedRoot.load(copy)
    flip_byte(sealed.image, 4096 * 3 + 7)
    with pytest.raises(VerityError, match=r"root\.img: does not match root hash"):
        verity.verify_tree(sealed.image, sealed.hash_tree, sealed.root_hash)
    with pytest.raises(VerityError, match=r"no dm-verity superblock"):
        verity.verify_tree(sealed.image, sealed.image, sealed.root_hash)


def test_update_without_veritysetup_checks_the_tree_in_python(disk, sealed_pair, monkeypatch):
    monkeypatch.setattr(verity, "have_veritysetup", lambda: False)
    result = update.update_slot(disk, sealed_pair[1].directory)
    assert "verify sealed (python)" in result.seconds and result.slot == "b"


# -- finding the boot disk -------------------------------------------------------------------------------------------


def _sysfs(tmp_path: Path, probe: Path, *, under: tuple[str, ...] = ("vda2",), dm: bool = True) -> Path:
    """A sysfs tree in which ``probe``'s device is dm-0 on ``under`` (partitions of vda), or vda2 itself."""
    st = probe.stat()
    sys_root = tmp_path / "sys"
    disk_dir = sys_root / "devices/pci0000:00/0000:00:04.0/virtio1/block/vda"
    for number, name in enumerate(("vda1", "vda2", "vda3"), start=1):
        (disk_dir / name).mkdir(parents=True)
        (disk_dir / name / "partition").write_text(f"{number}\n")
    (sys_root / "class/block").mkdir(parents=True)
    for name in ("vda1", "vda2", "vda3"):
        (sys_root / "class/block" / name).symlink_to(disk_dir / name)
    (sys_root / "dev/block").mkdir(parents=True)
    target = disk_dir / "vda2"
    if dm:
        target = sys_root / "devices/virtual/block/dm-0"
        (target / "slaves").mkdir(parents=True)
        for name in under:
            (target / "slaves" / name).symlink_to(disk_dir / name)
    (sys_root / "dev/block" / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}").symlink_to(target)
    return sys_root


def test_find_boot_disk_through_the_verity_device(tmp_path):
    sys_root = _sysfs(tmp_path, tmp_path)
    assert node.find_boot_disk(root=str(tmp_path), sys_root=sys_root) == (Path("/dev/vda"), "vda2")
    assert node.partition_number("vda2", sys_root) == 2


def test_find_boot_disk_on_a_plain_partition(tmp_path):
    sys_root = _sysfs(tmp_path, tmp_path, dm=False)
    assert node.find_boot_disk(root=str(tmp_path), sys_root=sys_root, dev_root=Path("/x")) == (Path("/x/vda"), "vda2")


def test_find_boot_disk_refuses_what_it_cannot_trace(tmp_path):
    sys_root = _sysfs(tmp_path, tmp_path, under=("vda2", "vda3"))
    with pytest.raises(node.NodeError, match=r"sits on \['vda2', 'vda3'\], not on one slot partition"):
        node.find_boot_disk(root=str(tmp_path), sys_root=sys_root)
    with pytest.raises(node.NodeError, match=r"is not a block device in"):
        node.find_boot_disk(root=str(tmp_path), sys_root=tmp_path / "empty-sys")


def test_discover_checks_the_booted_slot_against_the_partition(disk, tmp_path):
    sys_root = _sysfs(tmp_path, tmp_path)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "vda").symlink_to(disk)
    cmdline = tmp_path / "cmdline"
    cmdline.write_text("root=/dev/mapper/nf-root nodeforge.slot=a nodeforge.roothash=ab ro\n")
    found = node.Node.discover(proc_cmdline=cmdline, sys_root=sys_root, dev_root=dev)
    assert (found.disk, found.slot) == (dev / "vda", "a")
    cmdline.write_text("nodeforge.slot=b\n")
    with pytest.raises(node.NodeError, match=r"partition 2 \(vda2\), but GRUB booted slot B \(partition 3\)"):
        node.Node.discover(proc_cmdline=cmdline, sys_root=sys_root, dev_root=dev)
    cmdline.write_text("root=/dev/vda1 ro\n")
    with pytest.raises(node.NodeError, match=r"no nodeforge\.slot="):
        node.Node.discover(proc_cmdline=cmdline, sys_root=sys_root, dev_root=dev)


def test_health_timeout_setting():
    assert node.health_timeout("ro quiet") == node.DEFAULT_HEALTH_TIMEOUT == 300
    assert node.health_timeout("ro nodeforge.health_timeout=90 quiet") == 90
    for bad in ("nodeforge.health_timeout=0", "nodeforge.health_timeout=5m", "nodeforge.health_timeout="):
        with pytest.raises(node.NodeError, match=r"nodeforge\.health_timeout=.* is not a positive whole number"):
            node.health_timeout(bad)


# -- update on the node --------------------------------------------------------------------------------------------


def test_update_from_url_writes_the_inactive_slot_and_reboots(disk, sealed_pair, server, tmp_path):
    base, _ = server
    reboots = Reboots()
    staging = tmp_path / "var/lib/nodeforge/update"
    v2 = sealed_pair[1]
    result = node.apply_update(
        node.Node(disk, "a"), f"{base}/{v2.directory.name}", root_hash=v2.root_hash, staging=staging, reboot=reboots
    )
    assert (result.slot, result.previous, result.tries_left, reboots.count) == ("b", "a", 1, 1)
    assert "verify sealed (veritysetup)" in result.seconds
    status = update.status(disk)
    assert status["slots"]["b"]["state"] == "pending" and status["slots"]["b"]["root_hash"] == v2.root_hash
    assert status["slots"]["a"]["state"] == "good" and status["selected"] == "b"
    assert not staging.exists()  # the download is removed once written


def _unchanged(disk, before):
    after = update.status(disk)
    assert after == before, "a refused update changed the grubenv"


def test_update_refusals_leave_everything_alone(disk, sealed_pair, server, tmp_path):
    base, served = server
    v1, v2 = sealed_pair
    here = node.Node(disk, "a")
    staging = tmp_path / "staging"
    before = update.status(disk)
    reboots = Reboots()
    url = f"{base}/{v2.directory.name}"
    cases = [
        (dict(source=url, root_hash=None), node.NodeError, r"needs --root-hash"),
        (dict(source=url, root_hash="xyz"), VerityError, r"--root-hash: 'xyz' is not a sha256 root hash"),
        (dict(source=url, root_hash=v1.root_hash), UpdateRefusedError, r"slot A already runs root hash"),
        (dict(source=url, root_hash="a" * 64), UpdateRefusedError, r"root hash .* is not the expected a{64}"),
        (dict(source=f"{base}/missing", root_hash=v2.root_hash), node.NodeError, r"/missing/seal\.json: HTTP 404"),
        (dict(source=str(tmp_path / "nowhere"), root_hash=None), node.NodeError, r"nowhere: not a sealed directory"),
        (dict(source=url, root_hash=v2.root_hash, tries=0), node.NodeError, r"--tries: 0 is not between 1 and 15"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            node.apply_update(here, staging=staging, reboot=reboots, **kwargs)
        _unchanged(disk, before)
        assert not staging.exists()
    # a data block changed on the server: refused by the check before anything is written
    flip_byte(served / v2.directory.name / "root.img", 4096 * 2 + 1)
    with pytest.raises(UpdateRefusedError, match=r"root\.img: does not match root hash[\s\S]*slot A stays active"):
        node.apply_update(here, url, root_hash=v2.root_hash, staging=staging, reboot=reboots)
    _unchanged(disk, before)
    # a truncated file on the server
    shutil.copyfile(v2.directory / "root.img", served / v2.directory.name / "root.img")
    with (served / v2.directory.name / "vmlinuz").open("r+b") as fh:
        fh.truncate(100)
    with pytest.raises(node.NodeError, match=r"vmlinuz: 100 bytes downloaded, seal\.json says"):
        node.apply_update(here, url, root_hash=v2.root_hash, staging=staging, reboot=reboots)
    _unchanged(disk, before)
    assert reboots.count == 0 and not staging.exists()


def test_update_never_writes_the_running_slot(disk, sealed_pair, server, tmp_path):
    base, _ = server
    v1, v2 = sealed_pair
    update.update_slot(disk, v2.directory)  # B pending
    assert update.begin_boot(disk).slot == "b"  # GRUB boots it: the node now runs B, not yet marked; A is good
    before = update.status(disk)
    _Quiet.requests = []
    with pytest.raises(UpdateRefusedError, match=r"running slot B is not marked successful .* overwrite the running"):
        node.apply_update(
            node.Node(disk, "b"), f"{base}/{v1.directory.name}", root_hash=v1.root_hash, staging=tmp_path / "s"
        )
    _unchanged(disk, before)
    assert _Quiet.requests == []  # refused before downloading anything


def test_update_from_a_local_directory(disk, sealed_pair, tmp_path):
    reboots = Reboots()
    result = node.apply_update(node.Node(disk, "a"), str(sealed_pair[1].directory), root_hash=None, reboot=reboots)
    assert result.slot == "b" and reboots.count == 1
    assert sealed_pair[1].directory.is_dir()  # a local source is not removed


# -- mark-boot -----------------------------------------------------------------------------------------------------


def _health(healthy: bool):
    calls = []

    def wait(units, *, timeout, settle):
        calls.append((tuple(units), timeout, settle))
        return node.Health(healthy, 12.0, {u: "active/running" if healthy else "failed/failed" for u in units})

    return wait, calls


def test_mark_boot_of_a_good_slot_decides_nothing(disk):
    wait, calls = _health(False)
    reboots = Reboots()
    assert node.mark_boot(node.Node(disk, "a"), timeout=60, wait=wait, reboot=reboots) == "already-good"
    assert calls == [] and reboots.count == 0


def test_mark_boot_marks_a_healthy_pending_boot(disk, sealed_pair):
    update.update_slot(disk, sealed_pair[1].directory)
    update.begin_boot(disk)  # GRUB's try
    wait, calls = _health(True)
    reboots = Reboots()
    assert node.mark_boot(node.Node(disk, "b"), timeout=60, settle=5, wait=wait, reboot=reboots) == "marked"
    assert calls == [(node.HEALTH_UNITS, 60, 5)] and reboots.count == 0
    status = update.status(disk)
    assert status["slots"]["b"]["state"] == "good" and status["selected"] == "b"
    assert update.begin_boot(disk).slot == "b"  # the next power-on boots B again


def test_mark_boot_of_an_unhealthy_boot_reboots_and_grub_falls_back(disk, sealed_pair, capsys):
    update.update_slot(disk, sealed_pair[1].directory)
    update.begin_boot(disk)
    wait, _ = _health(False)
    reboots = Reboots()
    assert node.mark_boot(node.Node(disk, "b"), timeout=60, wait=wait, reboot=reboots) == "rebooting"
    assert reboots.count == 1
    assert "slot B not healthy after 12s (containerd.service failed/failed" in capsys.readouterr().out
    assert update.status(disk)["slots"]["b"]["state"] == "exhausted"
    choice = update.begin_boot(disk)  # what GRUB does at the reboot
    assert choice.slot == "a" and "slot B skipped: exhausted" in choice.skipped


def test_mark_boot_refuses_when_grub_booted_another_slot(disk, sealed_pair):
    update.update_slot(disk, sealed_pair[1].directory)  # B pending, but GRUB's last boot was not B
    with pytest.raises(node.NodeError, match=r"last boot as slot \(none\), this system runs slot B"):
        node.mark_boot(node.Node(disk, "b"), timeout=60, wait=_health(True)[0], reboot=Reboots())


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_wait_healthy_needs_both_units_settled_within_the_bound():
    clock = _Clock()
    states = {"containerd.service": node.UnitState("active", "running", 0)}

    def show(units):
        kubelet_up = clock.now >= 10
        restarts = 0 if clock.now < 20 else 1  # the kubelet restarts once at 20 s: settling starts again
        current = dict(states)
        if kubelet_up:
            current["kubelet.service"] = node.UnitState("active", "running", restarts)
        return current

    health = node.wait_healthy(node.HEALTH_UNITS, timeout=100, settle=15, show=show, clock=clock, sleep=clock.sleep)
    assert health.healthy and 35 <= health.seconds < 40
    clock.now = 0
    crash = lambda units: {**states, "kubelet.service": node.UnitState("activating", "auto-restart", int(clock.now))}  # noqa: E731
    health = node.wait_healthy(node.HEALTH_UNITS, timeout=30, settle=15, show=crash, clock=clock, sleep=clock.sleep)
    assert not health.healthy and health.seconds >= 30
    assert health.describe() == "containerd.service active/running, kubelet.service activating/auto-restart"
    clock.now = 0
    health = node.wait_healthy(node.HEALTH_UNITS, timeout=10, show=lambda u: states, clock=clock, sleep=clock.sleep)
    assert not health.healthy and "kubelet.service not found" in health.describe()


# -- settings-driven update ----------------------------------------------------------------------------------------

_SETTINGS = '[settings.kubernetes]\ncluster-name = "t"\n'


def test_update_settings():
    assert node.update_settings(_SETTINGS.encode()) is None
    assert node.update_settings(b"#!/bin/bash\n/etc/eks/bootstrap.sh c\n") is None
    wanted = node.update_settings(
        (
            _SETTINGS + '[settings.updates]\ntargets-base-url = "http://h/s/"\nversion-lock = "' + "AB" * 32 + '"\n'
        ).encode()
    )
    assert wanted == node.UpdateSettings("http://h/s/", "ab" * 32)
    bad = [
        ('targets-base-url = "ftp://h/"\nversion-lock = "' + "a" * 64 + '"', r"targets-base-url: 'ftp://h/' is not"),
        ('targets-base-url = "http://h/"', r"settings\.updates\.version-lock: missing"),
        ('targets-base-url = "http://h/"\nversion-lock = "latest"', r"version-lock: 'latest' is not a sha256 root"),
        ('version-lock = "' + "a" * 64 + '"', r"targets-base-url: None is not an http"),
    ]
    for body, message in bad:
        with pytest.raises(node.NodeError, match=message):
            node.update_settings((_SETTINGS + "[settings.updates]\n" + body + "\n").encode())


def test_settings_decision(disk, sealed_pair):
    v1, v2 = sealed_pair
    here = node.Node(disk, "a")
    assert "slot A runs root hash" in node.settings_decision(here, node.UpdateSettings("http://h/", v1.root_hash))
    assert node.settings_decision(here, node.UpdateSettings("http://h/", v2.root_hash)) == ""
    update.update_slot(disk, v2.directory)
    update.begin_boot(disk)
    update.begin_boot(disk)  # B's try spent, back on A: a rolled-back update is not tried again
    reason = node.settings_decision(here, node.UpdateSettings("http://h/", v2.root_hash))
    assert "slot B already holds root hash" in reason and "never booted successfully (exhausted)" in reason


# -- onto the sealed root ------------------------------------------------------------------------------------------


def test_tools_installed_in_a_sealed_root_import_with_the_stdlib_only(tmp_path):
    root = tmp_path / "root"
    written = layout.install_update_tools(root)
    assert layout.NODE_COMMAND in written
    for unit in (layout.MARK_BOOT_UNIT, layout.UPDATE_UNIT):
        link = root / "etc/systemd/system/multi-user.target.wants" / unit
        assert str(link.readlink()) == f"/usr/lib/systemd/system/{unit}"
    unit = (root / "usr/lib/systemd/system" / layout.MARK_BOOT_UNIT).read_text()
    assert "After=containerd.service kubelet.service" in unit and "!nodeforge.markboot=0" in unit
    python = shutil.which("python3", path="/usr/bin:/bin")  # the system python: no venv, no site packages
    assert python is not None
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root / "usr/lib/nodeforge")}
    code = "import sys, nodeforge.immutable.node as n; print(n.__file__); print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'yaml', 'boto3')))"  # noqa: E501
    proc = subprocess.run([python, "-s", "-c", code], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(root / "usr/lib/nodeforge/nodeforge/immutable/node.py"), "[]"]
    help_text = subprocess.run(
        [python, "-s", "-m", "nodeforge.immutable.node", "image", "--help"], env=env, capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "mark-boot" in help_text.stdout


def test_command_line_on_the_node(disk, monkeypatch, capsys):
    monkeypatch.setattr(node.Node, "discover", classmethod(lambda cls: cls(disk, "a", "nodeforge.slot=a")))
    assert node.main(["image", "status"]) == 0
    out = capsys.readouterr().out
    assert '"running": "a"' in out and '"selected": "a"' in out
    assert node.main(["image", "update", "http://127.0.0.1:9/sealed/"]) == 1
    assert capsys.readouterr().out.strip() == (
        "nodeforge-update: error: http://127.0.0.1:9/sealed/: an update from a URL needs --root-hash "
        "(the catalog's, not the server's seal.json)"
    )
    assert node.main(["image", "mark-boot", "--timeout", "5"]) == 0
    assert "slot A is already marked successful" in capsys.readouterr().out
