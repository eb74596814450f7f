"""``spec.instance.localStorage`` (and bootstrap.sh's ``--local-disks``): the EC2 instance-store NVMe disks as
one RAID0 or RAID10 array, or each disk mounted on its own, as amazon-eks-ami's ``setup-local-disks`` does:

- disks: the ``/dev/disk/by-id/*NVMe_Instance_Storage_*`` links (none: nothing to do);
- RAID0 / RAID10 (at least 4 disks): ``mdadm --create`` of /dev/md/kubernetes unless /.aws/mdadm.conf already
  records an assembled array, XFS unless formatted, a mount unit for ``<mountPath>/0``, then the state directories
  (/var/lib/kubelet, /var/lib/containerd, /var/lib/soci-snapshotter-grpc, /var/log/pods, less
  ``disabledMounts``) copied onto the array and bind-mounted back (their services stopped meanwhile);
- Mount: each disk formatted XFS unless it has a file system and mounted on ``<mountPath>/<n>``.

The outcome is setup-local-disks', with fewer systemd round trips: every mount unit is written before the one
``systemctl enable`` that reloads systemd (setup-local-disks reloads once per unit; each reload re-runs all
generators), and one ``systemctl is-active`` asks for every unit. Every command goes through a runner, so the
sequence is tested without touching disks; tests/e2e/test_bake.py proves it on a booted node.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from nodeforge.bootstrap.errors import EXIT_SERVICES, BootstrapError
from nodeforge.bootstrap.record import dataclass, field

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

DEFAULT_MOUNT_DIR = "/mnt/k8s-disks"
MD_NAME = "kubernetes"
MD_DEVICE = "/dev/md/" + MD_NAME
MD_CONFIG = "/.aws/mdadm.conf"
BY_ID = "/dev/disk/by-id"
DISK_MARKER = "NVMe_Instance_Storage_"
UNIT_DIR = "/etc/systemd/system"
SETTLE_SECONDS = 60
# state directory -> the unit using it (stopped while its directory moves onto the array)
BIND_MOUNTS = (
    ("/var/lib/kubelet", "kubelet.service", None),
    ("/var/lib/containerd", "containerd.service", "Containerd"),
    ("/var/lib/soci-snapshotter-grpc", "soci-snapshotter.service", "SOCI"),
    ("/var/log/pods", "kubelet.service", "PodLogs"),
)


class CommandError(BootstrapError):
    """A disk command (mdadm, mkfs.xfs, blkid, systemctl ...) failed or is not installed."""

    exit_code = EXIT_SERVICES


@dataclass
class Result:
    code: int
    stdout: str = ""


def run_command(argv: Sequence[str]) -> Result:
    """The real runner: the command's exit code and output (stderr goes to the agent's stderr)."""
    import subprocess  # only when disks are set up: kept off the agent's start-up path

    try:
        completed = subprocess.run(list(argv), stdout=subprocess.PIPE, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CommandError(f"local disks: {' '.join(argv)} failed: {exc}") from exc
    return Result(completed.returncode, completed.stdout)


def systemd_escape_path(path: str) -> str:
    """``systemd-escape --path``: the unit name stem for a path."""
    trimmed = "/".join(part for part in path.split("/") if part)
    if not trimmed:
        return "-"
    out = []
    for index, char in enumerate(trimmed):
        if char == "/":
            out.append("-")
        elif (char.isascii() and (char.isalnum() or char in ":_")) or (char == "." and index > 0):
            out.append(char)
        else:
            out.extend(f"\\x{byte:02x}" for byte in char.encode())
    return "".join(out)


def mount_unit_name(path: str) -> str:
    return systemd_escape_path(path) + ".mount"


@dataclass
class LocalDisks:
    strategy: str  # RAID0, RAID10 or Mount
    mount_dir: str = DEFAULT_MOUNT_DIR
    disabled_mounts: list[str] = field(default_factory=list)
    root: Path = Path("/")
    runner: Callable[[Sequence[str]], Result] = run_command  # an annotation only (not evaluated): 3.7-safe
    log: list[str] = field(default_factory=list)

    def _path(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def _run(self, *argv: str, check: bool = True) -> Result:
        started = time.monotonic()
        result = self.runner(argv)
        # each command with its duration: at boot these are the seconds before containerd and the kubelet start
        self.log.append(f"{' '.join(argv)} ({time.monotonic() - started:.1f}s)")
        if check and result.code != 0:
            raise CommandError(f"local disks ({self.strategy}): {' '.join(argv)} exited {result.code}")
        return result

    def disks(self) -> list[str]:
        """The instance-store NVMe devices (node paths), sorted, each once."""
        directory = self._path(BY_ID)
        if not directory.is_dir():
            return []
        devices = set()
        for link in directory.iterdir():
            if DISK_MARKER in link.name:
                target = Path(os.path.realpath(link))
                try:
                    devices.add("/" + str(target.relative_to(self.root.resolve())))
                except ValueError:
                    devices.add(str(target))
        return sorted(devices)

    def _write_unit(self, name: str, description: str, what: str, where: str, kind: str, options: str) -> None:
        text = (
            "# Written by the nodeforge bootstrap agent from spec.instance.localStorage.\n"
            f"[Unit]\nDescription={description}\n"
            f"[Mount]\nWhat={what}\nWhere={where}\nType={kind}\nOptions={options}\n"
            "[Install]\nWantedBy=multi-user.target\n"
        )
        path = self._path(f"{UNIT_DIR}/{name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def _unformatted(self, device: str) -> bool:
        return not self._run("lsblk", device, "-o", "fstype", "--noheadings").stdout.strip()

    def apply(self) -> list[str]:
        """Set the disks up; returns the commands run. Raises CommandError (or BootstrapError) on failure.

        At boot the agent runs before udev is guaranteed to have named every disk (nodeadm's run phase comes
        after cloud-final, much later): the udev queue is drained first, so no instance-store disk is missed.
        """
        if self._run("udevadm", "settle", f"--timeout={SETTLE_SECONDS}", check=False).code != 0:
            self.log.append(f"# udevadm settle did not finish within {SETTLE_SECONDS}s: using the disks named so far")
        disks = self.disks()
        if not disks:
            self.log.append("# no NVMe instance-store disks: nothing to set up")
            return self.log
        if self.strategy == "RAID10" and len(disks) < 4:
            raise BootstrapError(
                f"spec.instance.localStorage: RAID10 needs at least 4 disks, this instance has {len(disks)}"
            )
        if self.strategy == "Mount":
            self._mount_each(disks)
        else:
            self._raid(0 if self.strategy == "RAID0" else 10, disks)
        return self.log

    def _raid(self, level: int, disks: list[str]) -> None:
        config = self._path(MD_CONFIG)
        config.parent.mkdir(parents=True, exist_ok=True)
        scan = self._run("mdadm", "--detail", "--scan", check=False)
        assembled = scan.code == 0 and "ARRAY" in scan.stdout
        if not (config.is_file() and config.stat().st_size > 0 and assembled):
            self._run(
                "mdadm", "--create", "--force", "--verbose", MD_DEVICE, f"--level={level}", f"--name={MD_NAME}",
                f"--raid-devices={len(disks)}", *disks,
            )  # fmt: skip
            # /dev/md/kubernetes is udev's link: mdadm waits 5 s for it, then goes on without it (a booted TCG
            # node, RAID10's resync starting, got "timeout waiting for /dev/md/kubernetes"; lsblk then failed).
            # Settle before the scan: without the link, --detail --scan names the array /dev/md127, and a slow first
            # boot wrote that into the config (seen under load on a TCG node)
            self._run("udevadm", "settle", f"--timeout={SETTLE_SECONDS}", check=False)
            config.write_text(self._run("mdadm", "--detail", "--scan").stdout, encoding="utf-8")
        device = self._md_device()
        if self._unformatted(device):
            # the log stripe unit must stay under 256k: 8 blocks (32k); instance stores come trimmed (-K)
            self._run("mkfs.xfs", "-K", "-l", "su=8b", device)
        array_dir = f"{self.mount_dir.rstrip('/')}/0"
        self._path(array_dir).mkdir(parents=True, exist_ok=True)
        uuid = self._run("blkid", "-s", "UUID", "-o", "value", device).stdout.strip()
        if not uuid:
            raise CommandError(f"local disks: blkid found no file system UUID on {device}")
        to_link, running = self._state_dirs_to_link()
        unit = mount_unit_name(array_dir)
        self._write_unit(unit, f"Mount EC2 Instance Store NVMe disk RAID{level}", f"UUID={uuid}", array_dir, "xfs",
                         "defaults,noatime")  # fmt: skip
        # the bind units are written before the one reload `enable` does: each reload re-runs every systemd
        # generator (seconds on a small instance, tens under emulation), so the bind mounts are enabled without one
        bind_units = []
        for path in to_link:
            bind_units.append(mount_unit_name(path))
            target = f"{array_dir}/{path.rsplit('/', 1)[-1]}"
            self._write_unit(
                bind_units[-1], f"Mount {path} on EC2 Instance Store NVMe RAID{level}", target, path, "none", "bind"
            )
        self._run("systemctl", "enable", unit, "--now")
        if running:
            self._run("systemctl", "stop", *running)
        for path in to_link:  # the state directories move onto the array while their services are stopped
            self._path(path).mkdir(parents=True, exist_ok=True)
            self._run("cp", "-a", f"{path}/", f"{array_dir}/{path.rsplit('/', 1)[-1]}/")
        if bind_units:
            self._run("systemctl", "enable", "--no-reload", "--now", *bind_units)
        if running:
            self._run("systemctl", "start", *running)

    def _state_dirs_to_link(self) -> tuple[list[str], list[str]]:
        """The state directories not yet bind-mounted from the array, and the running units that use them (one
        ``systemctl is-active`` for all: it prints one state a line, in order)."""
        wanted = [(path, unit) for path, unit, name in BIND_MOUNTS if name is None or name not in self.disabled_mounts]
        names = [mount_unit_name(path) for path, _ in wanted]
        services = list(dict.fromkeys(unit for _, unit in wanted))
        states = self._run("systemctl", "is-active", *names, *services, check=False).stdout.split()
        if len(states) != len(names) + len(services):
            raise CommandError(
                f"local disks: systemctl is-active gave {len(states)} states for {len(names + services)}"
            )
        active = {unit for unit, state in zip(names + services, states) if state == "active"}
        to_link = [path for (path, _), name in zip(wanted, names) if name not in active]
        using = {unit for path, unit in wanted if path in to_link}
        return to_link, [unit for unit in services if unit in using and unit in active]

    def _md_device(self) -> str:
        """/dev/md/kubernetes, or the name it got after a reboot with a homehost suffix (kubernetes_0 ...)."""
        directory = self._path("/dev/md")
        if directory.is_dir():
            names = sorted(p.name for p in directory.iterdir() if p.name == MD_NAME or p.name.startswith(MD_NAME + "_"))
            if names:
                return f"/dev/md/{names[-1]}"
        return MD_DEVICE

    def _mount_each(self, disks: list[str]) -> None:
        index = 1
        units = []
        for device in disks:
            if self._unformatted(device):
                self._run("mkfs.xfs", "-l", "su=8b", device)
            if self._run("lsblk", device, "-o", "MOUNTPOINT", "--noheadings").stdout.strip():
                self.log.append(f"# {device} is already mounted")
                continue
            where = f"{self.mount_dir.rstrip('/')}/{index}"
            self._path(where).mkdir(parents=True, exist_ok=True)
            units.append(mount_unit_name(where))
            self._write_unit(
                units[-1], f"Mount EC2 Instance Store NVMe disk {index}", device, where, "xfs", "defaults,noatime"
            )
            index += 1
        if units:  # one reload for all (see _raid)
            self._run("systemctl", "enable", "--now", *units)
