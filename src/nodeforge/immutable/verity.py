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
import struct
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


#: blocks read per call when hashing data: one read of 1 MiB instead of one per 4 KiB block
_READ_BLOCKS = 256


def block_hashes(fh: BinaryIO, data_blocks: int, block_size: int, salt: bytes, subject: Path | str) -> list[bytes]:
    """``sha256(salt + block)`` of the ``data_blocks`` blocks from ``fh``'s position on, in order (dm-verity's
    bottom level). Read ``_READ_BLOCKS`` blocks at a time into one buffer; each block hashed by a copy of a hasher
    already fed the salt, from a view of the buffer (no per-block read, bytes object or salt+block copy). A node runs
    this twice per update (verify_tree, then root_hash_of on the written slot); measured here on 200 MiB, natively:
    0.28 -> 0.245 s of CPU per pass (not measured under emulation)."""
    salted = hashlib.sha256(salt)
    hashes: list[bytes] = []
    view = memoryview(bytearray(block_size * _READ_BLOCKS))
    done = 0
    while done < data_blocks:
        want = min(data_blocks - done, _READ_BLOCKS) * block_size
        filled = 0
        while filled < want:
            got = fh.readinto(view[filled:want])
            if not got:
                raise VerityError(
                    f"{subject}: data ends at block {done + filled // block_size} of {data_blocks} (truncated slot?)"
                )
            filled += got
        for start in range(0, want, block_size):
            hasher = salted.copy()
            hasher.update(view[start : start + block_size])
            hashes.append(hasher.digest())
        done += want // block_size
    return hashes


def root_hash_of(
    fh: BinaryIO, *, offset: int, data_blocks: int, salt: str, block_size: int = BLOCK_SIZE, subject: Path | str = ""
) -> str:
    """Recompute the dm-verity (format 1, sha256) root hash of ``data_blocks`` blocks at ``offset`` of ``fh``."""
    salt_bytes = bytes.fromhex(salt)
    fh.seek(offset)
    _levels, root = tree_levels(block_hashes(fh, data_blocks, block_size, salt_bytes, subject), block_size, salt_bytes)
    return root.hex()


def tree_levels(hashes: list[bytes], hash_block_size: int, salt: bytes) -> tuple[list[bytes], bytes]:
    """The hash tree above the data blocks' ``hashes``: ``(levels, root)``, each level its hash blocks joined (each
    block the next level's hashes, zero-padded), bottom level first, and the root hash (``b""`` for no data).

    One level per pass until a single hash remains, as cryptsetup counts them: a 1-block device has no level (its
    root hash is its block's hash), 2 to 128 blocks one level, and so on."""
    per_block = hash_block_size // hashlib.sha256().digest_size
    levels: list[bytes] = []
    while len(hashes) > 1:
        blocks = [
            b"".join(hashes[i : i + per_block]).ljust(hash_block_size, b"\0") for i in range(0, len(hashes), per_block)
        ]
        levels.append(b"".join(blocks))
        hashes = [hashlib.sha256(salt + block).digest() for block in blocks]
    return levels, hashes[0] if hashes else b""


SUPERBLOCK_MAGIC = b"verity\0\0"


def read_superblock(hash_file: Path) -> tuple[int, int, int, str, bytes]:
    """``(data_blocks, data_block_size, hash_block_size, algorithm, salt)`` from a hash file's superblock.

    :class:`VerityError` naming the file when it has no veritysetup superblock (layout: cryptsetup's
    ``struct verity_sb``, little-endian) or one of another format.
    """
    with Path(hash_file).open("rb") as fh:
        raw = fh.read(512)
    if len(raw) < 512 or raw[:8] != SUPERBLOCK_MAGIC:
        raise VerityError(f"{hash_file}: no dm-verity superblock (not made by veritysetup format)")
    version, hash_type = struct.unpack_from("<II", raw, 8)
    algorithm = raw[32:64].split(b"\0", 1)[0].decode(errors="replace")
    data_bs, hash_bs, data_blocks, salt_size = struct.unpack_from("<IIQH", raw, 64)
    if version != 1 or hash_type != 1 or algorithm != HASH_ALGORITHM or salt_size > 256:
        raise VerityError(
            f"{hash_file}: unsupported dm-verity superblock (version {version}, hash type {hash_type}, "
            f"{algorithm}, salt {salt_size} bytes): only format 1 with sha256 is checked here"
        )
    return data_blocks, data_bs, hash_bs, algorithm, raw[88 : 88 + salt_size]


def verify_tree(data: Path, hash_file: Path, root_hash: str) -> float:
    """``veritysetup verify`` in Python: the whole hash tree of ``hash_file`` recomputed from ``data``.

    For a host without ``veritysetup`` (the sealed node itself): every level of the tree is rebuilt from the data
    blocks and compared with the file's bytes (cryptsetup's layout: the superblock, then the levels from the top
    down, each padded to whole hash blocks), and the top block's hash with ``root_hash``. Raises
    :class:`VerityError` naming ``data`` or ``hash_file``; returns the seconds it took.
    """
    data, hash_file = Path(data), Path(hash_file)
    for path in (data, hash_file):
        if not path.is_file():
            raise VerityError(f"{path}: not found (nothing to verify)")
    root_hash = check_root_hash(root_hash, subject=data)
    started = time.monotonic()
    data_blocks, data_bs, hash_bs, _algorithm, salt = read_superblock(hash_file)
    if data.stat().st_size < data_blocks * data_bs:
        raise VerityError(f"{data}: {data.stat().st_size} bytes, the hash tree covers {data_blocks * data_bs}")
    with data.open("rb") as fh:
        levels, root = tree_levels(block_hashes(fh, data_blocks, data_bs, salt, data), hash_bs, salt)
    actual = root.hex()
    if actual != root_hash:
        raise VerityError(f"{data}: does not match root hash {root_hash} (its data hashes to {actual})")
    tree = b"".join(reversed(levels))
    with hash_file.open("rb") as fh:
        fh.seek(hash_bs)  # the superblock takes the first hash block
        stored = fh.read(len(tree))
    if stored != tree:
        raise VerityError(f"{hash_file}: hash tree differs from the one computed from {data} (damaged hash file)")
    return time.monotonic() - started


def have_veritysetup() -> bool:
    try:
        which("veritysetup")
    except ToolError:
        return False
    return True


def verify_sealed(data: Path, hash_file: Path, root_hash: str) -> tuple[float, str]:
    """:func:`verify` with ``veritysetup`` where it is installed, else :func:`verify_tree`; ``(seconds, engine)``."""
    if have_veritysetup():
        return verify(data, hash_file, root_hash), "veritysetup"
    return verify_tree(data, hash_file, root_hash), "python"
