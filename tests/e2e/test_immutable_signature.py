"""Signed root hashes under QEMU (TCG): five boots of a small sealed root with Debian's real cloud kernel.

The root is small (busybox, the kernel's own modules, an /sbin/init that reports and powers off) so each boot
is the kernel + the sealed-root initramfs: the signature check runs on every boot before dm-verity opens the
root. One boot with a good signature reaches the root; four tampered disks each refuse in the initramfs with the
reason on the serial console: changed root hash, changed signature, wrong key on the boot partition, changed
data block (with nodeforge.verifyall=1, the initramfs reads the whole verity device before switch_root).

The kernel comes from the apt cache (scripts/setup.sh downloads linux-image-cloud-amd64 there).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from nodeforge.immutable import signing
from nodeforge.immutable.initramfs import BASE_MODULES, VERITY_NAME
from nodeforge.immutable.seal import SealedRoot, seal_rootfs
from nodeforge.vm import disk as diskimage
from nodeforge.vm.ab_disk import create_disk, read_layout, write_public_key

pytestmark = [pytest.mark.e2e]

APT_CACHE = Path("/var/cache/apt/archives")
KERNEL_DEBS = "linux-image-*-cloud-amd64_*_amd64.deb"
UP = "nodeforge-test: sealed root up"
INIT = f"""#!/bin/sh
export PATH=/usr/bin:/usr/sbin
busybox mount -t proc proc /proc
echo "{UP}: $(busybox tr '\\n' ' ' </run/nodeforge/boot.env)"
echo "nodeforge-test: / is $(busybox awk '$2 == "/" {{print $1, $3, $4}}' /proc/mounts)"
busybox poweroff -f
"""


def _member(tar: tarfile.TarFile, name: str, data: bytes = b"", mode: int = 0o644, kind: bytes = tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 1_700_000_000
    if kind == tarfile.SYMTYPE:
        info.linkname = data.decode()
        data = b""
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


def bootable_rootfs(path: Path, deb: Path) -> str:
    """A small root with the deb's kernel and the modules the initramfs loads (modules.dep written here)."""
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
    kos: dict[str, tarfile.TarInfo] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as src:
        members = src.getmembers()
        kernel = next(m for m in members if re.fullmatch(r"\./boot/vmlinuz-.+", m.name))
        kver = kernel.name.split("vmlinuz-", 1)[1]
        for m in members:
            if m.name.endswith(".ko"):
                kos[Path(m.name).name[:-3].replace("-", "_")] = m
        builtin = src.extractfile(f"./lib/modules/{kver}/modules.builtin").read()
        wanted, order, deps = [*BASE_MODULES, "erofs"], [], {}
        while wanted:
            name = wanted.pop().replace("-", "_")
            if name in deps or name not in kos:
                continue  # built in (modules.builtin) or seen
            blob = src.extractfile(kos[name]).read()
            found = re.search(rb"depends=([^\0]*)\0", blob)
            deps[name] = [d.replace("-", "_") for d in (found.group(1).decode().split(",") if found else []) if d]
            order.append((name, blob))
            wanted += deps[name]
        vmlinuz = src.extractfile(kernel).read()
    rel = {name: kos[name].name.split(f"/{kver}/", 1)[1] for name, _ in order}
    busybox = Path(shutil.which("busybox")).read_bytes()
    with tarfile.open(path, "w") as tar:
        for d in ("usr", "usr/bin", "usr/sbin", "usr/lib", "etc", "boot", "var", "var/lib"):
            _member(tar, d, mode=0o755, kind=tarfile.DIRTYPE)
        for link, target in (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib")):
            _member(tar, link, target.encode(), kind=tarfile.SYMTYPE)
        _member(tar, "usr/bin/busybox", busybox, 0o755)
        _member(tar, "usr/bin/sh", b"busybox", kind=tarfile.SYMTYPE)
        _member(tar, "usr/sbin/init", INIT.encode(), 0o755)
        _member(tar, "etc/os-release", b'ID=debian\nVERSION_ID="12"\n')
        _member(tar, f"boot/vmlinuz-{kver}", vmlinuz)
        _member(tar, f"boot/initrd.img-{kver}", b"Debian's initrd (unused: the seal builds its own)")
        mods = f"usr/lib/modules/{kver}"
        for name, blob in order:
            _member(tar, f"{mods}/{rel[name]}", blob)
        dep = "".join(f"{rel[n]}: {' '.join(rel[d] for d in deps[n] if d in rel)}\n" for n, _ in order)
        _member(tar, f"{mods}/modules.dep", dep.encode())
        _member(tar, f"{mods}/modules.builtin", builtin)
    return kver


@pytest.fixture(scope="module")
def signed_disk(tmp_path_factory):
    for tool in ("qemu-system-x86_64", "mkfs.erofs", "veritysetup", "sfdisk", "mkfs.ext4", "busybox", "openssl"):
        if not shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin"):
            pytest.fail(f"{tool} missing: scripts/setup.sh installs it")
    debs = sorted(APT_CACHE.glob(KERNEL_DEBS))
    if not debs:
        pytest.fail(f"no kernel package {APT_CACHE}/{KERNEL_DEBS}: scripts/setup.sh downloads linux-image-cloud-amd64")
    base = tmp_path_factory.mktemp("signed-boot")
    key, other = base / "build.key", base / "other.key"
    signing.generate_key(key)
    signing.generate_key(other)
    bootable_rootfs(base / "rootfs.tar", debs[-1])
    sealed = seal_rootfs(base / "rootfs.tar", base / "sealed", signing_key=key)
    disk = base / "disk.img"
    create_disk(disk, sealed, state_mb=16)
    return sealed, disk, other


def boot(disk: Path, sealed: SealedRoot, *, root_hash: str | None = None, extra: str = "") -> tuple[str, float]:
    """Boot slot A of ``disk`` once (snapshot: the disk is not written); returns the console text and seconds."""
    layout = read_layout(disk)
    info = layout.read_record().slots["a"]
    cmdline = (
        f"console=ttyS0 panic=-1 mitigations=off root=/dev/mapper/{VERITY_NAME} ro nodeforge.slot=a "
        f"nodeforge.roothash={root_hash or info.root_hash} nodeforge.hashoffset={info.hash_offset} {extra}"
    )
    console = disk.with_suffix(f".console-{time.monotonic_ns()}.log")
    image = diskimage.DiskImage(disk=disk, kernel=sealed.kernel, initrd=sealed.initrd, size_bytes=disk.stat().st_size)
    argv = diskimage.qemu_command(image, console, memory_mb=512, cmdline=cmdline, snapshot=True)
    started = time.monotonic()
    subprocess.run(argv, capture_output=True, timeout=240, check=False)
    seconds = time.monotonic() - started
    text = console.read_text(errors="replace").replace("\r", "")
    ours = "\n".join(line for line in text.splitlines() if "nodeforge" in line)
    print(f"\n--- boot ({seconds:.1f} s) {extra}\n{ours}")
    return text, seconds


def tampered(disk: Path, name: str) -> Path:
    copy = disk.with_name(name)
    subprocess.run(["cp", "--sparse=always", str(disk), str(copy)], check=True)
    return copy


def flip(path: Path, offset: int) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x01]))


def test_good_signature_boots(signed_disk):
    sealed, disk, _ = signed_disk
    text, _ = boot(disk, sealed)
    assert f"slot a: root hash {sealed.root_hash} signed by {sealed.signature['key']}" in text
    assert UP in text and f"/dev/mapper/{VERITY_NAME} erofs ro" in text
    assert "FATAL" not in text


def test_changed_root_hash_refused(signed_disk):
    sealed, disk, _ = signed_disk
    changed = ("0" if sealed.root_hash[0] != "0" else "1") + sealed.root_hash[1:]
    text, _ = boot(disk, sealed, root_hash=changed)
    assert f"FATAL: signature check refused slot a: root hash {changed} is not the one signed for this slot" in text
    assert UP not in text


def test_changed_signature_refused(signed_disk):
    sealed, disk, _ = signed_disk
    copy = tampered(disk, "sig.img")
    layout = read_layout(copy)
    trailer = layout.read_trailer("a").rstrip(b"\0")
    at = trailer.index(b"signature=") + len(b"signature=") + 5  # a base64 character inside the signature
    raw = bytearray(trailer)
    raw[at] = ord("A") if raw[at] != ord("A") else ord("B")
    with copy.open("r+b") as fh:
        fh.seek(layout.slot("a").start + layout.trailer_offset("a"))
        fh.write(bytes(raw))
    text, _ = boot(copy, sealed)
    assert "FATAL: signature check refused slot a: signature of root hash" in text
    assert "does not verify against the public key on the boot partition" in text and UP not in text


def test_wrong_key_refused(signed_disk):
    sealed, disk, other = signed_disk
    copy = tampered(disk, "key.img")
    other_pem = other.with_suffix(".pub").read_text()
    write_public_key(copy, other_pem)
    text, _ = boot(copy, sealed)
    assert "FATAL: signature check refused slot a" in text
    assert f"({signing.fingerprint(other_pem)})" in text and UP not in text


def test_changed_data_block_refused(signed_disk):
    sealed, disk, _ = signed_disk
    copy = tampered(disk, "data.img")
    layout = read_layout(copy)
    block = sealed.verity.data_blocks // 2
    flip(copy, layout.slot("a").start + block * 4096 + 100)
    text, _ = boot(copy, sealed, extra="nodeforge.verifyall=1")
    assert f"slot a: root hash {sealed.root_hash} signed by" in text  # the signature still holds ...
    assert "FATAL: dm-verity: slot a has a data block that does not match root hash" in text  # ... the data not
    assert re.search(r"kernel: .*verity.*data block \d+ is corrupted", text) and UP not in text
