"""Thin wrappers over the docker CLI, and the one definition of how a systemd instance is run here."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

# Every capability Docker 20.10 knows except SYS_RESOURCE (this host lacks it, so --privileged fails) and
# SYS_TIME (an instance must never set the host's clock).
INSTANCE_CAPABILITIES = (
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYSLOG",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_TTY_CONFIG",
    "WAKE_ALARM",
)


class DockerError(RuntimeError):
    pass


def run(args: list[str], *, timeout: float = 600) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:3])} failed: {proc.stderr.strip()[-2000:]}")
    return proc.stdout.strip()


def image_exists(ref: str) -> bool:
    proc = subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False)
    return proc.returncode == 0


def instance_run_args() -> list[str]:
    """`docker run` options that give a container a working systemd and nested containerd on this host.

    Host networking: instances reach the artifact mirror on 127.0.0.1 and no other address.
    """
    args = ["--network", "host", "--cgroupns", "host"]
    for cap in INSTANCE_CAPABILITIES:
        args += ["--cap-add", cap]
    for opt in ("seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"):
        args += ["--security-opt", opt]
    args += ["-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "-v", "/var/lib/containerd"]
    args += ["--tmpfs", "/run", "--tmpfs", "/tmp"]  # noqa: S108 - mount points inside the instance
    return args


def start_instance(image: str, name: str) -> str:
    """Start a systemd instance of an image and wait until systemd has finished booting."""
    remove(name)
    run(["run", "-d", "--name", name, *instance_run_args(), image, "/lib/systemd/systemd"])
    deadline = time.monotonic() + 90
    state = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running"], capture_output=True, text=True, check=False
        )
        state = proc.stdout.strip()
        if state in ("running", "degraded"):
            return state
        time.sleep(0.5)
    raise DockerError(f"instance {name} did not finish booting (state: {state or 'unknown'})")


def start_static(image: str, name: str) -> None:
    """Start an instance of an image that does not boot it (no systemd, no network): the image as shipped."""
    remove(name)
    run(["run", "-d", "--name", name, "--network", "none", "--entrypoint", "/bin/sleep", image, "infinity"])


def remove(name: str) -> None:
    subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, check=False)


def image_labels(ref: str) -> dict[str, str]:
    out = run(["image", "inspect", "--format", "{{json .Config.Labels}}", ref])
    return json.loads(out) or {}


def image_size(ref: str) -> int:
    return int(run(["image", "inspect", "--format", "{{.Size}}", ref]))


def export_image(ref: str, out: Path) -> Path:
    """Write the image's root filesystem as a tar (atomically: temp name, then rename)."""
    container = run(["create", ref, "/bin/true"])
    tmp = out.with_name(f".{out.name}.partial")
    try:
        run(["export", "--output", str(tmp), container], timeout=900)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    return out
