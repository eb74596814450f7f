"""Reproducible seals: everything that would make two seals of the same tree differ is derived from the content.

Sources of difference in a seal, and what fixes each (the values go into ``seal.json`` under ``inputs``):

* **timestamps**: ``mkfs.erofs`` (erofs-utils 1.5) reads ``SOURCE_DATE_EPOCH``: the superblock's build time
  is set to it and every file newer than it is clamped to it; older files keep their own mtime (Python's
  ``.pyc`` checks keep working). The epoch is the caller's, else the ``SOURCE_DATE_EPOCH`` environment
  variable, else the newest mtime of the tar's files and symlinks -- so the files the seal itself writes
  (units, fstab) get a time taken from the input, not from the clock. **Directories** all get the epoch:
  extraction does not restore their mtimes reliably (one listed before its content, or not listed at all,
  gets the time its content was written, so the result depends on the tar's member order), and nothing
  on a read-only root has a use for them.
* **the filesystem UUID** (``mkfs.erofs -U``): a name-based UUID of the *tree digest* (below).
* **directory order**: mkfs.erofs sorts directory entries by name (erofs lookups are binary searches) and
  builds the tree in that order, so the order the tar was written or extracted in does not matter.
* **the dm-verity salt** (random by default): ``sha256("nodeforge-verity-salt-v1" NUL sha256(root.img))``,
  i.e. derived from every byte of the sealed filesystem image.
* **the dm-verity superblock UUID** (random by default, in the hash device): a name-based UUID of the image digest.

The tree digest is a sha256 over the prepared tree, walked in sorted byte order: per entry its relative path,
type, permission bits, uid, gid, the mtime the image will carry (clamped to the epoch), symlink target or
device numbers, extended attributes, hard-link identity and, for regular files, the sha256 of the content.
Two trees with the same digest give the same image; it is the seal's *input* identity, independent of how
the tar was packed.
"""

# Paths are handled as bytes (os.* functions): a root may hold names that are not valid UTF-8.
# ruff: noqa: PTH115, PTH118, PTH123

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

NAMESPACE = uuid.UUID("6e6f6465-666f-7267-6500-7365616c0001")  # "nodeforge" "seal" v1
SALT_DOMAIN = b"nodeforge-verity-salt-v1\0"
EPOCH_ENV = "SOURCE_DATE_EPOCH"
_CHUNK = 1 << 20


def _walk(root: Path) -> Iterator[tuple[bytes, os.stat_result]]:
    """(relative path as bytes, lstat) of every entry under ``root``, sorted by path bytes, root excluded."""
    stack = [b""]
    base = os.fsencode(root)
    while stack:
        rel = stack.pop()
        with os.scandir(os.path.join(base, rel) if rel else base) as entries:
            names = sorted(e.name for e in entries)
        children = [os.path.join(rel, name) if rel else name for name in names]
        subdirs = []
        for child in children:
            st = os.lstat(os.path.join(base, child))
            yield child, st
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(child)
        stack.extend(reversed(subdirs))


def newest_mtime(root: Path) -> int:
    """The newest mtime (whole seconds) of the files and symlinks below ``root`` (directories excluded); 0 if none."""
    return max((int(st.st_mtime) for _, st in _walk(root) if not stat.S_ISDIR(st.st_mode)), default=0)


def set_directory_mtimes(root: Path, epoch: int) -> int:
    """Give ``root`` and every directory below it the mtime (and atime) ``epoch``; returns how many."""
    base = os.fsencode(root)
    dirs = [base] + [os.path.join(base, rel) for rel, st in _walk(root) if stat.S_ISDIR(st.st_mode)]
    for path in dirs:
        os.utime(path, (epoch, epoch), follow_symlinks=False)
    return len(dirs)


def resolve_epoch(root: Path, explicit: int | None) -> tuple[int, str]:
    """(epoch, where it came from): ``explicit``, else $SOURCE_DATE_EPOCH, else the newest mtime in ``root``."""
    if explicit is not None:
        if explicit < 0:
            raise ValueError(f"source_date_epoch must be >= 0, got {explicit}")
        return int(explicit), "argument"
    env = os.environ.get(EPOCH_ENV, "").strip()
    if env:
        if not env.isdigit():
            raise ValueError(f"{EPOCH_ENV}={env!r} is not a whole number of seconds since 1970")
        return int(env), f"${EPOCH_ENV}"
    return newest_mtime(root), "newest file mtime in the rootfs tar"


def _file_sha256(path: bytes) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _xattrs(path: bytes) -> list[tuple[str, str]]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return []
    return sorted((name, os.getxattr(path, name, follow_symlinks=False).hex()) for name in names)


def tree_digest(root: Path, epoch: int) -> str:
    """sha256 of the tree at ``root`` as the image will hold it (see the module docstring)."""
    digest = hashlib.sha256(b"nodeforge-tree-v1\n")
    base = os.fsencode(root)
    st_root = os.lstat(base)
    digest.update(f"./ {stat.S_IMODE(st_root.st_mode):o} {st_root.st_uid} {st_root.st_gid}\n".encode())
    first_path: dict[tuple[int, int], bytes] = {}
    for rel, st in _walk(root):
        full = os.path.join(base, rel)
        mode = st.st_mode
        head = f"{stat.S_IFMT(mode):o} {stat.S_IMODE(mode):o} {st.st_uid} {st.st_gid} {min(int(st.st_mtime), epoch)}"
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in first_path:
                detail = b"hardlink " + first_path[key]
            else:
                first_path.setdefault(key, rel)
                detail = f"{st.st_size} {_file_sha256(full)}".encode()
        elif stat.S_ISLNK(mode):
            detail = b"-> " + os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            detail = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}".encode()
        else:
            detail = b""
        xattrs = ",".join(f"{k}={v}" for k, v in _xattrs(full)).encode()
        digest.update(rel + b"\0" + head.encode() + b"\0" + detail + b"\0" + xattrs + b"\n")
    return digest.hexdigest()


def fs_uuid(tree_sha256: str) -> str:
    """The erofs filesystem UUID for a tree digest."""
    return str(uuid.uuid5(NAMESPACE, f"erofs:{tree_sha256}"))


def verity_salt(image_sha256: str) -> str:
    """The dm-verity salt (64 hex digits) for the sealed image's sha256."""
    return hashlib.sha256(SALT_DOMAIN + bytes.fromhex(image_sha256)).hexdigest()


def verity_uuid(image_sha256: str) -> str:
    """The dm-verity superblock UUID for the sealed image's sha256."""
    return str(uuid.uuid5(NAMESPACE, f"verity:{image_sha256}"))


def package_version(package: str) -> str:
    """``PACKAGE VERSION`` of an installed Debian package (``''`` if unknown): recorded, as tools change images."""
    try:
        proc = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return f"{package} {proc.stdout.strip()}" if proc.returncode == 0 and proc.stdout.strip() else ""
