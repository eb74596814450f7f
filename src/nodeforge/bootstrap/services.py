"""systemd: reload units, enable containerd and kubelet, (re)start what the new files affect."""

from __future__ import annotations

from nodeforge.bootstrap.errors import ServiceError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

SYSTEMCTL = "systemctl"


def _run(args: Sequence[str]) -> None:
    import subprocess  # only when systemd is driven (not with --no-start, --dry-run or --root)

    try:
        completed = subprocess.run([SYSTEMCTL, *args], capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"systemctl {' '.join(args)} failed: {exc}") from exc
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip()
        raise ServiceError(f"systemctl {' '.join(args)} exited {completed.returncode}", [detail] if detail else [])


def start(*, containerd_changed: bool, kubelet_changed: bool) -> list[str]:
    """Reload, enable both services; restart those whose files changed, start the others. Returns the commands."""
    commands: list[list[str]] = [["daemon-reload"], ["enable", "containerd.service", "kubelet.service"]]
    commands.append(["restart" if containerd_changed else "start", "containerd.service"])
    commands.append(["restart" if kubelet_changed or containerd_changed else "start", "kubelet.service"])
    for command in commands:
        _run(command)
    return [" ".join([SYSTEMCTL, *command]) for command in commands]
