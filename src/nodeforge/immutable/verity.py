"""dm-verity: hash-tree creation and verification.

* :func:`format_hash_tree` and :func:`verify` wrap ``veritysetup format`` / ``veritysetup verify``
  on plain files (no loop devices, no device-mapper: both run in user space).
* :func:`root_hash_of` recomputes the root hash in Python from data at any byte offset of a file, so a
  slot *inside* a disk image can be checked without a loop device (``veritysetup`` has a hash offset
  but no data offset). Only the layout ``veritysetup format`` uses by default is supported: format 1,
  4096-byte data and hash blocks, sha256, salt prepended.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from nodeforge.immutable.errors import ToolError, VerityError
from nodeforge.immutable.tools import run, which

BLOCK_SIZE = 4096
HASH_ALGORITHM = "sha256"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class VerityParams:
    """What ``veritysetup format`` reported; everything needed to open or check the device later."""

    root_hash: str
    salt: str
    data_blocks: int
    data_block_size: int = BLOCK_SIZE
    hash_block_size: int = BLOCK_SIZE
    hash_algorithm: str = HASH_ALGORITHM
    hash_type: int = 1
    hash_bytes: int = 0
    """Size of the hash device/area (superblock + tree)."""
    uuid: str = ""
    format_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VerityParams:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def check_root_hash(value: str, *, subject: Path | str) -> str:
    """Normalise a root hash (64 hex digits) or raise :class:`VerityError` naming ``subject``."""
    text = value.strip().lower()
    if not _HEX64.match(text):
        raise VerityError(f"{subject}: {value!r} is not a sha256 root hash (64 hex digits)")
    return text


def _field(output: str, name: str, *, subject: Path) -> str:
    match = re.search(rf"^{re.escape(name)}:\s*(\S+)", output, re.MULTILINE)
    if not match:
        raise ToolError(f"{subject}: veritysetup format printed no {name!r}:\n{output}")
    return match.group(1)


def format_hash_tree(data: Path, hash_file: Path, *, salt: str | None = None, uuid: str | None = None) -> VerityParams:
    """Write the dm-verity hash tree of ``data`` to ``hash_file``; return the parameters (root hash, salt...).

    ``salt`` (hex) and ``uuid`` (of the hash superblock) are random unless given: pass both for a reproducible tree.
    """
    data = Path(data)
    if data.stat().st_size % BLOCK_SIZE:
        raise VerityError(f"{data}: size {data.stat().st_size} is not a multiple of {BLOCK_SIZE} bytes")
    argv = ["veritysetup", "format", f"--data-block-size={BLOCK_SIZE}", f"--hash-block-size={BLOCK_SIZE}"]
    argv += [f"--hash={HASH_ALGORITHM}"]
    if salt is not None:
        argv.append(f"--salt={salt}")
    if uuid is not None:
        argv.append(f"--uuid={uuid}")
    started = time.monotonic()
    proc = run([*argv, str(data), str(hash_file)], subject=data, what="veritysetup format")
    seconds = time.monotonic() - started
    out = proc.stdout
    return VerityParams(
        root_hash=_field(out, "Root hash", subject=data),
        salt=_field(out, "Salt", subject=data),
        data_blocks=int(_field(out, "Data blocks", subject=data)),
        data_block_size=int(_field(out, "Data block size", subject=data)),
        hash_block_size=int(_field(out, "Hash block size", subject=data)),
        hash_algorithm=_field(out, "Hash algorithm", subject=data),
        hash_type=int(_field(out, "Hash type", subject=data)),
        hash_bytes=Path(hash_file).stat().st_size,
        uuid=_field(out, "UUID", subject=data),
        format_seconds=round(seconds, 3),
    )


def verify(data: Path, hash_file: Path, root_hash: str, *, hash_offset: int = 0) -> float:
    """``veritysetup verify``: raise :class:`VerityError` naming ``data`` unless it matches ``root_hash``.

    Returns the seconds it took. ``hash_offset`` is where the hash area starts in ``hash_file``
    (the same file as ``data`` when the tree is appended to the data).
    """
    data, hash_file = Path(data), Path(hash_file)
    for path in (data, hash_file):
        if not path.is_file():
            raise VerityError(f"{path}: not found (nothing to verify)")
    root_hash = check_root_hash(root_hash, subject=data)
    argv = ["veritysetup", "verify", str(data), str(hash_file), root_hash]
    if hash_offset:
        argv.insert(2, f"--hash-offset={hash_offset}")
    which("veritysetup")  # a missing tool is a ToolError, not a verification failure
    started = time.monotonic()
    try:
        run(argv, subject=data, what="veritysetup verify (dm-verity root hash check)")
    except ToolError as exc:
        raise VerityError(f"{data}: does not match root hash {root_hash}: {exc}") from exc
    return time.monotonic() - started


def root_hash_of(
    fh: BinaryIO, *, offset: int, data_blocks: int, salt: str, block_size: int = BLOCK_SIZE, subject: Path | str = ""
) -> str:
    """Recompute the dm-verity (format 1, sha256) root hash of ``data_blocks`` blocks at ``offset`` of ``fh``."""
    salt_bytes = bytes.fromhex(salt)
    per_block = block_size // hashlib.sha256().digest_size
    fh.seek(offset)
    level: list[bytes] = []
    for index in range(data_blocks):
        block = fh.read(block_size)
        if len(block) != block_size:
            raise VerityError(f"{subject}: data ends at block {index} of {data_blocks} (truncated slot?)")
        level.append(hashlib.sha256(salt_bytes + block).digest())
    # One level of hash blocks per pass until a single hash remains (a 1-block device has no tree levels).
    while len(level) > 1:
        level = [
            hashlib.sha256(salt_bytes + b"".join(level[i : i + per_block]).ljust(block_size, b"\0")).digest()
            for i in range(0, len(level), per_block)
        ]
    return level[0].hex() if level else ""
