"""containerd's base OCI runtime spec (/etc/containerd/base-runtime-spec.json), as nodeadm writes it: containerd's
default Linux spec for runc, with the EKS open-files limit, and the user's ``containerd.baseRuntimeSpec`` merged
over it key by key (lists are replaced). The CRI runtime's ``base_runtime_spec`` points at this file."""

from __future__ import annotations

import json

from nodeforge.bootstrap.merge import deep_merge

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PATH = "/etc/containerd/base-runtime-spec.json"

# containerd's default capability set for containers (pkg/oci populateDefaultUnixSpec), sorted.
_CAPABILITIES = [
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
]


def _mount(destination: str, kind: str, source: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "options": list(options), "source": source, "type": kind}


def default_spec() -> dict[str, Any]:
    """A fresh copy of the default spec (the user's spec is merged over it)."""
    return {
        "linux": {
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/sys/firmware",
            ],
            "namespaces": [{"type": kind} for kind in ("ipc", "mount", "network", "pid", "uts")],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
            "resources": {"devices": [{"access": "rwm", "allow": False}]},
        },
        "mounts": [
            _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
            _mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
            _mount(
                "/dev/pts", "devpts", "devpts", "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"
            ),
            _mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
            _mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
        ],
        "ociVersion": "1.1.0",
        "process": {
            "capabilities": {kind: list(_CAPABILITIES) for kind in ("bounding", "effective", "permitted")},
            "cwd": "/",
            "noNewPrivileges": True,
            # EKS raises containers' open-files limit (soft 65536, hard 1048576), as the EKS AMIs do.
            "rlimits": [{"hard": 1048576, "soft": 65536, "type": "RLIMIT_NOFILE"}],
            "user": {"gid": 0, "uid": 0},
        },
        "root": {"path": "rootfs"},
    }


def render(user_spec: dict[str, Any]) -> str:
    spec = deep_merge(default_spec(), user_spec) if user_spec else default_spec()
    return json.dumps(spec, indent=4, sort_keys=True) + "\n"
