"""Turn a baked root filesystem tar into a bootable raw ext4 disk image and boot-check it under QEMU.

Two steps:

* :func:`build_disk_image` extracts a rootfs tar (``mmdebstrap`` output or a ``docker export`` of a
  baked node container) into a scratch directory, copies the kernel and initrd out of ``/boot``,
  patches the *extracted copy* (boot probe, root ``/etc/fstab`` entry, docker-export leftovers) and
  writes a raw ext4 image with ``mkfs.ext4 -d``.
* :func:`boot_check` boots that image once under QEMU software emulation (TCG, no network device,
  disk opened with ``snapshot=on`` so the artifact is never modified) and waits for the boot probe
  to print its report on the serial console.

The boot probe is a small systemd service that only runs when the kernel command line contains
``nodeforge.bootprobe=1`` (which :func:`boot_check` passes), so the image stays inert otherwise.
It is ``Type=exec``: its start job completes as soon as the script is running, so
``systemctl is-system-running --wait`` inside it does not wait for the probe itself, and a running
probe is never a failed unit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "PROBE_BEGIN",
    "PROBE_END",
    "BootCheckError",
    "BootResult",
    "DiskImage",
    "DiskImageError",
    "KernelNotFoundError",
    "MkfsError",
    "ProbeReportError",
    "RootfsTarError",
    "RootfsTarNotFoundError",
    "boot_check",
    "build_disk_image",
    "extract_rootfs",
    "find_kernel",
    "install_boot_probe",
    "kernel_cmdline",
    "parse_probe_report",
    "prepare_vm_root",
    "qemu_command",
]

PROBE_BEGIN = "NODEFORGE-BOOTPROBE-BEGIN"
PROBE_END = "NODEFORGE-BOOTPROBE-END"
PROBE_UNIT = "nodeforge-bootprobe.service"
PROBE_SCRIPT = "/usr/local/libexec/nodeforge-bootprobe"
PROBE_EXTRA_SCRIPT = "/usr/local/libexec/nodeforge-bootprobe-extra"
"""Optional: an executable printing one JSON object; the probe adds it to its report as ``extra``."""
PROBE_CMDLINE_FLAG = "nodeforge.bootprobe=1"
FS_LABEL = "nodeforge-root"
DEFAULT_PROBE_UNITS: tuple[str, ...] = ("containerd",)

DISK_NAME = "disk.img"
KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"

_MIB = 1024 * 1024
_BLOCK = 4096
_UNIT_NAME_RE = re.compile(r"^[A-Za-z0-9:_.@\\-]+$")
_CONSOLE_TAIL_LINES = 40


# --------------------------------------------------------------------------------------------- errors


class DiskImageError(Exception):
    """Base class for errors raised by :mod:`nodeforge.vm.disk`."""


class RootfsTarError(DiskImageError):
    """The rootfs tar could not be read or extracted."""


class RootfsTarNotFoundError(RootfsTarError, FileNotFoundError):
    """The rootfs tar does not exist."""


class KernelNotFoundError(DiskImageError):
    """The rootfs has no usable kernel + initrd pair in /boot."""


class MkfsError(DiskImageError):
    """``mkfs.ext4`` failed (or is not installed)."""


class ProbeReportError(DiskImageError, ValueError):
    """The console output holds no complete, well-formed boot probe report."""


class BootCheckError(DiskImageError):
    """The image did not boot to a probe report (timeout, QEMU exit, unparsable report)."""

    def __init__(self, message: str, *, console_log: Path | None = None, console_tail: str = "") -> None:
        self.console_log = console_log
        self.console_tail = console_tail
        full = message
        if console_log is not None:
            full += f"\nconsole log: {console_log}"
        if console_tail:
            full += f"\nlast {_CONSOLE_TAIL_LINES} console lines:\n{console_tail}"
        elif console_log is not None:
            full += " (empty: the boot is quiet until something fails)"
        super().__init__(full)


# ------------------------------------------------------------------------------------------ results


@dataclass
class DiskImage:
    """A raw ext4 disk image plus the kernel and initrd needed to boot it directly."""

    disk: Path
    kernel: Path
    initrd: Path
    size_bytes: int
    kernel_version: str = ""
    probe_units: list[str] = field(default_factory=list)
    modifications: list[str] = field(default_factory=list)
    """What was changed in the extracted copy besides the boot probe (for the build log)."""


@dataclass
class BootResult:
    """What the boot probe reported from inside the booted image."""

    system_state: str
    failed_units: list[str]
    unit_states: dict[str, str]
    root_mount: str
    seconds: float
    console_log: Path
    powered_off: bool = False
    """QEMU exited by itself (clean guest poweroff) after the report."""
    report: dict[str, Any] = field(default_factory=dict)
    """The full parsed probe report (also holds ``jobs``, ``virt``, ``analyze``, ``uptime``...)."""

    @property
    def ok(self) -> bool:
        return self.system_state == "running" and not self.failed_units


# -------------------------------------------------------------------------------------- boot probe

_PROBE_UNIT_TEXT = f"""\
# Installed by nodeforge.vm.disk into boot-test disk images. Inert unless the kernel command line
# contains {PROBE_CMDLINE_FLAG}. Type=exec: the start job finishes once the script runs, so
# `systemctl is-system-running --wait` inside it does not wait for this unit.
[Unit]
Description=nodeforge boot probe (report boot state on ttyS0, then power off)
ConditionKernelCommandLine={PROBE_CMDLINE_FLAG}
After=multi-user.target

[Service]
Type=exec
ExecStart={PROBE_SCRIPT}
StandardOutput=journal
StandardError=journal
TimeoutStopSec=10

[Install]
WantedBy=multi-user.target
"""

# POSIX sh (dash): the image may not have python. Values are JSON-escaped by sed; control
# characters are dropped. Kernel command line knobs: nodeforge.bootprobe.wait=SECONDS (max time for
# is-system-running --wait), nodeforge.bootprobe.poweroff=0 (stay up after reporting).
_PROBE_SCRIPT_TEXT = r"""#!/bin/sh
# nodeforge boot probe -- installed by nodeforge.vm.disk; see nodeforge-bootprobe.service.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SYSTEMD_PAGER=
SYSTEMD_COLORS=0
export PATH SYSTEMD_PAGER SYSTEMD_COLORS

UNITS='@UNITS@'
WAIT=240
POWEROFF=1
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        nodeforge.bootprobe.wait=*) WAIT="${arg#*=}" ;;
        nodeforge.bootprobe.poweroff=*) POWEROFF="${arg#*=}" ;;
    esac
done
OUT=/dev/ttyS0
[ -c "$OUT" ] || OUT=/dev/console

json_str() {
    printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
}
json_list() {
    _first=1
    printf '['
    printf '%s\n' "$1" | while IFS= read -r _item; do
        [ -n "$_item" ] || continue
        [ "$_first" = 1 ] || printf ','
        _first=0
        json_str "$_item"
    done
    printf ']'
}

state=$(timeout "$WAIT" systemctl is-system-running --wait 2>/dev/null)
wait_rc=$?
if [ "$wait_rc" = 124 ] || [ -z "$state" ]; then
    state=$(systemctl is-system-running 2>/dev/null)
    [ -n "$state" ] || state=unknown
fi
failed=$(systemctl list-units --failed --plain --no-legend --no-pager 2>/dev/null | cut -d' ' -f1)
jobs=$(systemctl list-jobs --plain --no-legend --no-pager 2>/dev/null)
if command -v findmnt >/dev/null 2>&1; then
    root=$(findmnt -no SOURCE,FSTYPE,OPTIONS / 2>/dev/null)
else
    root=$(while read -r s m t o _; do [ "$m" = / ] && echo "$s $t $o"; done </proc/self/mounts | tail -n 1)
fi
units='{'
_sep=
for u in $UNITS; do
    units="$units$_sep$(json_str "$u"):$(json_str "$(systemctl is-active "$u" 2>/dev/null)")"
    _sep=,
done
units="$units}"
virt=$(systemd-detect-virt 2>/dev/null)
analyze=$(systemd-analyze time --no-pager 2>/dev/null | head -n 1)
read -r uptime _ </proc/uptime
extra=
if [ -x @EXTRA@ ]; then
    extra=$(@EXTRA@ 2>/dev/null | tr -d '\n')
    case "$extra" in "{"*"}") ;; *) extra="{\"error\":$(json_str "bad extra probe output: $extra")}" ;; esac
fi

report="{\"probe\":1,\"state\":$(json_str "$state"),\"wait_rc\":$wait_rc"
report="$report,\"failed\":$(json_list "$failed"),\"units\":$units,\"root\":$(json_str "$root")"
report="$report,\"jobs\":$(json_list "$jobs"),\"virt\":$(json_str "$virt")"
report="$report,\"analyze\":$(json_str "$analyze"),\"uptime\":$(json_str "$uptime")"
[ -z "$extra" ] || report="$report,\"extra\":$extra"
report="$report}"

printf '\n%s\n%s\n%s\n' "NODEFORGE-BOOTPROBE-BEGIN" "$report" "NODEFORGE-BOOTPROBE-END" >"$OUT"
printf '%s\n' "$report"
if [ "$POWEROFF" != 0 ]; then
    systemctl --no-block poweroff
fi
exit 0
"""


def _probe_script(units: Sequence[str]) -> str:
    return _PROBE_SCRIPT_TEXT.replace("@UNITS@", " ".join(units)).replace("@EXTRA@", PROBE_EXTRA_SCRIPT)


def parse_probe_report(console_text: str) -> dict[str, Any]:
    """Return the last complete boot probe report found in ``console_text`` as a dict.

    Tolerates CRLF line endings, console noise before/after/between the markers and repeated
    reports. Raises :class:`ProbeReportError` when there is no complete, valid report.
    """
    text = console_text.replace("\r", "")
    end = text.rfind(PROBE_END)
    if end < 0:
        raise ProbeReportError(f"no {PROBE_END} marker in console output")
    begin = text.rfind(PROBE_BEGIN, 0, end)
    if begin < 0:
        raise ProbeReportError(f"{PROBE_END} without a preceding {PROBE_BEGIN} marker")
    body = text[begin + len(PROBE_BEGIN) : end]
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    # The report is one JSON line; pick the line that parses (interleaved kernel messages are noise).
    candidates = [line for line in lines if line.startswith("{")] or lines
    errors: list[str] = []
    for line in reversed(candidates):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(f"{exc}: {line[:200]!r}")
            continue
        if isinstance(data, dict) and "state" in data:
            return _normalise_report(data)
        errors.append(f"not a probe report object: {line[:200]!r}")
    detail = "; ".join(errors) if errors else "empty report"
    raise ProbeReportError(f"malformed boot probe report between markers: {detail}")


def _normalise_report(data: dict[str, Any]) -> dict[str, Any]:
    failed = data.get("failed") or []
    units = data.get("units") or {}
    if not isinstance(failed, list) or not isinstance(units, dict):
        raise ProbeReportError(f"boot probe report has wrong field types: {data!r}")
    data["state"] = str(data.get("state", "")).strip()
    data["failed"] = [str(u) for u in failed if str(u).strip()]
    data["units"] = {str(k): str(v) for k, v in units.items()}
    data["root"] = " ".join(str(data.get("root", "")).split())  # findmnt pads its columns
    return data


# ------------------------------------------------------------------------------------------- build


def _version_key(version: str) -> list[tuple[int, Any]]:
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", version) if part]


def find_kernel(root: Path, tar_path: Path) -> tuple[str, Path, Path]:
    """(version, kernel, initrd) of the newest kernel + initrd pair in ``root/boot``.

    Raises :class:`KernelNotFoundError` (naming ``tar_path``) when there is none.
    """
    boot = root / "boot"
    pairs: list[tuple[str, Path, Path]] = []
    if boot.is_dir():
        for kernel in boot.glob("vmlinuz-*"):
            version = kernel.name.removeprefix("vmlinuz-")
            initrd = boot / f"initrd.img-{version}"
            if _is_regular_in_root(kernel, root) and _is_regular_in_root(initrd, root):
                pairs.append((version, kernel, initrd))
        if not pairs and (boot / "vmlinuz").exists() and (boot / "initrd.img").exists():
            kernel, initrd = boot / "vmlinuz", boot / "initrd.img"
            if _is_regular_in_root(kernel, root) and _is_regular_in_root(initrd, root):
                pairs.append(("", kernel, initrd))
    if not pairs:
        found = sorted(p.name for p in boot.iterdir()) if boot.is_dir() else []
        raise KernelNotFoundError(
            f"{tar_path}: no kernel + initrd pair in /boot (need /boot/vmlinuz-VERSION and "
            f"/boot/initrd.img-VERSION; found {found or 'nothing'}). Install a linux-image package "
            "and initramfs-tools in the image."
        )
    return max(pairs, key=lambda p: _version_key(p[0]))


def _is_regular_in_root(path: Path, root: Path) -> bool:
    """True if ``path`` is (or links, inside ``root``, to) a non-empty regular file."""
    try:
        resolved = path.resolve()
        resolved.relative_to(root.resolve())
        st = resolved.stat()
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(st.st_mode) and st.st_size > 0


def extract_rootfs(tar_path: Path, dest: Path) -> None:
    """Extract ``tar_path`` into ``dest`` keeping numeric owners, permissions and xattrs.

    Raises :class:`RootfsTarNotFoundError` / :class:`RootfsTarError` naming the tar.
    """
    if not Path(tar_path).is_file():
        raise RootfsTarNotFoundError(f"{tar_path}: rootfs tar not found")
    cmd = [
        "tar",
        "--numeric-owner",
        "--same-owner",
        "--same-permissions",
        "--xattrs",
        "--xattrs-include=*",
        "-xf",
        str(tar_path),
        "-C",
        str(dest),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
        raise RootfsTarError(f"{tar_path}: extracting the rootfs tar failed (tar exit {proc.returncode}):\n{tail}")


def _has_root_fstab_entry(fstab: Path) -> bool:
    try:
        text = fstab.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and not fields[0].startswith("#") and fields[1] == "/":
            return True
    return False


def enable_unit(root: Path, unit_path: str) -> None:
    """Enable the unit at UNIT_PATH (a path in the image) for multi-user.target inside an extracted root."""
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / Path(unit_path).name
    if link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(unit_path)


def write_root_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write TEXT to PATH inside an extracted root: root-owned, MODE, replacing a symlink rather than following it."""
    if path.is_symlink():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chown(path, 0, 0)
    path.chmod(mode)


def prepare_vm_root(root: Path) -> list[str]:
    """Make an extracted container root bootable as a VM root: mount points, no container markers, /etc/hosts.

    Returns human-readable notes of what changed.
    """
    notes: list[str] = []

    # Mount points the initramfs' switch_root and systemd need in the new root.
    for name, mode in (("dev", 0o755), ("proc", 0o555), ("sys", 0o555), ("run", 0o755), ("tmp", 0o1777)):
        d = root / name
        if not d.exists() and not d.is_symlink():
            d.mkdir()
            d.chmod(mode)
            notes.append(f"created missing /{name}")

    # docker export leaves these behind; systemd (PID 1) treats /.dockerenv as "running in a docker
    # container" and would skip udev, getty, module loading... on a real VM boot.
    for marker in (".dockerenv", "run/.containerenv"):
        p = root / marker
        if p.exists() or p.is_symlink():
            p.unlink()
            notes.append(f"removed /{marker} (container marker)")

    # docker export ships an empty /etc/hosts placeholder (docker bind-mounts its own at runtime).
    hosts = root / "etc/hosts"
    if not hosts.is_symlink() and (not hosts.exists() or not hosts.read_text(errors="replace").strip()):
        write_root_file(
            hosts,
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
        )
        notes.append("wrote minimal /etc/hosts (was empty or missing)")
    return notes


def install_boot_probe(root: Path, probe_units: Sequence[str], *, extra_script: str | None = None) -> None:
    """Install the boot probe (systemd unit + script, enabled for multi-user.target) into ``root``.

    ``extra_script`` (POSIX sh printing one JSON object) is installed as :data:`PROBE_EXTRA_SCRIPT`;
    its output becomes the report's ``extra`` field.
    """
    for unit in probe_units:
        if not _UNIT_NAME_RE.match(unit):
            raise ValueError(f"invalid systemd unit name for the boot probe: {unit!r}")
    write_root_file(root / PROBE_SCRIPT.lstrip("/"), _probe_script(probe_units), 0o755)
    if extra_script is not None:
        write_root_file(root / PROBE_EXTRA_SCRIPT.lstrip("/"), extra_script, 0o755)
    write_root_file(root / "etc/systemd/system" / PROBE_UNIT, _PROBE_UNIT_TEXT)
    enable_unit(root, f"/etc/systemd/system/{PROBE_UNIT}")


def _patch_rootfs(root: Path, probe_units: Sequence[str]) -> list[str]:
    """Patch the extracted copy; return human-readable notes of what changed besides the probe."""
    notes = prepare_vm_root(root)
    fstab = root / "etc/fstab"
    if not _has_root_fstab_entry(fstab):
        existing = ""
        if fstab.exists() and not fstab.is_symlink():
            existing = fstab.read_text(errors="replace")
            if existing and not existing.endswith("\n"):
                existing += "\n"
        write_root_file(
            fstab,
            existing + "# root filesystem, added by nodeforge.vm.disk\n"
            f"LABEL={FS_LABEL}\t/\text4\trw,relatime,errors=remount-ro\t0\t1\n",
        )
        notes.append(f"added root entry LABEL={FS_LABEL} to /etc/fstab")
    install_boot_probe(root, probe_units)
    return notes


def _tree_usage(root: Path) -> tuple[int, int]:
    """(bytes allocated, inode count) of the tree, hard links counted once."""
    seen: set[tuple[int, int]] = set()
    used = 0
    inodes = 0
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        # Real subdirectories are counted when walked; symlinks to directories show up in dirnames.
        entries = [
            base,
            *(base / n for n in filenames),
            *(base / n for n in dirnames if (base / n).is_symlink()),
        ]
        for entry in entries:
            st = entry.lstat()
            key = (st.st_dev, st.st_ino)
            if key in seen:
                continue
            seen.add(key)
            inodes += 1
            # Round regular files up to whole blocks: the scratch fs may pack small files differently.
            rounded = -(-st.st_size // _BLOCK) * _BLOCK if stat.S_ISREG(st.st_mode) else 0
            used += max(st.st_blocks * 512, rounded)
    return used, inodes


def _image_size(used: int, inodes: int) -> int:
    # Content + 20 % + inode tables + journal/metadata + free space for the booted system.
    size = int(used * 1.2) + inodes * 256 + 128 * _MIB + max(512 * _MIB, used // 4)
    return -(-size // (64 * _MIB)) * (64 * _MIB)


def _mkfs(src: Path, image: Path, size_bytes: int, inodes: int, final_name: Path) -> None:
    mkfs = shutil.which("mkfs.ext4") or next(
        (p for p in ("/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4") if Path(p).exists()), None
    )
    if mkfs is None:
        raise MkfsError(f"{final_name}: mkfs.ext4 not found (install e2fsprogs)")
    with image.open("wb") as fh:
        fh.truncate(size_bytes)
    inode_count = max(size_bytes // 16384, inodes + inodes // 2 + 4096)
    cmd = [
        mkfs,
        "-F",
        "-q",
        "-t",
        "ext4",
        "-b",
        str(_BLOCK),
        "-N",
        str(inode_count),
        "-L",
        FS_LABEL,
        "-E",
        "lazy_itable_init=0,lazy_journal_init=0",
        "-d",
        str(src),
        str(image),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        out = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise MkfsError(
            f"{final_name}: mkfs.ext4 failed (exit {proc.returncode}) for a {size_bytes // _MIB} MiB image "
            f"from {src}:\n{out}"
        )


def build_disk_image(
    rootfs_tar: Path,
    out_dir: Path,
    *,
    size_mb: int | None = None,
    probe_units: Sequence[str] | None = None,
) -> DiskImage:
    """Build ``out_dir/disk.img`` (raw ext4), ``out_dir/vmlinuz`` and ``out_dir/initrd.img``.

    ``rootfs_tar`` is extracted (numeric owners, permissions and xattrs preserved) into a scratch
    directory inside ``out_dir`` that is removed afterwards. The boot probe reports
    ``systemctl is-active`` for each of ``probe_units`` (default ``["containerd"]``). ``size_mb``
    overrides the computed size (content + headroom). Outputs are written under temporary names
    and renamed into place, so a failed build never leaves a half-written ``disk.img``.
    """
    rootfs_tar = Path(rootfs_tar)
    out_dir = Path(out_dir)
    units = list(DEFAULT_PROBE_UNITS if probe_units is None else probe_units)
    for unit in units:
        if not _UNIT_NAME_RE.match(unit):
            raise ValueError(f"invalid systemd unit name for the boot probe: {unit!r}")
    if not rootfs_tar.is_file():
        raise RootfsTarNotFoundError(f"{rootfs_tar}: rootfs tar not found")
    out_dir.mkdir(parents=True, exist_ok=True)

    disk = out_dir / DISK_NAME
    kernel_out = out_dir / KERNEL_NAME
    initrd_out = out_dir / INITRD_NAME
    scratch = Path(tempfile.mkdtemp(prefix=".nodeforge-rootfs-", dir=out_dir))
    temps: list[Path] = []
    try:
        root = scratch / "root"
        root.mkdir()
        extract_rootfs(rootfs_tar, root)
        root.chmod(0o755)
        os.chown(root, 0, 0)
        version, kernel, initrd = find_kernel(root, rootfs_tar)

        tmp_kernel = out_dir / f".{KERNEL_NAME}.tmp-{scratch.name}"
        tmp_initrd = out_dir / f".{INITRD_NAME}.tmp-{scratch.name}"
        tmp_disk = out_dir / f".{DISK_NAME}.tmp-{scratch.name}"
        temps += [tmp_kernel, tmp_initrd, tmp_disk]
        shutil.copyfile(kernel, tmp_kernel)
        shutil.copyfile(initrd, tmp_initrd)

        notes = _patch_rootfs(root, units)
        used, inodes = _tree_usage(root)
        if size_mb is not None:
            size_bytes = size_mb * _MIB
            if size_bytes < used:
                raise MkfsError(
                    f"{disk}: size_mb={size_mb} is smaller than the rootfs content "
                    f"({-(-used // _MIB)} MiB from {rootfs_tar})"
                )
        else:
            size_bytes = _image_size(used, inodes)
        _mkfs(root, tmp_disk, size_bytes, inodes, disk)

        tmp_kernel.replace(kernel_out)
        tmp_initrd.replace(initrd_out)
        tmp_disk.replace(disk)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        for tmp in temps:
            tmp.unlink(missing_ok=True)

    return DiskImage(
        disk=disk,
        kernel=kernel_out,
        initrd=initrd_out,
        size_bytes=disk.stat().st_size,
        kernel_version=version,
        probe_units=units,
        modifications=notes,
    )


# -------------------------------------------------------------------------------------------- boot


def kernel_cmdline(
    *, probe_wait: int = 240, extra: Sequence[str] = (), root_args: Sequence[str] = ("root=/dev/vda", "rw")
) -> str:
    """Kernel command line for a quiet, fast boot-check boot under TCG (``root_args`` select the root)."""
    args = [
        *root_args,
        "console=ttyS0",
        "quiet",
        # Quiet when all is well, but failed units and slow start jobs still reach the console,
        # which is what BootCheckError shows on a timeout.
        "systemd.show_status=auto",
        "net.ifnames=0",
        "mitigations=off",
        "panic=-1",
        # The probe owns ttyS0; agetty's vhangup() on it could swallow the report.
        "systemd.mask=serial-getty@ttyS0.service",
        # No network device at all: waiting for "online" can only time out.
        "systemd.mask=systemd-networkd-wait-online.service",
        PROBE_CMDLINE_FLAG,
        f"nodeforge.bootprobe.wait={int(probe_wait)}",
        *extra,
    ]
    return " ".join(args)


def _qemu_opt(value: Path | str) -> str:
    return str(value).replace(",", ",,")


def qemu_command(
    image: DiskImage,
    console_log: Path,
    *,
    memory_mb: int = 1024,
    cpus: int = 1,
    cmdline: str | None = None,
    snapshot: bool = True,
) -> list[str]:
    """The QEMU argv used by :func:`boot_check`: TCG only, no NIC, disk in snapshot mode unless ``snapshot=False``."""
    return [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-machine",
        "pc",
        "-m",
        str(memory_mb),
        "-smp",
        str(cpus),
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-nic",
        "none",
        "-no-reboot",
        "-chardev",
        f"file,id=ser0,path={_qemu_opt(console_log)}",
        "-serial",
        "chardev:ser0",
        "-object",
        "rng-random,id=rng0,filename=/dev/urandom",
        "-device",
        "virtio-rng-pci,rng=rng0",
        "-kernel",
        str(image.kernel),
        "-initrd",
        str(image.initrd),
        "-append",
        cmdline if cmdline is not None else kernel_cmdline(),
        "-drive",
        f"file={_qemu_opt(image.disk)},format=raw,if=virtio" + (",snapshot=on" if snapshot else ""),
    ]


def boot_check(
    image: DiskImage,
    *,
    timeout: float = 300,
    memory_mb: int = 1024,
    cpus: int = 1,
    console_log: Path | None = None,
    poweroff_grace: float = 30,
    extra_cmdline: Sequence[str] = (),
    root_args: Sequence[str] = ("root=/dev/vda", "rw"),
    snapshot: bool = True,
) -> BootResult:
    """Boot ``image`` once under QEMU/TCG and return what the boot probe reported.

    The serial console goes to ``console_log`` (default: ``<disk>-console.log`` next to the disk),
    QEMU's own output to ``<console_log>.qemu``. Raises :class:`BootCheckError` (with the last 40
    console lines) if no report arrives within ``timeout`` seconds, QEMU exits first, or the report
    is malformed. QEMU runs in its own process group and is always killed on the way out.
    ``root_args`` replace the default ``root=/dev/vda rw`` (e.g. for a custom initramfs);
    ``snapshot=False`` lets the guest write to the disk image.
    """
    for p in (image.disk, image.kernel, image.initrd):
        if not Path(p).is_file():
            raise BootCheckError(f"{p}: boot input missing")
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        raise BootCheckError("qemu-system-x86_64 not found on PATH")
    console = Path(console_log) if console_log is not None else image.disk.with_name(f"{image.disk.stem}-console.log")
    probe_wait = max(20, int(timeout * 0.6))
    cmd = qemu_command(
        image,
        console,
        memory_mb=memory_mb,
        cpus=cpus,
        cmdline=kernel_cmdline(probe_wait=probe_wait, extra=extra_cmdline, root_args=root_args),
        snapshot=snapshot,
    )
    from nodeforge.vm.qemu import run_to_report  # one QEMU run-and-wait loop for every boot

    result, _ = run_to_report(
        cmd, console, timeout=timeout, poweroff_grace=poweroff_grace, label=f"boot of {image.disk}"
    )
    report, seconds, powered_off = result.report, result.seconds, result.powered_off

    return BootResult(
        system_state=report["state"],
        failed_units=report["failed"],
        unit_states=report["units"],
        root_mount=report["root"],
        seconds=round(seconds, 1),
        console_log=console,
        powered_off=powered_off,
        report=report,
    )
