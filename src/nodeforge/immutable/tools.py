"""Find and run the external tools the sealed-image pipeline needs, with errors that name the file."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from nodeforge.immutable.errors import ToolError

#: Debian package providing each tool (for "install ..." hints).
PACKAGES = {
    "mkfs.erofs": "erofs-utils",
    "mksquashfs": "squashfs-tools",
    "veritysetup": "cryptsetup-bin",
    "sfdisk": "fdisk",
    "mkfs.ext4": "e2fsprogs",
    "busybox": "busybox-static",
    "ldd": "libc-bin",
    "tar": "tar",
    "openssl": "openssl",
}
_SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")


def which(name: str) -> str:
    """Absolute path of ``name`` (PATH first, then the sbin directories); :class:`ToolError` if absent."""
    found = shutil.which(name)
    if found:
        return found
    for directory in _SBIN:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ToolError(f"{name} not found (install the Debian package {PACKAGES.get(name, name)})")


def run(
    argv: Sequence[str],
    *,
    subject: Path | str,
    what: str,
    tail: int = 15,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (argv[0] resolved with :func:`which`); raise :class:`ToolError` naming ``subject`` on failure."""
    cmd = [which(argv[0]), *argv[1:]]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        out = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-tail:])
        raise ToolError(f"{subject}: {what} failed ({argv[0]} exit {proc.returncode}):\n{out}")
    return proc
