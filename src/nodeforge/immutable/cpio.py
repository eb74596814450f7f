"""A minimal writer for the ``newc`` cpio format the Linux kernel unpacks as an initramfs (no cpio binary needed)."""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Archive:
    """In-memory initramfs content: directories, regular files, symlinks and character devices."""

    entries: dict[str, tuple[int, bytes, tuple[int, int]]] = field(default_factory=dict)
    """path -> (mode incl. file type, data or link target, (rdev major, minor))."""

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        parts = path.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            self.entries.setdefault(sub, (stat.S_IFDIR | (mode if i == len(parts) else 0o755), b"", (0, 0)))

    def _parent(self, path: str) -> str:
        path = path.strip("/")
        if "/" in path:
            self.add_dir(path.rsplit("/", 1)[0])
        return path

    def add_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.entries[self._parent(path)] = (stat.S_IFREG | mode, data, (0, 0))

    def add_host_file(self, path: str, source: Path, mode: int | None = None) -> None:
        """Add ``source`` (symlinks followed) as ``path``, keeping its permission bits unless ``mode``."""
        data = Path(source).read_bytes()
        self.add_file(path, data, stat.S_IMODE(Path(source).stat().st_mode) if mode is None else mode)

    def add_symlink(self, path: str, target: str) -> None:
        self.entries[self._parent(path)] = (stat.S_IFLNK | 0o777, target.encode(), (0, 0))

    def add_chardev(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        self.entries[self._parent(path)] = (stat.S_IFCHR | mode, b"", (major, minor))

    def to_bytes(self) -> bytes:
        """The uncompressed newc archive (parents before children, then the TRAILER!!! entry)."""
        out = bytearray()
        ino = 1
        for name in sorted(self.entries, key=lambda p: (p.count("/"), p)):
            mode, data, (major, minor) = self.entries[name]
            out += _entry(name, mode, data, ino, major, minor)
            ino += 1
        out += _entry("TRAILER!!!", 0, b"", 0, 0, 0)
        return bytes(out)

    def write_gzip(self, path: Path, level: int = 6) -> int:
        """Write the archive gzip-compressed (the kernel's CONFIG_RD_GZIP); returns the file size."""
        data = gzip.compress(self.to_bytes(), compresslevel=level, mtime=0)
        Path(path).write_bytes(data)
        return len(data)


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _entry(name: str, mode: int, data: bytes, ino: int, rmajor: int, rminor: int) -> bytes:
    encoded = name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(mode) else 1
    fields = [ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(encoded), 0]
    header = b"070701" + b"".join(f"{v:08x}".encode() for v in fields)
    return header + encoded + _pad4(len(header) + len(encoded)) + data + _pad4(len(data))
