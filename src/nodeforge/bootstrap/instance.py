"""nodeadm's ``spec.instance`` host settings, and the Outpost /etc/hosts entries:

- ``environment``: ``default`` becomes systemd's manager ``DefaultEnvironment=`` (system.conf.d), every other
  key a ``<name>.service.d/environment.conf`` drop-in with ``Environment=`` lines, keys sorted, values quoted
  and escaped as nodeadm does (``%`` doubled so systemd does not expand specifiers);
- ``network``: nameservers and search domains for systemd-resolved (``/run/systemd/resolved.conf.d``);
- a local Outpost cluster: the API server's name mapped in /etc/hosts to the addresses it resolves to at boot,
  so the node keeps reaching the control plane while the Outpost is disconnected from its Region.
"""

from __future__ import annotations

import ipaddress
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

from nodeforge.bootstrap.errors import BootstrapError, InvalidInputError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

SYSTEM_ENVIRONMENT_PATH = "/etc/systemd/system.conf.d/environment.conf"
SERVICE_DROPIN_DIR = "/etc/systemd/system"
RESOLVED_PATH = "/run/systemd/resolved.conf.d/40-eks.conf"
RESOLVED_BINARIES = ("/usr/lib/systemd/systemd-resolved", "/lib/systemd/systemd-resolved")
HOSTS_PATH = "/etc/hosts"
HEADER = "# Written by the nodeforge bootstrap agent from spec.instance.environment; re-run the agent to change it.\n"
_SERVICE = re.compile(r"^[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SIMPLE_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def service_dropin_path(service: str) -> str:
    return f"{SERVICE_DROPIN_DIR}/{service}.service.d/environment.conf"


def escape(value: str) -> str:
    """A value for ``"KEY=VALUE"`` in a unit file: Go-quoted (as nodeadm's strconv.Quote), ``%`` doubled."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out).replace("%", "%%")


def check_environment(environment: dict[str, dict[str, str]]) -> list[str]:
    """Problems with the scopes and variable names, each naming its field."""
    problems = []
    for scope, variables in environment.items():
        path = f"spec.instance.environment.{scope}"
        if scope != "default" and not _SERVICE.match(scope):
            problems.append(f"{path}: {scope!r} is not a systemd service name")
        for name in variables:
            if not _VARIABLE.match(name):
                problems.append(f"{path}.{name}: not a valid environment variable name")
    return problems


def _render(section: str, directive: str, variables: dict[str, str]) -> str:
    lines = [f'{directive}="{name}={escape(variables[name])}"' for name in sorted(variables)]
    return HEADER + f"[{section}]\n" + "".join(line + "\n" for line in lines)


def environment_files(environment: dict[str, dict[str, str]], root: Path) -> list[tuple[str, str | None]]:
    """(path, content) for every environment file; content None removes a file the agent wrote before."""
    problems = check_environment(environment)
    if problems:
        raise InvalidInputError("invalid spec.instance.environment; nothing was written", problems)
    files: list[tuple[str, str | None]] = []
    default = environment.get("default") or {}
    files.append((SYSTEM_ENVIRONMENT_PATH, _render("Manager", "DefaultEnvironment", default) if default else None))
    wanted = set()
    for scope in sorted(environment):
        if scope == "default" or not environment[scope]:
            continue
        path = service_dropin_path(scope)
        wanted.add(path)
        files.append((path, _render("Service", "Environment", environment[scope])))
    for path in _written_service_dropins(root):
        if path not in wanted:
            files.append((path, None))
    return [(path, content) for path, content in files if content is not None or _ours(root, path)]


def _ours(root: Path, path: str) -> bool:
    try:
        with (root / path.lstrip("/")).open("rb") as handle:
            return handle.read(len(HEADER)) == HEADER.encode()
    except OSError:
        return False


def _written_service_dropins(root: Path) -> list[str]:
    directory = root / SERVICE_DROPIN_DIR.lstrip("/")
    found = []
    for path in sorted(directory.glob("*.service.d/environment.conf")):
        node_path = "/" + str(path.relative_to(root))
        if _ours(root, node_path):
            found.append(node_path)
    return found


def resolved_config(nameservers: list[str], domains: list[str]) -> str | None:
    """systemd-resolved drop-in with the nameservers and search domains, or None when neither is set."""
    if not nameservers and not domains:
        return None
    dns = f"DNS={' '.join(nameservers)}" if nameservers else ""
    search = f"Domains={' '.join(domains)}" if domains else ""
    return f"[Resolve]\n{dns}\n{search}\n"


def lookup_host(host: str) -> list[str]:
    """The addresses ``host`` resolves to, in resolver order, without duplicates."""
    import socket  # only a local Outpost resolves names: kept off the agent's start-up path

    addresses: list[str] = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


def outpost_hosts(
    endpoint: str,
    current: str,
    resolve: Callable[[str], list[str]] = lookup_host,
    attempts: int = 6,
    delay: float = 0.2,
) -> str | None:
    """/etc/hosts with a line per address of the API server's host appended (those already there are kept, so
    re-runs add nothing), or None when nothing is missing or the endpoint is an IP address."""
    host = urlsplit(endpoint).hostname or ""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    last_error: Exception | None = None
    addresses: list[str] = []
    for attempt in range(attempts):
        try:
            addresses = resolve(host)
            break
        except OSError as exc:
            last_error = exc
            if attempt + 1 < attempts:
                time.sleep(delay)
    else:
        raise BootstrapError(f"local Outpost: cannot resolve the API server host {host!r}: {last_error}")
    present = set()
    for line in current.splitlines():
        fields = line.split("#", 1)[0].split()
        present.update((fields[0], name) for name in fields[1:])
    missing = [f"{address}\t{host}" for address in addresses if (address, host) not in present]
    if not missing:
        return None
    prefix = current if not current or current.endswith("\n") else current + "\n"
    return prefix + "".join(line + "\n" for line in missing)
