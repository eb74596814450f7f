"""Many facts of the node in one command each.

Every testinfra call is a command on the node: over SSH on a booted node under QEMU (TCG) one command, wrapped in
sudo, costs a second or more, and ``host.file(path).user`` / ``.group`` / ``.mode`` are a command each. Checks that
look at many paths, packages or kernel parameters ask for all of them at once here.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

_STAT = (
    'for p; do if [ -e "$p" ] || [ -L "$p" ]; then stat -c "%n|%F|%a|%U|%G" -- "$p"; '
    'else printf "%s|absent\\n" "$p"; fi; done'
)


@dataclass(frozen=True)
class PathStat:
    path: str
    kind: str  # stat's %F: "regular file", "directory", "symbolic link", ...; "absent"
    mode: int = 0
    user: str = ""
    group: str = ""

    @property
    def exists(self) -> bool:
        return self.kind != "absent"


def _script(script: str, args: list[str]) -> str:
    return f"sh -c {shlex.quote(script)} sh " + " ".join(shlex.quote(arg) for arg in args)


def stat_paths(host, paths: list[str]) -> dict[str, PathStat]:
    """Type, mode, owner and group of each path (not following a final symlink), in one command."""
    if not paths:
        return {}
    out = host.check_output(_script(_STAT, paths))
    stats: dict[str, PathStat] = {}
    for line in out.splitlines():
        fields = line.rsplit("|", 4) if not line.endswith("|absent") else [line[: -len("|absent")], "absent"]
        if fields[1] == "absent":
            stats[fields[0]] = PathStat(fields[0], "absent")
        else:
            name, kind, mode, user, group = fields
            stats[name] = PathStat(name, kind, int(mode, 8), user, group)
    missing = [p for p in paths if p not in stats]
    assert not missing, f"stat gave nothing for {missing}: {out!r}"
    return stats


def sysctl_values(host, keys: list[str]) -> dict[str, int | str | None]:
    """Running values of kernel parameters (None: this kernel has no such key), like ``host.sysctl``: an int where
    the value is one."""
    paths = {key: "/proc/sys/" + key.replace(".", "/") for key in keys}
    script = 'for p; do if [ -r "$p" ]; then printf "%s=" "$p"; tr "\\n\\t" "  " < "$p"; echo; fi; done'
    out = host.check_output(_script(script, list(paths.values())))
    read: dict[str, str] = {}
    for line in out.splitlines():
        path, _, value = line.partition("=")
        read[path] = " ".join(value.split())
    values: dict[str, int | str | None] = {}
    for key, path in paths.items():
        value = read.get(path)
        values[key] = None if value is None else (int(value) if value.lstrip("-").isdigit() else value)
    return values


def installed_packages(host, names: list[str]) -> list[str]:
    """Which of NAMES the package manager has installed (dpkg or rpm), in one command."""
    if host.exists("dpkg-query"):
        out = host.run("dpkg-query -W -f '${Package}|${Status}\\n' " + " ".join(map(shlex.quote, names))).stdout
        return [name for name, _, status in (line.partition("|") for line in out.splitlines())
                if status.split()[1:3] == ["ok", "installed"]]  # fmt: skip
    out = host.run("rpm -q --qf '%{NAME}\\n' " + " ".join(map(shlex.quote, names))).stdout
    return [line for line in out.splitlines() if line in names]


def commands_on_path(host, commands: list[str]) -> list[str]:
    """Which of COMMANDS resolve on the PATH (``command -v``), in one command."""
    out = host.run(_script('for c; do command -v "$c" >/dev/null 2>&1 && echo "$c"; done; true', commands)).stdout
    return [line for line in out.splitlines() if line in commands]
