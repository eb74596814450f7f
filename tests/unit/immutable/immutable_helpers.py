"""Helpers for the immutable-image unit tests: a tiny rootfs tar (seconds to seal, no QEMU)."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

TOOLS = ("mkfs.erofs", "fsck.erofs", "veritysetup", "sfdisk", "mkfs.ext4", "debugfs", "busybox")
_PATH = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
_MISSING = [t for t in TOOLS if not shutil.which(t, path=_PATH)]
needs_tools = pytest.mark.skipif(
    os.geteuid() != 0 or bool(_MISSING),
    reason=f"needs root and {', '.join(TOOLS)} (missing: {_MISSING}; scripts/setup.sh installs them)",
)

KVER = "6.1.0-99-test-amd64"
MODULES = {
    "kernel/drivers/virtio/virtio.ko": [],
    "kernel/drivers/virtio/virtio_ring.ko": [],
    "kernel/drivers/virtio/virtio_pci.ko": ["kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"],
    "kernel/drivers/block/virtio_blk.ko": ["kernel/drivers/virtio/virtio.ko", "kernel/drivers/virtio/virtio_ring.ko"],
    "kernel/drivers/md/dm-mod.ko": [],
    "kernel/drivers/md/dm-bufio.ko": ["kernel/drivers/md/dm-mod.ko"],
    "kernel/drivers/md/dm-verity.ko": ["kernel/drivers/md/dm-bufio.ko", "kernel/drivers/md/dm-mod.ko"],
    "kernel/fs/overlayfs/overlay.ko": [],
    "kernel/fs/erofs/erofs.ko": ["kernel/lib/libcrc32c.ko"],
    "kernel/lib/libcrc32c.ko": [],
    "kernel/fs/squashfs/squashfs.ko": [],
}


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = 1_700_000_000
    tar.addfile(info, io.BytesIO(data))


def _dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = 1_700_000_000
    tar.addfile(info)


def _link(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def tiny_rootfs(path: Path, *, marker: str = "v1", fs_modules: bool = True) -> Path:
    """A small Debian-shaped root: busybox, apt/dpkg leftovers, docs, /var, a kernel and fake modules."""
    busybox = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    mods = f"usr/lib/modules/{KVER}"
    with tarfile.open(path, "w") as tar:
        for d in ("usr", "usr/bin", "usr/sbin", "usr/lib", "etc", "etc/apt", "etc/nodeforge", "boot", "opt"):
            _dir(tar, d)
        for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")):
            _link(tar, link, target)
        for d in ("var", "var/lib", "var/lib/dpkg", "var/lib/apt", "var/lib/apt/lists", "var/cache", "var/log"):
            _dir(tar, d)
        _dir(tar, "var/tmp", 0o1777)
        _link(tar, "var/run", "/run")
        _add(tar, "usr/bin/busybox", busybox, 0o755)
        _link(tar, "usr/bin/sh", "busybox")
        _add(tar, "usr/bin/apt-get", b"#!/bin/sh\necho apt\n", 0o755)
        _add(tar, "usr/bin/dpkg-query", b"#!/bin/sh\n", 0o755)
        _add(tar, "etc/apt/sources.list", b"deb http://deb.debian.org/debian bookworm main\n")
        _add(tar, "var/lib/dpkg/status", b"Package: busybox\nStatus: install ok installed\n")
        _add(tar, "var/lib/apt/lists/big_Packages", b"x" * 10000)
        _add(tar, "var/log/apt.log", b"log\n")
        _add(tar, "etc/fstab", b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
        _add(tar, "etc/hosts")
        _add(tar, "etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
        _add(tar, "etc/nodeforge/image-manifest.json", b'{"packages": {"busybox": "1.35"}}\n')
        _add(tar, "etc/marker", marker.encode() + b"\n")
        _add(tar, "usr/share/doc/busybox/copyright", b"GPL\n")
        _add(tar, "usr/share/doc/busybox/changelog.gz", b"\x1f\x8b" + b"0" * 500)
        _add(tar, "usr/share/man/man1/busybox.1.gz", b"man")
        _add(tar, "opt/cni/bin/loopback", b"#!/bin/sh\n", 0o755)
        _add(tar, ".dockerenv")
        _add(tar, f"boot/vmlinuz-{KVER}", b"KERNEL-" + marker.encode() + os.urandom(4000))
        _add(tar, f"boot/initrd.img-{KVER}", b"debian initrd")
        _link(tar, "vmlinuz", f"boot/vmlinuz-{KVER}")
        dep_lines = []
        for mod, deps in MODULES.items():
            if not fs_modules and "/fs/" in mod and "overlay" not in mod:
                continue
            _add(tar, f"{mods}/{mod}", b"\x7fELF fake module " + mod.encode())
            dep_lines.append(f"{mod}: {' '.join(deps)}".rstrip())
        _add(tar, f"{mods}/modules.dep", ("\n".join(dep_lines) + "\n").encode())
        _add(tar, f"{mods}/modules.builtin", b"kernel/fs/ext4/ext4.ko\n")
    return path


def flip_byte(path: Path, offset: int) -> None:
    """Invert one byte of ``path`` at ``offset`` in place."""
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
