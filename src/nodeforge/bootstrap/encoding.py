"""Undo the wrappings user data arrives in: gzip, base64, CRLF line endings."""

from __future__ import annotations

import binascii
import re

_GZIP_MAGIC = b"\x1f\x8b"
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/=\s]+$")
_BASE64_STRICT = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def b64decode(data: str | bytes) -> bytes:
    """``base64.b64decode(data, validate=True)`` without the base64 module's import: binascii.Error (a ValueError)
    for anything but the base64 alphabet with its padding."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else data
    if not _BASE64_STRICT.fullmatch(raw):
        raise binascii.Error("Non-base64 digit found")
    return binascii.a2b_base64(raw)


def gunzip_if_gzip(data: bytes) -> bytes:
    """Decompress ``data`` when it starts with the gzip magic number."""
    if data[:2] != _GZIP_MAGIC:
        return data
    import gzip  # gzipped user data only
    import zlib

    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"gzip data is corrupt: {exc}") from exc


def b64decode_if_base64(data: bytes) -> bytes:
    """Decode ``data`` when all of it is base64 that decodes to gzip or UTF-8 text; else return it unchanged."""
    stripped = b"".join(data.split())
    if len(stripped) < 4 or len(stripped) % 4 or not _BASE64_TEXT.match(data):
        return data
    try:
        decoded = b64decode(stripped)
    except (binascii.Error, ValueError):
        return data
    if decoded[:2] == _GZIP_MAGIC:
        return decoded
    try:
        decoded.decode("utf-8")
    except UnicodeDecodeError:
        return data
    return decoded


def unwrap(data: bytes) -> bytes:
    """gzip and base64 in either order, as nodeadm and cloud-init accept them."""
    data = gunzip_if_gzip(data)
    data = b64decode_if_base64(data)
    return gunzip_if_gzip(data)


def to_text(data: bytes, where: str) -> str:
    """UTF-8 text with LF line endings (a BOM is dropped)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{where} is neither UTF-8 text nor gzip/base64 of it ({exc.reason} at byte {exc.start})"
        ) from exc
    return text.replace("\r\n", "\n").replace("\r", "\n")
