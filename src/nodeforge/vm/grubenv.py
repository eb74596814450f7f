"""GRUB's environment block (``grubenv``), read and written by us, and found inside a FAT filesystem image.

The format (GRUB 2 ``grub-core/lib/envblk.c``, what ``grub-editenv``, ``load_env`` and ``save_env`` use): exactly
1024 bytes; the first line is ``# GRUB Environment Block``; then ``name=value`` lines; the rest of the block is
padded with ``#``. In a value, a backslash or a newline is written preceded by a backslash. GRUB's ``save_env``
rewrites the file's own sectors in place (it refuses to change the file's size or allocation), which is what
lets the boot loader record a boot attempt, and what lets this module update the block inside a disk image
without mounting anything: :func:`locate_fat_file` finds the file's bytes in the FAT filesystem of the ESP.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import BinaryIO

from nodeforge.immutable.errors import RecordError

ENV_SIZE = 1024
HEADER = b"# GRUB Environment Block\n"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def parse(block: bytes, *, subject: str = "grubenv") -> dict[str, str]:
    """The variables of a 1024-byte environment block; :class:`RecordError` naming ``subject`` if it is not one."""
    if len(block) != ENV_SIZE:
        raise RecordError(f"{subject}: environment block is {len(block)} bytes, not {ENV_SIZE}")
    if not block.startswith(HEADER):
        raise RecordError(f"{subject}: not a GRUB environment block (no {HEADER.decode().strip()!r} header)")
    values: dict[str, str] = {}
    text = block[len(HEADER) :].decode("utf-8", errors="replace")
    pos = 0
    while pos < len(text):
        if text[pos] == "#":  # comment or padding: to the end of the line
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end + 1
            continue
        if text[pos] == "\n":
            pos += 1
            continue
        eq = text.find("=", pos)
        nl = text.find("\n", pos)
        if eq < 0 or (0 <= nl < eq):
            raise RecordError(f"{subject}: malformed line {text[pos : nl if nl >= 0 else None]!r}")
        name = text[pos:eq]
        value: list[str] = []
        pos = eq + 1
        while pos < len(text) and text[pos] != "\n":
            if text[pos] == "\\" and pos + 1 < len(text):
                pos += 1
            value.append(text[pos])
            pos += 1
        if pos >= len(text):
            raise RecordError(f"{subject}: variable {name} is not terminated by a newline")
        pos += 1
        values[name] = "".join(value)
    return values


def render(values: dict[str, str], *, subject: str = "grubenv") -> bytes:
    """A 1024-byte environment block holding ``values`` (in order); :class:`RecordError` if they do not fit."""
    body = bytearray(HEADER)
    for name, value in values.items():
        if not _NAME.match(name):
            raise RecordError(f"{subject}: {name!r} is not a valid GRUB variable name")
        escaped = str(value).replace("\\", "\\\\").replace("\n", "\\\n")
        body += f"{name}={escaped}\n".encode()
    if len(body) > ENV_SIZE:
        raise RecordError(f"{subject}: variables need {len(body)} bytes, the environment block holds {ENV_SIZE}")
    return bytes(body) + b"#" * (ENV_SIZE - len(body))


def empty() -> bytes:
    """An environment block without variables (what ``grub-editenv FILE create`` writes)."""
    return render({})


def _fat_params(boot: bytes, subject: str) -> dict[str, int]:
    (bps, spc, reserved, nfats, root_entries, total16, _media, fat16) = struct.unpack_from("<HBHBHHBH", boot, 11)
    total = total16 or struct.unpack_from("<I", boot, 32)[0]
    if bps not in (512, 1024, 2048, 4096) or spc == 0 or nfats == 0 or boot[510:512] != b"\x55\xaa":
        raise RecordError(f"{subject}: no FAT boot sector")
    if fat16 == 0:
        raise RecordError(f"{subject}: FAT32 is not supported here (the ESP is made FAT16)")
    root_start = (reserved + nfats * fat16) * bps
    data_start = root_start + ((root_entries * 32 + bps - 1) // bps) * bps
    clusters = (total * bps - data_start) // (spc * bps)
    return {
        "bps": bps,
        "cluster": spc * bps,
        "fat": reserved * bps,
        "root": root_start,
        "root_bytes": root_entries * 32,
        "data": data_start,
        "bits": 12 if clusters < 4085 else 16,
    }


def _chain(fh: BinaryIO, base: int, p: dict[str, int], first: int, subject: str) -> list[int]:
    chain = [first]
    while True:
        cur = chain[-1]
        if p["bits"] == 16:
            fh.seek(base + p["fat"] + cur * 2)
            nxt = struct.unpack("<H", fh.read(2))[0]
            end = nxt >= 0xFFF8
        else:
            fh.seek(base + p["fat"] + cur * 3 // 2)
            pair = struct.unpack("<H", fh.read(2))[0]
            nxt = pair >> 4 if cur & 1 else pair & 0xFFF
            end = nxt >= 0xFF8
        if end:
            return chain
        if nxt < 2 or len(chain) > 65536:
            raise RecordError(f"{subject}: broken FAT cluster chain at cluster {cur}")
        chain.append(nxt)


def _short_name(part: str) -> bytes:
    stem, _, ext = part.upper().partition(".")
    return stem.ljust(8).encode()[:8] + ext.ljust(3).encode()[:3]


def locate_fat_file(image: Path, fs_offset: int, path: str) -> tuple[int, int]:
    """``(byte offset in image, size)`` of the file ``path`` (8.3 names) in the FAT12/16 filesystem at ``fs_offset``.

    The file must be contiguous (one run of clusters): it is then written in place, as GRUB's ``save_env`` does.
    """
    subject = f"{image} (FAT at {fs_offset})"
    with Path(image).open("rb") as fh:
        fh.seek(fs_offset)
        p = _fat_params(fh.read(512), subject)
        region = (fs_offset + p["root"], p["root_bytes"])  # the root directory; subdirectories are cluster runs
        runs = [region]
        parts = [x for x in path.strip("/").split("/") if x]
        for index, part in enumerate(parts):
            want = _short_name(part)
            found = None
            for start, size in runs:
                fh.seek(start)
                data = fh.read(size)
                for off in range(0, len(data) - 31, 32):
                    entry = data[off : off + 32]
                    if entry[0] == 0:
                        break
                    if entry[0] == 0xE5 or entry[11] == 0x0F:  # deleted, long-name entry
                        continue
                    if entry[:11] == want:
                        found = entry
                        break
                if found:
                    break
            if found is None:
                raise RecordError(f"{subject}: /{'/'.join(parts[: index + 1])} not found")
            first, size = struct.unpack_from("<H", found, 26)[0], struct.unpack_from("<I", found, 28)[0]
            is_dir = bool(found[11] & 0x10)
            if index < len(parts) - 1:
                if not is_dir:
                    raise RecordError(f"{subject}: /{'/'.join(parts[: index + 1])} is not a directory")
                chain = _chain(fh, fs_offset, p, first, subject)
                runs = [(fs_offset + p["data"] + (c - 2) * p["cluster"], p["cluster"]) for c in chain]
                continue
            if is_dir or first < 2:
                raise RecordError(f"{subject}: /{'/'.join(parts)} is not a regular file with data")
            chain = _chain(fh, fs_offset, p, first, subject)
            if chain != list(range(first, first + len(chain))):
                where = "/" + "/".join(parts)
                raise RecordError(f"{subject}: {where} is fragmented (clusters {chain}); cannot write it in place")
            return fs_offset + p["data"] + (first - 2) * p["cluster"], size
    raise RecordError(f"{subject}: empty path")
