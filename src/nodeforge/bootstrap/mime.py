"""A forgiving MIME multipart splitter for user data.

Real user data is hand-written or templated: boundaries such as ``//`` or ``==MYBOUNDARY==`` quoted or not,
CRLF endings, part headers directly followed by the body with no blank line, blank lines and ``---`` around
parts. The standard library's email parser is stricter than cloud-init about some of these, so parts are
split here and only header values are parsed with :mod:`email`.
"""

from __future__ import annotations

import binascii
import re

from nodeforge.bootstrap.encoding import b64decode
from nodeforge.bootstrap.record import dataclass, field

# Compiled on first use (re's cache): user data that is not MIME never needs them, and case-insensitive patterns
# cost more to compile than most of a run's other work.
_HEADER_LINE = r"^(content-[a-z0-9-]+|mime-version|x-[a-z0-9-]+|merge-type)\s*:"
_HEADER_INITIALS = ("c", "m", "x", "C", "M", "X")  # what _HEADER_LINE can start with: other lines skip the regex
_BOUNDARY = r"""boundary\s*=\s*(?:"([^"]+)"|'([^']+)'|([^\s;]+))"""


@dataclass
class Part:
    """One MIME part: lower-cased headers and the decoded body (transfer encoding undone)."""

    index: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return _media_type(self.headers.get("content-type", "text/plain"))

    def describe(self) -> str:
        return f"user-data part {self.index} ({self.content_type})"


def _media_type(value: str) -> str:
    media_type = value.split(";", 1)[0].strip().strip('"').lower()
    return media_type if media_type.count("/") == 1 else "text/plain"


def _read_headers(lines: list[str]) -> tuple[dict[str, str], int]:
    """Headers at the top of ``lines``; returns them and the index of the first body line."""
    headers: dict[str, str] = {}
    last = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            return headers, index + 1
        if last and line[:1] in (" ", "\t"):
            headers[last] += " " + line.strip()
        elif line.startswith(_HEADER_INITIALS) and re.match(_HEADER_LINE, line, re.IGNORECASE):
            name, _, value = line.partition(":")
            last = name.strip().lower()
            headers[last] = value.strip()
        else:
            return headers, index  # body starts right after the headers, without a blank line
        index += 1
    return headers, index


def looks_like_mime(text: str) -> bool:
    headers, _ = _read_headers(text.lstrip("\n").split("\n"))
    return "multipart/" in headers.get("content-type", "").lower()


def boundary_of(content_type: str) -> str | None:
    match = re.search(_BOUNDARY, content_type, re.IGNORECASE)
    if not match:
        return None
    return next(group for group in match.groups() if group is not None)


def _decode_body(body: str, encoding: str, where: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "base64":
        try:
            return b64decode("".join(body.split()))
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"{where}: Content-Transfer-Encoding base64 but the body is not base64 ({exc})") from exc
    if encoding == "quoted-printable":
        import quopri

        return quopri.decodestring(body.encode())
    if encoding in ("", "7bit", "8bit", "binary"):
        return body.encode()
    raise ValueError(f"{where}: unsupported Content-Transfer-Encoding {encoding!r}")


def split_multipart(text: str) -> list[Part]:
    """Split multipart user data (LF endings) into parts; raise ValueError when it is malformed."""
    lines = text.lstrip("\n").split("\n")
    headers, body_start = _read_headers(lines)
    content_type = headers.get("content-type", "")
    boundary = boundary_of(content_type)
    if not boundary:
        raise ValueError(f"multipart user data has no boundary in its Content-Type header ({content_type!r})")
    delimiter = f"--{boundary}"
    closing = f"{delimiter}--"
    chunks: list[list[str]] = []
    current: list[str] | None = None
    closed = False
    for line in lines[body_start:]:
        stripped = line.rstrip()
        if stripped == closing:
            closed = True
            break
        if stripped == delimiter:
            if current is not None:
                chunks.append(current)
            current = []
        elif current is not None:
            current.append(line)
    if current is not None:
        chunks.append(current)
    if not chunks:
        raise ValueError(f"multipart user data has no part delimited by {delimiter!r}")
    if not closed:
        # EC2 user data is cut at 16 KiB, and templating can drop the tail: a document without its closing
        # delimiter may have lost parts (or the end of the last one), so nothing of it is applied.
        raise ValueError(
            f"multipart user data ends without its closing delimiter {closing!r} after part {len(chunks)}: "
            "it looks cut off (truncated user data?), so none of it is applied"
        )
    parts = []
    for number, chunk in enumerate(chunks, start=1):
        part_headers, start = _read_headers(chunk)
        body = "\n".join(chunk[start:])
        part = Part(index=number, headers=part_headers)
        if "multipart/" in part.content_type:
            raise ValueError(f"{part.describe()}: nested multipart parts are not supported")
        part.body = _decode_body(body, part_headers.get("content-transfer-encoding", ""), part.describe())
        parts.append(part)
    return parts
