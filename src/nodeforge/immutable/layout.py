"""Prepare an extracted rootfs for a read-only, dm-verity-protected root (the seal-time changes).

What changes in the extracted copy (never in the tar):

* container leftovers removed and VM mount points created (:func:`nodeforge.vm.disk.prepare_vm_root`);
* package-manager *tools* removed: apt (binaries, /usr/lib/apt, /etc/apt, its timers, /var/lib/apt,
  /var/cache/apt). dpkg and its database (/var/lib/dpkg) stay: the component manifest and audits
  read them with ``dpkg-query``, and on a read-only /usr dpkg cannot install anything anyway;
* run-time-useless content removed: /usr/share/doc (except the copyright files), man and info pages,
  translations, /boot (the kernel is booted from the slot, not from the root), logs and caches;
* /var moved to ``/usr/share/nodeforge/var-skel`` (the initramfs seeds the state partition from it on
  first boot) and left as an empty mount point; /etc stays as the lower layer of a tmpfs overlay;
* /etc/fstab rewritten (only /tmp as tmpfs; the initramfs mounts /, /var, /etc, /opt/cni);
* a systemd-networkd file for the instance's interfaces (DHCP): the bootstrap agent reads the TOML user data from
  IMDS at every boot and renders /etc (a tmpfs overlay) from it;
* the A/B tools (:func:`install_update_tools`): ``/usr/bin/nodeforge image update|status|mark-boot|apply-settings``
  (:mod:`nodeforge.immutable.node` and the modules it imports), ``nodeforge-mark-boot.service`` and
  ``nodeforge-update.service``;
* the boot kit: the local-settings unit (settings file on the state partition -> bootstrap agent,
  inert unless ``nodeforge.settings=local``) and the boot probe (inert unless ``nodeforge.bootprobe=1``).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nodeforge.immutable.initramfs import CNI_OVERLAY_DIR, ETC_OVERLAY_DIR, VAR_SKEL, VERITY_NAME
from nodeforge.vm import disk as diskimage

LOCAL_SETTINGS_UNIT = "nodeforge-local-settings.service"
LOCAL_SETTINGS_SCRIPT = "/usr/libexec/nodeforge/local-settings"
LOCAL_SETTINGS_FILE = "/var/lib/nodeforge/user-data.toml"
LOCAL_METADATA_FILE = "/var/lib/nodeforge/instance-metadata.json"
LOCAL_SETTINGS_REPORT = "/run/nodeforge/local-settings.json"
LOCAL_SETTINGS_FLAG = "nodeforge.settings=local"
NETWORK_FILE = "/usr/lib/systemd/network/80-nodeforge-ec2.network"
# The sealed node configures its own primary interface (Bottlerocket does, without cloud-init): the bootstrap agent
# reaches IMDS over it at every boot to render /etc from the user data. A vendor default in /usr/lib: a file of the
# same name in /etc (e.g. cloud-init's rendering) overrides it.
NETWORK_TEXT = """\
# Installed by nodeforge.immutable.layout: DHCP on the instance's network interfaces (EC2 and QEMU user networking).
[Match]
Name=en* eth*
Type=ether

[Network]
DHCP=yes

[DHCPv4]
UseHostname=no
"""

#: Removed from the sealed root (globs relative to /), with the reason recorded in seal.json.
STRIP: tuple[tuple[str, str], ...] = (
    ("usr/bin/apt*", "apt: package manager tools"),
    ("usr/lib/apt", "apt: package manager tools"),
    ("usr/lib/x86_64-linux-gnu/libapt-private.so*", "apt: package manager tools"),
    ("etc/apt", "apt: configuration"),
    ("var/lib/apt", "apt: package lists"),
    ("var/cache/apt", "apt: package cache"),
    ("usr/lib/systemd/system/apt-daily*", "apt: timers"),
    ("lib/systemd/system/apt-daily*", "apt: timers"),
    ("etc/systemd/system/timers.target.wants/apt-daily*", "apt: timers"),
    ("etc/cron.daily/apt-compat", "apt: cron job"),
    ("usr/share/man", "documentation"),
    ("usr/share/info", "documentation"),
    ("usr/share/locale/*/", "translations"),
    ("boot/*", "kernel and Debian initrd (booted from the slot instead)"),
    ("vmlinuz*", "kernel symlinks"),
    ("initrd.img*", "initrd symlinks"),
    ("var/log/*.log", "build-time logs"),
    ("var/log/apt", "build-time logs"),
    ("var/cache/ldconfig/*", "cache"),
    ("var/cache/man", "cache"),
    ("tmp/*", "build-time temporary files"),
    ("var/tmp/*", "build-time temporary files"),
)

FSTAB = f"""\
# nodeforge sealed root. The initramfs mounts, before systemd starts:
#   /         /dev/mapper/{VERITY_NAME} (erofs on dm-verity, read-only)
#   /var      PARTLABEL=NF-STATE (ext4 state partition, seeded from {VAR_SKEL} on first boot)
#   /etc      overlay: lower = the sealed /etc, upper = tmpfs ({ETC_OVERLAY_DIR}), rendered at boot
#   /opt/cni  overlay: upper on the state partition ({CNI_OVERLAY_DIR})
tmpfs\t/tmp\ttmpfs\tmode=1777,nosuid,nodev\t0\t0
tmpfs\t/dev/shm\ttmpfs\tdefaults,nosuid,nodev,noexec\t0\t0
"""

LOCAL_SETTINGS_UNIT_TEXT = f"""\
# Installed by nodeforge.immutable. Renders /etc from a settings file on the state partition instead of
# EC2 user data (no metadata service: QEMU boot checks, on-prem). Inert unless {LOCAL_SETTINGS_FLAG}.
[Unit]
Description=nodeforge: render /etc from {LOCAL_SETTINGS_FILE} (local settings, no IMDS)
ConditionKernelCommandLine={LOCAL_SETTINGS_FLAG}
ConditionPathExists={LOCAL_SETTINGS_FILE}
After=local-fs.target
Before=containerd.service kubelet.service nodeforge-bootstrap.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart={LOCAL_SETTINGS_SCRIPT}

[Install]
WantedBy=multi-user.target
"""

# python3 (stdlib only): the bootstrap agent reads instance facts from IMDS; serve them from a JSON
# file on 127.0.0.1 for the agent's run, then stop.
LOCAL_SETTINGS_SCRIPT_TEXT = f'''#!/usr/bin/python3
"""nodeforge local settings: run the bootstrap agent on {LOCAL_SETTINGS_FILE} with a loopback metadata service."""
import json
import secrets
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

METADATA = {{
    "instance-id": "i-0123456789abcdef0",
    "instance-type": "m5.large",
    "placement/availability-zone": "us-west-2a",
    "placement/region": "us-west-2",
    "local-ipv4": "10.0.0.10",
    "local-hostname": "ip-10-0-0-10.us-west-2.compute.internal",
    "mac": "02:00:00:00:00:01",
    "services/domain": "amazonaws.com",
}}


def main():
    meta = dict(METADATA)
    extra = Path("{LOCAL_METADATA_FILE}")
    if extra.exists():
        meta.update(json.loads(extra.read_text()))
    token = secrets.token_hex(16)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status, body=b""):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self):
            self._send(200, token.encode()) if self.path == "/latest/api/token" else self._send(404)

        def do_GET(self):
            if self.headers.get("X-aws-ec2-metadata-token") != token:
                return self._send(401)
            key = self.path.removeprefix("/latest/meta-data/")
            return self._send(200, meta[key].encode()) if key in meta else self._send(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = "http://127.0.0.1:%d" % server.server_address[1]
    argv = ["/usr/bin/nodeforge-bootstrap", "--user-data", "{LOCAL_SETTINGS_FILE}", "--no-start",
            "--imds-endpoint", endpoint, "--imds-retries", "2", "--json"]
    proc = subprocess.run(argv, capture_output=True, text=True)
    server.shutdown()
    report = {{"rc": proc.returncode, "stderr": proc.stderr[-2000:]}}
    try:
        report["agent"] = json.loads(proc.stdout)
    except ValueError:
        report["stdout"] = proc.stdout[-2000:]
    out = Path("{LOCAL_SETTINGS_REPORT}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report))
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
'''

# What a node needs from the sealed root itself (the probe checks them on the verity device, not through overlays).
SEALED_NODE_FILES = (
    "/usr/bin/kubelet",
    "/usr/bin/containerd",
    "/usr/sbin/runc",
    "/usr/bin/aws-iam-authenticator",
    "/etc/eks/image-credential-provider/ecr-credential-provider",
    "/usr/bin/nodeforge-bootstrap",
    "/usr/lib/nodeforge/nodeforge/bootstrap/__main__.py",
    "/etc/containerd/config.toml",
    "/etc/kubernetes/kubelet/config.json",
    "/etc/systemd/system/kubelet.service",
    "/etc/nodeforge/image-manifest.json",
)
_SEALED_FILES_SH = " ".join(SEALED_NODE_FILES)

# Extra facts for the boot probe's report (POSIX sh, prints one JSON object on one line).
PROBE_EXTRA_TEXT = rf"""#!/bin/sh
# nodeforge sealed-root probe facts -- installed by nodeforge.immutable.layout.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
js() {{ printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"; }}
mnt() {{ findmnt -no "$2" "$1" 2>/dev/null | head -n 1 | tr -s ' '; }}
writable() {{
    if touch "$1/.nodeforge-probe" 2>/dev/null; then rm -f "$1/.nodeforge-probe"; echo yes; else echo no; fi
}}
dns() {{
    [ -f "$1" ] || {{ echo absent; return; }}
    python3 -c 'import json,sys; print(",".join(json.load(open(sys.argv[1])).get("clusterDNS") or []) or "none")' \
        "$1" 2>/dev/null || echo unreadable
}}
dm_names=
for d in /sys/block/dm-*/dm; do [ -f "$d/name" ] && dm_names="$dm_names $(cat "$d/name")"; done
lower=/run/nodeforge/probe-sealed-root
mkdir -p "$lower"
if mount -o ro /dev/mapper/{VERITY_NAME} "$lower" 2>/dev/null; then
    sealed_dns=$(dns "$lower/etc/kubernetes/kubelet/config.json")
    sealed_kubeconfig=$([ -e "$lower/var/lib/kubelet/kubeconfig" ] && echo present || echo absent)
    sealed_missing=$(for f in {_SEALED_FILES_SH}; do [ -s "$lower$f" ] || printf '%s ' "$f"; done)
    umount "$lower"
else
    sealed_dns=unmountable
    sealed_kubeconfig=unknown
    sealed_missing=unmountable
fi
settings_rc=$(python3 -c 'import json; print(json.load(open("{LOCAL_SETTINGS_REPORT}"))["rc"])' 2>/dev/null)
printf '{{"root_source":%s,"root_fstype":%s,"root_options":%s' "$(js "$(mnt / SOURCE)")" "$(js "$(mnt / FSTYPE)")" \
    "$(js "$(mnt / OPTIONS)")"
printf ',"dm_names":%s,"dm_table":%s,"dm_status":%s' "$(js "$dm_names")" \
    "$(js "$(dmsetup table {VERITY_NAME} 2>&1)")" "$(js "$(dmsetup status {VERITY_NAME} 2>&1)")"
printf ',"etc_fstype":%s,"etc_options":%s' "$(js "$(mnt /etc FSTYPE)")" "$(js "$(mnt /etc OPTIONS)")"
printf ',"var_source":%s,"var_fstype":%s' "$(js "$(mnt /var SOURCE)")" "$(js "$(mnt /var FSTYPE)")"
printf ',"opt_cni_fstype":%s' "$(js "$(mnt /opt/cni FSTYPE)")"
printf ',"var_writable":%s,"etc_writable":%s' "$(js "$(writable /var)")" "$(js "$(writable /etc)")"
printf ',"usr_writable":%s,"root_writable":%s' "$(js "$(writable /usr)")" "$(js "$(writable /)")"
printf ',"seeded":%s,"boot_env":%s' "$(js "$(cat /var/.nodeforge-seeded 2>/dev/null)")" \
    "$(js "$(tr '\n' ' ' </run/nodeforge/boot.env 2>/dev/null)")"
printf ',"local_settings":%s,"local_settings_rc":%s' "$(js "$(systemctl is-active {LOCAL_SETTINGS_UNIT})")" \
    "$(js "$settings_rc")"
printf ',"kubelet_config_dns":%s,"sealed_kubelet_config_dns":%s' \
    "$(js "$(dns /etc/kubernetes/kubelet/config.json)")" "$(js "$sealed_dns")"
printf ',"kubelet_config_in_upper":%s' \
    "$(js "$([ -e {ETC_OVERLAY_DIR}/upper/kubernetes/kubelet/config.json ] && echo yes || echo no)")"
printf ',"sealed_missing":%s' "$(js "$sealed_missing")"
printf ',"kubeconfig":%s,"sealed_kubeconfig":%s}}\n' \
    "$(js "$([ -e /var/lib/kubelet/kubeconfig ] && echo present || echo absent)")" "$(js "$sealed_kubeconfig")"
"""


@dataclass
class LayoutReport:
    """What :func:`prepare_sealed_root` changed."""

    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            total += (Path(dirpath) / name).lstat().st_size
    return total


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _strip(root: Path, report: LayoutReport) -> None:
    for pattern, reason in STRIP:
        dir_only = pattern.endswith("/")
        for path in sorted(root.glob(pattern.rstrip("/"))):
            if dir_only and (path.is_symlink() or not path.is_dir()):
                continue
            if not (path.exists() or path.is_symlink()):
                continue
            report.removed_bytes += _size(path)
            report.removed.append(f"/{path.relative_to(root)} ({reason})")
            _remove(path)
    doc = root / "usr/share/doc"
    if doc.is_dir():
        count = 0
        for path in sorted(doc.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                continue
            if path.name == "copyright":
                continue
            report.removed_bytes += path.lstat().st_size
            path.unlink()
            count += 1
        for dirpath, _dirs, _files in sorted(os.walk(doc), reverse=True):
            with_files = any(Path(dirpath).iterdir())
            if not with_files and Path(dirpath) != doc:
                Path(dirpath).rmdir()
        report.removed.append(f"/usr/share/doc: {count} files (documentation; copyright files kept)")


def _move_var(root: Path, report: LayoutReport) -> None:
    var = root / "var"
    skel = root / VAR_SKEL.lstrip("/")
    skel.parent.mkdir(parents=True, exist_ok=True)
    if skel.exists():
        shutil.rmtree(skel)
    if var.is_dir() and not var.is_symlink():
        mode = stat.S_IMODE(var.stat().st_mode)
        var.rename(skel)
    else:
        mode = 0o755
        skel.mkdir()
    var.mkdir()
    var.chmod(mode)
    os.chown(var, 0, 0)
    report.notes.append(f"/var moved to {VAR_SKEL} (seeds the state partition); /var is an empty mount point")


def install_local_settings(root: Path) -> None:
    """Install (and enable) the local-settings unit and its script into ``root``."""
    diskimage.write_root_file(root / LOCAL_SETTINGS_SCRIPT.lstrip("/"), LOCAL_SETTINGS_SCRIPT_TEXT, 0o755)
    diskimage.write_root_file(root / "usr/lib/systemd/system" / LOCAL_SETTINGS_UNIT, LOCAL_SETTINGS_UNIT_TEXT)
    diskimage.enable_unit(root, f"/usr/lib/systemd/system/{LOCAL_SETTINGS_UNIT}")


#: The on-node A/B tools (:mod:`nodeforge.immutable.node`) and the modules they import, relative to the nodeforge
#: package: copied into the sealed root next to the bootstrap agent, so the node runs the host tools' own slot-state
#: code (one implementation). The unit tests import the node module from a copy of exactly this list.
NODE_SOURCES: tuple[str, ...] = tuple(
    [f"immutable/{m}.py" for m in ("__init__", "errors", "tools", "signing", "verity", "record", "reproducible",
                                   "cpio", "initramfs", "layout", "seal", "update", "node")]
    + [f"vm/{m}.py" for m in ("__init__", "disk", "ab_grub", "grubenv", "ab_disk", "bootdisk")]
)  # fmt: skip
NODE_PACKAGE_DIR = "/usr/lib/nodeforge"
NODE_COMMAND = "/usr/bin/nodeforge"
MARK_BOOT_UNIT = "nodeforge-mark-boot.service"
UPDATE_UNIT = "nodeforge-update.service"
NODE_COMMAND_TEXT = f"""\
#!/bin/sh
# Installed by nodeforge.immutable.layout: the A/B tools on the node (`nodeforge image update|status|mark-boot|
# apply-settings`), python3's standard library only.
PYTHONPATH={NODE_PACKAGE_DIR} exec /usr/bin/python3 -s -m nodeforge.immutable.node "$@"
"""
MARK_BOOT_UNIT_TEXT = f"""\
# Installed by nodeforge.immutable.layout. Marks a boot of a pending slot successful once containerd and the
# kubelet are healthy within nodeforge.health_timeout= seconds (default 300); otherwise leaves it unmarked and
# reboots, and GRUB falls back to the previous slot when the slot's tries are spent. A slot already marked
# successful is left alone (never a reboot). nodeforge.markboot=0 on the kernel command line turns it off.
[Unit]
Description=nodeforge: mark this boot successful when containerd and the kubelet are healthy (else reboot)
ConditionKernelCommandLine=nodeforge.slot
ConditionKernelCommandLine=!nodeforge.markboot=0
After=containerd.service kubelet.service nodeforge-bootstrap.service {LOCAL_SETTINGS_UNIT}

[Service]
Type=simple
StandardOutput=journal+console
StandardError=journal+console
ExecStart={NODE_COMMAND} image mark-boot

[Install]
WantedBy=multi-user.target
"""
UPDATE_UNIT_TEXT = f"""\
# Installed by nodeforge.immutable.layout. Bottlerocket's update settings in the instance's TOML user data
# (settings.updates.targets-base-url: where the sealed root's files are; settings.updates.version-lock: its root
# hash) update the inactive slot and reboot into it, unless the node runs that root already or it was rolled back.
[Unit]
Description=nodeforge: apply the sealed-root update settings.updates asks for
ConditionKernelCommandLine=nodeforge.slot
ConditionKernelCommandLine=!nodeforge.bootstrap=0
Wants=network-online.target
After=network-online.target nodeforge-bootstrap.service

[Service]
Type=simple
StandardOutput=journal+console
StandardError=journal+console
ExecStart={NODE_COMMAND} image apply-settings

[Install]
WantedBy=multi-user.target
"""


def install_update_tools(root: Path, package_dir: Path | None = None) -> list[str]:
    """Copy :data:`NODE_SOURCES` into ``root``'s agent directory; install ``nodeforge`` and the two units (enabled).

    ``package_dir``: the nodeforge package to copy from (default: this one). Returns the files written.
    """
    import nodeforge

    source = Path(package_dir) if package_dir is not None else Path(nodeforge.__file__).parent
    dest = root / NODE_PACKAGE_DIR.lstrip("/") / "nodeforge"
    written: list[str] = []
    if not (dest / "__init__.py").is_file():
        diskimage.write_root_file(dest / "__init__.py", (source / "__init__.py").read_text())
        written.append(f"{NODE_PACKAGE_DIR}/nodeforge/__init__.py")
    for name in NODE_SOURCES:
        diskimage.write_root_file(dest / name, (source / name).read_text())
        written.append(f"{NODE_PACKAGE_DIR}/nodeforge/{name}")
    diskimage.write_root_file(root / NODE_COMMAND.lstrip("/"), NODE_COMMAND_TEXT, 0o755)
    for unit, text in ((MARK_BOOT_UNIT, MARK_BOOT_UNIT_TEXT), (UPDATE_UNIT, UPDATE_UNIT_TEXT)):
        diskimage.write_root_file(root / "usr/lib/systemd/system" / unit, text)
        diskimage.enable_unit(root, f"/usr/lib/systemd/system/{unit}")
    return [*written, NODE_COMMAND, MARK_BOOT_UNIT, UPDATE_UNIT]


def prepare_sealed_root(
    root: Path, *, probe_units: Sequence[str] = ("containerd", "nodeforge-bootstrap"), strip: bool = True
) -> LayoutReport:
    """Apply the seal-time changes (module docstring) to the extracted root at ``root``."""
    report = LayoutReport()
    report.notes += diskimage.prepare_vm_root(root)
    if strip:
        _strip(root, report)
    for mount_point in ("opt/cni", "boot"):
        (root / mount_point).mkdir(parents=True, exist_ok=True)
    diskimage.write_root_file(root / "etc/fstab", FSTAB)
    diskimage.write_root_file(root / NETWORK_FILE.lstrip("/"), NETWORK_TEXT)
    install_local_settings(root)
    install_update_tools(root)
    report.notes.append(f"A/B tools: {NODE_COMMAND}, {MARK_BOOT_UNIT}, {UPDATE_UNIT} (nodeforge.immutable.node)")
    diskimage.install_boot_probe(root, probe_units, extra_script=PROBE_EXTRA_TEXT)
    _move_var(root, report)
    return report
