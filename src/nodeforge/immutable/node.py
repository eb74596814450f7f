"""A/B updates and rollback on the running node: ``nodeforge image update | status | mark-boot | apply-settings``.

Runs on the sealed root itself (``/usr/bin/nodeforge``, installed at seal time by
:func:`nodeforge.immutable.layout.install_update_tools`) with python3's standard library and the tools the image
already has (``sfdisk``, ``openssl``, ``systemctl``); it has no ``veritysetup``, so the sealed root is verified by
recomputing its hash tree in Python (:func:`nodeforge.immutable.verity.verify_tree`). The slot-state rules are
the host tools' own (:mod:`nodeforge.immutable.update`, :mod:`~nodeforge.immutable.record`,
:mod:`nodeforge.vm.grubenv`): the node runs the same code on its boot disk (a block device) that the host runs on a
disk image file.

* ``update``: the boot disk is found from the running system (the device under ``/``: the dm-verity device's one
  underlying partition, its parent disk in sysfs) and checked against the slot GRUB booted
  (``nodeforge.slot=`` on the kernel command line). The sealed root comes from a directory or an http(s) URL
  (the sealed directory served as files: ``seal.json``, ``root.img``, ``root.verity``, ``vmlinuz``,
  ``initrd.img`` and, when signed, ``root.sig``), is downloaded into a staging directory on the state partition
  and handed to :func:`nodeforge.immutable.update.update_slot` with the expected root hash (required for a URL:
  ``seal.json`` from the network proves nothing): verified against it, and against the disk's key if it has one,
  before the inactive slot is written; the slot is checked in place and only then made pending (priority above
  the running slot, ``tries`` left, not successful). Then the node reboots (``systemctl reboot``).
* ``mark-boot`` (``nodeforge-mark-boot.service``, ordered after containerd and the kubelet): a boot of a pending
  slot is marked successful once containerd and the kubelet are active and stay so for a settle time, within a
  bound (``nodeforge.health_timeout=`` on the kernel command line, default :data:`DEFAULT_HEALTH_TIMEOUT`). A
  boot that does not get there is not marked and the node reboots: GRUB, finding the slot's tries spent, boots
  the previous slot (Bottlerocket's ``mark-successful-boot`` + its boot-count rollback).
* ``apply-settings`` (``nodeforge-update.service``, at boot after the bootstrap agent): Bottlerocket's update
  settings in the instance's TOML user data, ``settings.updates.targets-base-url`` (where the sealed files are)
  and ``settings.updates.version-lock`` (the root hash to run), start an ``update`` when the running slot does
  not have that root hash; a root hash the other slot already holds without success (a rolled-back update) is not
  tried again.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nodeforge.immutable import update, verity
from nodeforge.immutable.errors import ImmutableError, UpdateRefusedError
from nodeforge.immutable.record import SLOTS, other
from nodeforge.immutable.seal import HASH_NAME, IMAGE_NAME, INITRD_NAME, KERNEL_NAME, SEAL_JSON, SIGNATURE_NAME
from nodeforge.vm.ab_disk import read_layout
from nodeforge.vm.ab_grub import MAX_TRIES

DEFAULT_HEALTH_TIMEOUT = 300
"""Seconds a new boot has, from the mark-boot unit's start, to get containerd and the kubelet healthy."""
DEFAULT_SETTLE = 15
"""Seconds both units must stay active without a restart before the boot counts as healthy."""
HEALTH_UNITS = ("containerd.service", "kubelet.service")
STAGING = Path("/var/lib/nodeforge/update")
MARK = "nodeforge-mark-boot:"
UPDATE_MARK = "nodeforge-update:"
_SLOT_ARG = re.compile(r"(?:^|\s)nodeforge\.slot=([ab])(?:\s|$)")
_TIMEOUT_ARG = re.compile(r"(?:^|\s)nodeforge\.health_timeout=(\S*)")


class NodeError(ImmutableError):
    """An on-node operation cannot proceed (the message names the device, file, URL or setting)."""


# -- the running system ---------------------------------------------------------------------------------------------


def booted_slot(cmdline: str) -> str:
    """The slot GRUB booted, from the kernel command line (``nodeforge.slot=``)."""
    match = _SLOT_ARG.search(cmdline)
    if not match:
        raise NodeError("/proc/cmdline: no nodeforge.slot= (not booted from a nodeforge A/B disk by its GRUB)")
    return match.group(1)


def health_timeout(cmdline: str, default: int = DEFAULT_HEALTH_TIMEOUT) -> int:
    """``nodeforge.health_timeout=SECONDS`` from the kernel command line, else ``default``."""
    match = _TIMEOUT_ARG.search(cmdline)
    if not match:
        return default
    try:
        value = int(match.group(1))
    except ValueError:
        value = 0
    if value <= 0:
        raise NodeError(f"/proc/cmdline: nodeforge.health_timeout={match.group(1)!r} is not a positive whole number")
    return value


def find_boot_disk(
    *, root: str = "/", sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")
) -> tuple[Path, str]:
    """``(disk device, partition name)`` the root filesystem lives on, from the running system.

    ``/`` is on the dm-verity device: its one underlying device (``/sys/dev/block/M:m/slaves``) is the slot
    partition, whose parent in sysfs is the disk (``vda``, ``nvme0n1``, ``xvda``). A root that is a partition
    itself is accepted as well (the same walk without the device-mapper step).
    """
    st = Path(root).stat()
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    node = sys_root / "dev/block" / f"{major}:{minor}"
    if not node.exists():
        raise NodeError(f"{root}: its device {major}:{minor} is not a block device in {sys_root}/dev/block")
    node = node.resolve()
    slaves = node / "slaves"
    if slaves.is_dir():
        under = sorted(p.name for p in slaves.iterdir())
        if len(under) != 1:
            raise NodeError(f"{root}: device {node.name} sits on {under or 'nothing'}, not on one slot partition")
        node = (slaves / under[0]).resolve()
    if not (node / "partition").is_file():
        raise NodeError(f"{root}: device {node.name} is not a partition of a disk")
    disk = dev_root / node.parent.name
    return disk, node.name


def partition_number(name: str, sys_root: Path = Path("/sys")) -> int:
    """The partition number of block device ``name`` (sysfs ``partition``)."""
    try:
        return int((sys_root / "class/block" / name / "partition").read_text().strip())
    except (OSError, ValueError) as exc:
        raise NodeError(f"{sys_root}/class/block/{name}/partition: unreadable ({exc})") from exc


@dataclass
class Node:
    """The running node as the on-node commands see it (paths overridable for the unit tests)."""

    disk: Path
    slot: str
    """The slot GRUB booted (kernel command line)."""
    cmdline: str = ""

    @classmethod
    def discover(
        cls, *, proc_cmdline: Path = Path("/proc/cmdline"), sys_root: Path = Path("/sys"), dev_root: Path = Path("/dev")
    ) -> Node:
        """The boot disk and slot of this system; :class:`NodeError` when they do not agree with the disk's GPT."""
        cmdline = proc_cmdline.read_text()
        slot = booted_slot(cmdline)
        disk, part = find_boot_disk(sys_root=sys_root, dev_root=dev_root)
        layout = read_layout(disk)
        number = partition_number(part, sys_root)
        if layout.slot(slot).number != number:
            raise NodeError(
                f"{disk}: the root is on partition {number} ({part}), but GRUB booted slot {slot.upper()} "
                f"(partition {layout.slot(slot).number})"
            )
        return cls(disk=disk, slot=slot, cmdline=cmdline)


# -- fetching a sealed root -------------------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _download(url: str, dest: Path, *, expect_size: int | None = None, timeout: float = 60) -> int:
    import urllib.error
    import urllib.request

    tmp = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, tmp.open("wb") as out:  # noqa: S310 (http(s) only)
            size = 0
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                out.write(chunk)
                size += len(chunk)
    except urllib.error.HTTPError as exc:
        tmp.unlink(missing_ok=True)
        raise NodeError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise NodeError(f"{url}: download failed ({reason})") from exc
    if expect_size is not None and size != expect_size:
        tmp.unlink(missing_ok=True)
        raise NodeError(f"{url}: {size} bytes downloaded, seal.json says {expect_size}")
    tmp.replace(dest)
    return size


def fetch_sealed(source: str, staging: Path) -> Path:
    """The sealed directory for ``source``: a local directory as is, or an http(s) base URL downloaded to ``staging``.

    A URL is the sealed directory served as files; ``seal.json`` is read first (sizes, whether it is signed) and the
    staging file system must hold the files before any is downloaded. Anything wrong is a :class:`NodeError`
    naming the URL or file; a partial download is removed.
    """
    if not _is_url(source):
        directory = Path(source)
        if not (directory / SEAL_JSON).is_file():
            raise NodeError(f"{directory}: not a sealed directory (no {SEAL_JSON})")
        return directory
    base = source if source.endswith("/") else source + "/"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True, mode=0o700)
    try:
        _download(base + SEAL_JSON, staging / SEAL_JSON)
        try:
            meta = json.loads((staging / SEAL_JSON).read_text())
            sizes = {
                IMAGE_NAME: int(meta["image_bytes"]),
                HASH_NAME: int(meta["hash_bytes"]),
                KERNEL_NAME: int(meta["kernel_bytes"]),
                INITRD_NAME: int(meta["initrd_bytes"]),
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise NodeError(f"{base}{SEAL_JSON}: not a seal.json ({exc})") from exc
        names: dict[str, int | None] = dict(sizes)
        if meta.get("signature"):
            names[SIGNATURE_NAME] = None
        free = shutil.disk_usage(staging).free
        need = sum(sizes.values()) + (1 << 20)
        if need > free:
            raise NodeError(
                f"{staging}: {free // (1 << 20)} MiB free, the sealed root at {base} needs {need // (1 << 20)} MiB"
            )
        for name, size in names.items():
            _download(base + name, staging / name, expect_size=size)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


# -- update --------------------------------------------------------------------------------------------------------


def _log(mark: str, text: str) -> None:
    print(f"{mark} {text}", flush=True)


def _reboot() -> None:
    subprocess.run(["systemctl", "reboot"], check=False)


def apply_update(
    node: Node,
    source: str,
    *,
    root_hash: str | None,
    tries: int = update.DEFAULT_TRIES,
    staging: Path = STAGING,
    reboot: Callable[[], None] | None = _reboot,
) -> update.UpdateResult:
    """Write the sealed root at ``source`` into the slot the node does not run, make it pending, reboot.

    ``root_hash`` is required for a URL; for a directory it defaults to its ``seal.json``'s. Refused (nothing
    written, the running slot untouched) when it is malformed, is the root the node already runs, or the sealed
    root does not verify against it or against the disk's key.
    """
    if root_hash is not None:
        root_hash = verity.check_root_hash(root_hash, subject="--root-hash")
    elif _is_url(source):
        raise NodeError(f"{source}: an update from a URL needs --root-hash (the catalog's, not the server's seal.json)")
    if not 1 <= tries <= MAX_TRIES:
        raise NodeError(f"--tries: {tries} is not between 1 and {MAX_TRIES}")
    record = read_layout(node.disk).read_record()
    running = record.slots[node.slot]
    if root_hash is not None and running.root_hash == root_hash:
        raise UpdateRefusedError(
            f"{node.disk}: slot {node.slot.upper()} already runs root hash {root_hash}; nothing to update"
        )
    update.update_target(record, running=node.slot, subject=node.disk)  # refuse before downloading anything
    directory = fetch_sealed(source, staging)
    try:
        result = update.update_slot(node.disk, directory, root_hash=root_hash, tries=tries, running=node.slot)
    finally:
        if directory == staging:
            shutil.rmtree(staging, ignore_errors=True)
    _log(
        UPDATE_MARK,
        f"slot {result.slot.upper()} holds root hash {result.root_hash}, pending with {result.tries_left} "
        f"tries; slot {node.slot.upper()} kept ({json.dumps(result.seconds)})",
    )
    if reboot is not None:
        _log(UPDATE_MARK, "rebooting into the new slot")
        reboot()
    return result


# -- mark-boot -----------------------------------------------------------------------------------------------------


@dataclass
class UnitState:
    active: str
    sub: str
    restarts: int


def systemctl_show(units: Sequence[str]) -> dict[str, UnitState]:
    """ActiveState, SubState and NRestarts of ``units`` (``systemctl show``)."""
    proc = subprocess.run(
        ["systemctl", "show", "--property=Id,ActiveState,SubState,NRestarts", *units],
        capture_output=True,
        text=True,
        check=False,
    )
    states: dict[str, UnitState] = {}
    for block in proc.stdout.strip().split("\n\n"):
        values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if values.get("Id"):
            restarts = values.get("NRestarts", "0")
            states[values["Id"]] = UnitState(
                values.get("ActiveState", ""), values.get("SubState", ""), int(restarts) if restarts.isdigit() else 0
            )
    return states


@dataclass
class Health:
    """Outcome of :func:`wait_healthy`."""

    healthy: bool
    seconds: float
    states: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(f"{unit} {state}" for unit, state in self.states.items())


def wait_healthy(
    units: Sequence[str],
    *,
    timeout: float,
    settle: float = DEFAULT_SETTLE,
    show: Callable[[Sequence[str]], Mapping[str, UnitState]] = systemctl_show,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = 2.0,
) -> Health:
    """Wait until every unit is active and none restarted for ``settle`` seconds, at most ``timeout`` seconds."""
    started = clock()
    since: float | None = None
    last: dict[str, int] = {}
    states: dict[str, str] = {}
    while True:
        now = clock()
        current = show(units)
        states = {u: (f"{s.active}/{s.sub}" if u in current else "not found") for u in units for s in [current.get(u)]}
        ok = all(u in current and current[u].active == "active" for u in units)
        restarts = {u: current[u].restarts for u in units if u in current}
        if not ok or restarts != last:
            since = now if ok else None
        last = restarts
        if ok and since is not None and now - since >= settle:
            return Health(True, now - started, states)
        if now - started >= timeout:
            return Health(False, now - started, states)
        sleep(interval)


def mark_boot(
    node: Node,
    *,
    timeout: float,
    settle: float = DEFAULT_SETTLE,
    units: Sequence[str] = HEALTH_UNITS,
    wait: Callable[..., Health] = wait_healthy,
    reboot: Callable[[], None] | None = _reboot,
) -> str:
    """Mark this boot successful when ``units`` are healthy within ``timeout``; else leave it unmarked and reboot.

    Returns what was decided: ``already-good`` (the slot was marked before: nothing to decide, never a reboot),
    ``marked``, or ``rebooting`` (a pending slot that did not get healthy: its tries decide the next boot).
    """
    layout = read_layout(node.disk)
    record = layout.read_record()
    info = record.slots[node.slot]
    if info.successful:
        _log(MARK, f"slot {node.slot.upper()} is already marked successful; nothing to decide")
        return "already-good"
    if record.last_boot != node.slot:
        raise NodeError(
            f"{node.disk}: GRUB recorded its last boot as slot {record.last_boot.upper() or '(none)'}, "
            f"this system runs slot {node.slot.upper()}: not marking"
        )
    _log(MARK, f"slot {node.slot.upper()} is pending ({info.tries_left} tries left): waiting up to {timeout:.0f}s "
               f"for {', '.join(units)}")  # fmt: skip
    health = wait(units, timeout=timeout, settle=settle)
    if health.healthy:
        slot = update.mark_successful(node.disk)
        _log(MARK, f"slot {slot.upper()} marked successful after {health.seconds:.0f}s ({health.describe()})")
        return "marked"
    fallback = other(node.slot)
    _log(
        MARK,
        f"slot {node.slot.upper()} not healthy after {health.seconds:.0f}s ({health.describe()}): not marked; "
        f"rebooting ({info.tries_left} tries left; at 0 GRUB boots slot {fallback.upper()})",
    )
    if reboot is not None:
        reboot()
    return "rebooting"


# -- settings-driven update ----------------------------------------------------------------------------------------


@dataclass
class UpdateSettings:
    base_url: str
    root_hash: str


def update_settings(user_data: bytes) -> UpdateSettings | None:
    """``settings.updates.targets-base-url`` and ``version-lock`` from TOML user data (``None``: no update asked).

    Both or neither; the URL http(s); the version lock a root hash (64 hex digits): anything else is a
    :class:`NodeError` naming the setting.
    """
    import gzip

    from nodeforge.bootstrap import tomlr

    if user_data[:2] == b"\x1f\x8b":
        user_data = gzip.decompress(user_data)
    try:
        text = user_data.decode()
        data = tomlr.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None  # not TOML user data (a NodeConfig or a script): no Bottlerocket update settings in it
    updates = data.get("settings", {}).get("updates", {}) if isinstance(data.get("settings"), dict) else {}
    if not isinstance(updates, dict):
        raise NodeError("settings.updates: not a table")
    url, lock = updates.get("targets-base-url"), updates.get("version-lock")
    if url is None and lock is None:
        return None
    if not isinstance(url, str) or not _is_url(url):
        raise NodeError(f"settings.updates.targets-base-url: {url!r} is not an http(s) URL of a sealed root")
    if not isinstance(lock, str):
        raise NodeError("settings.updates.version-lock: missing (the root hash of the sealed root to run)")
    try:
        root_hash = verity.check_root_hash(lock, subject="settings.updates.version-lock")
    except ImmutableError as exc:
        raise NodeError(str(exc)) from exc
    return UpdateSettings(url, root_hash)


def settings_decision(node: Node, wanted: UpdateSettings) -> str:
    """``""`` when the update should be applied, else why not (already running it, or it was rolled back)."""
    record = read_layout(node.disk).read_record()
    if record.slots[node.slot].root_hash == wanted.root_hash:
        return f"slot {node.slot.upper()} runs root hash {wanted.root_hash} (settings.updates.version-lock)"
    peer = other(node.slot)
    info = record.slots[peer]
    if info.root_hash == wanted.root_hash and not info.successful:
        return (
            f"slot {peer.upper()} already holds root hash {wanted.root_hash} and it never booted successfully "
            f"({info.describe()}): not trying it again; set another settings.updates.version-lock"
        )
    return ""


def read_user_data() -> bytes:
    """The instance's user data over IMDSv2 (the bootstrap agent's client); empty when there is none."""
    from nodeforge.bootstrap.errors import BootstrapError
    from nodeforge.bootstrap.imds import ImdsClient

    try:
        data = ImdsClient().get_bytes("latest/user-data")
    except BootstrapError as exc:
        raise NodeError(f"user data: {exc}") from exc
    return data or b""


# -- command line --------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nodeforge image", description="A/B updates on this node")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("update", help="write a sealed root into the inactive slot, make it pending, reboot")
    up.add_argument("source", help="http(s) base URL of a sealed directory, or a local sealed directory")
    up.add_argument("--root-hash", help="the root hash the update must have (required for a URL)")
    up.add_argument("--tries", type=int, default=update.DEFAULT_TRIES, help="boot attempts before falling back")
    up.add_argument("--no-reboot", action="store_true", help="leave the reboot to the caller")
    st = sub.add_parser("status", help="the boot disk's slot state (JSON)")
    st.add_argument("--json", action="store_true", help="(always JSON on the node)")
    mb = sub.add_parser("mark-boot", help="mark this boot successful once containerd and the kubelet are healthy")
    mb.add_argument("--timeout", type=int, help="seconds (default: nodeforge.health_timeout=, else 300)")
    mb.add_argument("--settle", type=int, default=DEFAULT_SETTLE, help="seconds healthy without a restart")
    mb.add_argument("--no-reboot", action="store_true", help="do not reboot an unhealthy boot")
    sub.add_parser("apply-settings", help="update as settings.updates in the user data says (at boot)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["image"]:  # `nodeforge image update ...`, as on the host
        args = args[1:]
    opts = _parser().parse_args(args)
    try:
        node = Node.discover()
        if opts.command == "status":
            data = update.status(node.disk)
            data["running"] = node.slot
            print(json.dumps(data, indent=2))
        elif opts.command == "update":
            apply_update(
                node,
                opts.source,
                root_hash=opts.root_hash,
                tries=opts.tries,
                reboot=None if opts.no_reboot else _reboot,
            )
        elif opts.command == "mark-boot":
            timeout = opts.timeout if opts.timeout is not None else health_timeout(node.cmdline)
            mark_boot(node, timeout=timeout, settle=opts.settle, reboot=None if opts.no_reboot else _reboot)
        elif opts.command == "apply-settings":
            wanted = update_settings(read_user_data())
            if wanted is None:
                _log(UPDATE_MARK, "no update in the user data (settings.updates)")
                return 0
            reason = settings_decision(node, wanted)
            if reason:
                _log(UPDATE_MARK, reason)
                return 0
            _log(UPDATE_MARK, f"settings.updates asks for root hash {wanted.root_hash} from {wanted.base_url}")
            apply_update(node, wanted.base_url, root_hash=wanted.root_hash)
    except (ImmutableError, OSError) as exc:
        mark = MARK if opts.command == "mark-boot" else UPDATE_MARK
        _log(mark, f"error: {exc}")
        return 1
    return 0


__all__ = ["SLOTS", "Node", "apply_update", "find_boot_disk", "main", "mark_boot", "update_settings", "wait_healthy"]

if __name__ == "__main__":
    sys.exit(main())
