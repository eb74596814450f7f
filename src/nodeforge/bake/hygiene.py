"""Image hygiene: scan a baked root filesystem (a tar) for what must never ship in a node image.

Rules (each finding names the rule, the path in the image and what was seen):

* ``ssh-host-key``       SSH host keys (each instance must make its own)
* ``authorized-keys``    any ``authorized_keys`` file
* ``machine-id``         a non-empty ``/etc/machine-id`` (every instance would share the id)
* ``cloud-init-state``   cloud-init's per-instance state
* ``shell-history``      shell and tool histories
* ``package-cache``      downloaded packages and package lists
* ``log-content``        log files with content under /var/log
* ``private-key``        PEM/OpenSSH private keys, anywhere
* ``aws-credentials``    AWS access key ids with a secret, ``aws_secret_access_key`` settings, ``.aws/credentials``
* ``world-writable``     world-writable files, or world-writable directories without the sticky bit, outside
  the temporary directories
* ``rhosts``             ``.rhosts``/``.shosts`` anywhere, ``/etc/hosts.equiv``, ``/etc/shosts.equiv``
* ``netrc``              ``.netrc`` anywhere (plain-text passwords)
* ``suid-sgid``          files with a SUID or SGID bit that are not on the hardening role's allow list
  (``roles/hardening/vars/suid_sgid.yml``, the one list the role applies too)
* ``extra-uid0``         accounts with uid 0 besides root in ``/etc/passwd``
* ``package-proxy``      a proxy left for the package manager or the system (apt's ``Acquire::*::Proxy``,
  dnf/yum ``proxy=``, ``*_proxy=`` in /etc/environment or profile.d): the build's package cache, unreachable
  from an instance (bakes may use one; apt is given it in its environment, never in a file)

The scan reads the tar once, member by member, without extracting it. Private keys inside files that a
distribution package installed, unchanged (their md5 matches the package's dpkg ``md5sums``), are the
distribution's own known-answer test vectors (libgnutls carries some for its self-tests), not secrets of the
bake: they are reported apart as ``vendor_keys``, not as findings.
"""

from __future__ import annotations

import hashlib
import re
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

__all__ = [
    "RULES",
    "Finding",
    "HygieneError",
    "ScanResult",
    "SuidSgidPolicy",
    "proxy_setting",
    "scan_members",
    "scan_rootfs_tar",
    "suid_sgid_allowlist",
    "suid_sgid_policy",
]

RULES: dict[str, str] = {
    "ssh-host-key": "SSH host keys",
    "authorized-keys": "authorized_keys files",
    "machine-id": "non-empty machine-id",
    "cloud-init-state": "cloud-init instance state",
    "shell-history": "shell and tool histories",
    "package-cache": "package caches and lists",
    "log-content": "log files with content",
    "private-key": "private keys",
    "aws-credentials": "AWS credentials",
    "world-writable": "world-writable files outside /tmp",
    "rhosts": ".rhosts, .shosts and hosts.equiv files",
    "netrc": ".netrc files",
    "suid-sgid": "SUID/SGID files off the hardening role's allow list",
    "extra-uid0": "uid 0 accounts besides root",
    "package-proxy": "package manager or system proxy settings",
}

HISTORY_NAMES = frozenset(
    {
        ".bash_history",
        ".zsh_history",
        ".sh_history",
        ".ash_history",
        ".history",
        ".python_history",
        ".lesshst",
        ".viminfo",
        ".mysql_history",
        ".psql_history",
        ".node_repl_history",
        ".wget-hsts",
    }
)
CLOUD_INIT_STATE = ("var/lib/cloud/instances/", "var/lib/cloud/instance", "var/lib/cloud/data/")
PACKAGE_CACHE_DIRS = (
    "var/cache/apt/archives/",
    "var/lib/apt/lists/",
    "var/cache/dnf/",
    "var/cache/yum/",
    "var/cache/zypp/",
)
PACKAGE_CACHE_IGNORED = frozenset({"lock", "partial"})
TEMP_DIRS = ("tmp/", "var/tmp/", "dev/shm/", "run/lock/")
RHOSTS_NAMES = frozenset({".rhosts", ".shosts"})
RHOSTS_SYSTEM = frozenset({"etc/hosts.equiv", "etc/shosts.equiv"})
# The hardening role's SUID/SGID lists, relative to the checkout.
SUID_SGID_LISTS = Path("roles/hardening/vars/suid_sgid.yml")
SUID_SGID_ALLOW_KEY = "hardening_suid_sgid_system_allowlist"
SUID_SGID_SKIP_KEY = "hardening_suid_sgid_skipped_dirs"
# Content checks read files up to this size (keys and credential files are small).
CONTENT_LIMIT = 4 * 1024 * 1024

# A key block, not just the marker string (libraries carry the markers as format constants): the marker, then
# PEM headers (Proc-Type: 4,ENCRYPTED ...) or a line of base64.
PRIVATE_KEY = re.compile(
    rb"-----BEGIN (?:RSA |DSA |EC |OPENSSH |ENCRYPTED |ED25519 )?PRIVATE KEY-----\r?\n"
    rb"(?:[A-Za-z-]+: [^\n]*\r?\n|[A-Za-z0-9+/=]{40,}\r?\n)"
)
ACCESS_KEY_ID = re.compile(rb"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z2-7]{16}(?![A-Z0-9])")
SECRET_SETTING = re.compile(rb"aws_secret_access_key\s*[=:]\s*['\"]?[A-Za-z0-9/+]{40}")

# Proxy settings, per kind of file (an explicit "no proxy", apt's DIRECT or dnf's _none_, is no finding).
# apt: `Acquire::http::Proxy "URL";`, a per-host `Acquire::http::Proxy::HOST "URL";`, or the nested form
# `Acquire { http { Proxy "URL"; }; };` (the key ends in Proxy, a quoted value follows).
APT_PROXY = re.compile(rb'(?im)^(?![ \t]*(?://|#))[ \t]*[^\n"]*?\bproxy(?:::[^\s"]+)?[ \t]+"(?!direct"|false")[^"\n]+"')
DNF_PROXY = re.compile(rb"(?im)^[ \t]*proxy[ \t]*=[ \t]*(?!_none_[ \t]*$)\S")
ENV_PROXY = re.compile(rb"(?im)^[ \t]*(?:export[ \t]+)?(?:https?|ftp|all)_proxy[ \t]*=[ \t]*['\"]?[^\s'\"]")


class HygieneError(Exception):
    """The image cannot be scanned (missing file, not a tar, no allow list)."""


@dataclass(frozen=True)
class SuidSgidPolicy:
    """The hardening role's SUID/SGID lists: files that may keep a bit, directories not looked into."""

    allowed: frozenset[str]
    skipped_dirs: tuple[str, ...] = ()

    def finding(self, path: str, member: tarfile.TarInfo) -> Finding | None:
        if not (member.isfile() or member.islnk()) or not member.mode & (stat.S_ISUID | stat.S_ISGID):
            return None
        absolute = "/" + path
        if absolute in self.allowed or absolute.startswith(tuple(d.rstrip("/") + "/" for d in self.skipped_dirs)):
            return None
        bits = "+".join(name for name, flag in (("SUID", stat.S_ISUID), ("SGID", stat.S_ISGID)) if member.mode & flag)
        return Finding("suid-sgid", absolute, f"{bits}, mode {stat.filemode(member.mode | stat.S_IFREG)}")


def suid_sgid_policy(path: Path | None = None) -> SuidSgidPolicy:
    """The hardening role's SUID/SGID allow list and skipped directories (one list for the role and the scan)."""
    import yaml  # lazy: only a scan needs it

    if path is None:
        from nodeforge.paths import repo_root

        try:
            path = repo_root() / SUID_SGID_LISTS
        except FileNotFoundError as exc:
            raise HygieneError(f"cannot find {SUID_SGID_LISTS} (the SUID/SGID allow list): {exc}") from exc
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise HygieneError(f"{path}: cannot read the SUID/SGID allow list ({exc})") from exc
    lists = {}
    for key in (SUID_SGID_ALLOW_KEY, SUID_SGID_SKIP_KEY):
        entries = data.get(key) if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, str) and e.startswith("/") for e in entries):
            raise HygieneError(f"{path}: {key} must be a list of absolute paths")
        lists[key] = entries
    return SuidSgidPolicy(frozenset(lists[SUID_SGID_ALLOW_KEY]), tuple(lists[SUID_SGID_SKIP_KEY]))


def suid_sgid_allowlist(path: Path | None = None) -> frozenset[str]:
    """Absolute paths that may keep a SUID/SGID bit: the hardening role's allow list."""
    return suid_sgid_policy(path).allowed


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _norm(name: str) -> str:
    """Member name without ./ or / prefix: 'etc/ssh/ssh_host_rsa_key'."""
    return str(PurePosixPath("/", name)).lstrip("/")


def _path_findings(path: str, member: tarfile.TarInfo) -> Iterator[Finding]:
    name = PurePosixPath(path).name
    if path.startswith("etc/ssh/") and name.startswith("ssh_host_") and "_key" in name:
        yield Finding("ssh-host-key", "/" + path, "SSH host key")
    if name in {"authorized_keys", "authorized_keys2"} and member.isfile():
        yield Finding("authorized-keys", "/" + path, f"{member.size} bytes")
    if path in {"etc/machine-id", "var/lib/dbus/machine-id"} and member.isfile() and member.size > 0:
        yield Finding("machine-id", "/" + path, f"{member.size} bytes (must be empty or absent)")
    if path.startswith(CLOUD_INIT_STATE) or path == "var/lib/cloud/instance":
        yield Finding("cloud-init-state", "/" + path, "cloud-init per-instance state")
    if name in HISTORY_NAMES and member.isfile():
        yield Finding("shell-history", "/" + path, f"{member.size} bytes")
    if member.isfile() and path.startswith(PACKAGE_CACHE_DIRS) and name not in PACKAGE_CACHE_IGNORED:
        yield Finding("package-cache", "/" + path, f"{member.size} bytes")
    if member.isfile() and path.startswith("var/log/") and member.size > 0:
        yield Finding("log-content", "/" + path, f"{member.size} bytes")
    if path.endswith(".aws/credentials") and member.isfile():
        yield Finding("aws-credentials", "/" + path, "AWS shared credentials file")
    if (name in RHOSTS_NAMES or path in RHOSTS_SYSTEM) and not member.isdir():
        yield Finding("rhosts", "/" + path, "host-based trust file (r-commands, host-based SSH)")
    if name == ".netrc" and not member.isdir():
        yield Finding("netrc", "/" + path, "plain-text login file")
    yield from _mode_findings(path, member)


def _passwd_findings(path: str, data: bytes) -> Iterator[Finding]:
    if path != "etc/passwd":
        return
    for line in data.decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].strip() == "0" and fields[0] != "root":
            yield Finding("extra-uid0", "/etc/passwd", f"account {fields[0]} has uid 0")


def _mode_findings(path: str, member: tarfile.TarInfo) -> Iterator[Finding]:
    if member.issym() or member.islnk() or not (member.isfile() or member.isdir()):
        return
    if not member.mode & stat.S_IWOTH:
        return
    if path.startswith(TEMP_DIRS) or f"{path}/" in TEMP_DIRS:
        return
    if member.isdir() and member.mode & stat.S_ISVTX:
        return  # sticky world-writable directories (like /tmp) are the accepted shape
    kind = "directory" if member.isdir() else "file"
    yield Finding("world-writable", "/" + path, f"{kind} mode {stat.filemode(member.mode | _type_bits(member))}")


def _type_bits(member: tarfile.TarInfo) -> int:
    return stat.S_IFDIR if member.isdir() else stat.S_IFREG


def proxy_setting(path: str, data: bytes) -> str | None:
    """What proxy setting the file at PATH (relative to the root, e.g. 'etc/apt/apt.conf') holds, or None."""
    path = path.lstrip("/")
    if path == "etc/apt/apt.conf" or (path.startswith("etc/apt/apt.conf.d/") and "/" not in path[19:]):
        pattern, kind = APT_PROXY, "apt"
    elif path in {"etc/dnf/dnf.conf", "etc/yum.conf"} or (path.startswith("etc/yum.repos.d/") and path[-5:] == ".repo"):
        pattern, kind = DNF_PROXY, "dnf/yum"
    elif path == "etc/environment" or (path.startswith("etc/profile.d/") and path.endswith(".sh")):
        pattern, kind = ENV_PROXY, "environment"
    else:
        return None
    match = pattern.search(data)
    if match is None:
        return None
    return f"{kind} proxy setting: {match.group().decode(errors='replace').strip()[:120]}"


def _content_findings(path: str, data: bytes) -> Iterator[Finding]:
    proxy = proxy_setting(path, data)
    if proxy:
        yield Finding("package-proxy", "/" + path, proxy)
    if PRIVATE_KEY.search(data):
        yield Finding("private-key", "/" + path, "PEM/OpenSSH private key block")
    if SECRET_SETTING.search(data):
        yield Finding("aws-credentials", "/" + path, "aws_secret_access_key with a value")
    match = ACCESS_KEY_ID.search(data)
    if match and not match.group().endswith(b"EXAMPLE"):
        yield Finding("aws-credentials", "/" + path, f"AWS access key id {match.group()[:8].decode()}...")


@dataclass
class ScanResult:
    findings: list[Finding]
    vendor_keys: list[str]  # packaged files (dpkg md5sums match) that embed private keys: test vectors
    members: int

    def to_dict(self) -> dict[str, object]:
        return {
            "clean": not self.findings,
            "members": self.members,
            "findings": [finding.to_dict() for finding in self.findings],
            "vendor_keys": self.vendor_keys,
        }


def _parse_md5sums(data: bytes) -> Iterator[tuple[str, str]]:
    for line in data.decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        if digest and name:
            yield name.strip().lstrip("/"), digest.strip()


def scan_members(tar: tarfile.TarFile, suid_sgid: SuidSgidPolicy | None = None) -> ScanResult:
    """Scan an open tar of a root filesystem (SUID/SGID files against SUID_SGID, default the role's lists)."""
    policy = suid_sgid_policy() if suid_sgid is None else suid_sgid
    findings: list[Finding] = []
    packaged: dict[str, str] = {}  # path -> md5 recorded by dpkg
    key_md5: dict[str, str] = {}  # path of a private-key finding -> md5 of its content
    members = 0
    for member in tar:
        path = _norm(member.name)
        if not path:
            continue
        members += 1
        findings.extend(_path_findings(path, member))
        suid = policy.finding(path, member)
        if suid:
            findings.append(suid)
        if not (member.isfile() and 0 < member.size <= CONTENT_LIMIT):
            continue
        handle = tar.extractfile(member)
        if handle is None:
            continue
        data = handle.read()
        if path.startswith("var/lib/dpkg/info/") and path.endswith(".md5sums"):
            packaged.update(_parse_md5sums(data))
        findings.extend(_passwd_findings(path, data))
        for finding in _content_findings(path, data):
            findings.append(finding)
            if finding.rule == "private-key":
                key_md5[finding.path] = _md5(data)
    vendor = {path for path, digest in key_md5.items() if packaged.get(path.lstrip("/")) == digest}
    kept = [f for f in findings if not (f.rule == "private-key" and f.path in vendor)]
    return ScanResult(findings=_dedupe(kept), vendor_keys=sorted(vendor), members=members)


def _md5(data: bytes) -> str:
    """md5 as dpkg records it (not for security). Python < 3.9 has no usedforsecurity: the scan also runs on build
    instances (AL2's python3.8, see main())."""
    try:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()  # type: ignore[call-arg]
    except TypeError:
        return hashlib.md5(data).hexdigest()  # noqa: S324 - matching dpkg's md5sums, not security


def _dedupe(findings: Iterable[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for finding in findings:
        key = (finding.rule, finding.path)
        if key not in seen:
            seen.add(key)
            unique.append(finding)
    return unique


def scan_rootfs_tar(path: Path, suid_sgid: SuidSgidPolicy | None = None) -> ScanResult:
    """Scan the root filesystem tar at PATH; raises HygieneError naming the file when it cannot be read."""
    if not path.is_file():
        raise HygieneError(f"{path}: no such file (expected a root filesystem tar, e.g. build/local/TAG/rootfs.tar)")
    policy = suid_sgid_policy() if suid_sgid is None else suid_sgid
    try:
        with tarfile.open(path, mode="r|*") as tar:
            return scan_members(tar, policy)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise HygieneError(f"{path}: not a readable tar ({exc})") from exc


def main(argv: list[str] | None = None) -> int:
    """`python3 hygiene.py -` scans a root filesystem tar streamed on stdin (a build instance's own root, piped from
    `tar --one-file-system -C / -cf - .`), `python3 hygiene.py ROOTFS.tar` a file. Prints the result as JSON; exit
    status 1 when there are findings, 2 when the input cannot be read. Standard library only, Python 3.7+: it runs
    on the build instance's own interpreter."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: hygiene.py ROOTFS.tar | -\n")
        return 2
    notes: list[str] = []
    try:
        policy = suid_sgid_policy()
    except (ImportError, HygieneError) as exc:
        # On a build instance this file runs alone (no PyYAML, no checkout): the SUID/SGID rule needs the role's
        # list, so it is not applied here, and the output says so (the local bake and verify-build apply it).
        policy = SuidSgidPolicy(frozenset(), skipped_dirs=("/",))
        notes.append(f"suid-sgid rule not applied: {exc}")
    try:
        if args[0] == "-":
            with tarfile.open(fileobj=sys.stdin.buffer, mode="r|*") as tar:
                result = scan_members(tar, policy)
        else:
            result = scan_rootfs_tar(Path(args[0]), policy)
    except (HygieneError, tarfile.TarError, EOFError, OSError) as exc:
        sys.stderr.write(f"hygiene: {exc}\n")
        return 2
    for note in notes:
        sys.stderr.write(f"hygiene: warning: {note}\n")
    sys.stdout.write(json.dumps({**result.to_dict(), "notes": notes}, indent=2) + "\n")
    return 1 if result.findings else 0


if __name__ == "__main__":
    raise SystemExit(main())
