"""Sealing a tiny rootfs: erofs image + dm-verity tree, verify, tampering, layout, initramfs, bad inputs."""

from __future__ import annotations

import gzip
import json
import subprocess

import pytest
from immutable_helpers import KVER, flip_byte, needs_tools, tiny_rootfs

from nodeforge.immutable import verity
from nodeforge.immutable.errors import SealedDirError, SealError, VerityError
from nodeforge.immutable.initramfs import build_initramfs, resolve_modules
from nodeforge.immutable.layout import LOCAL_SETTINGS_UNIT, prepare_sealed_root
from nodeforge.immutable.seal import SEAL_JSON, SealedRoot, seal_rootfs
from nodeforge.vm import disk as diskimage

pytestmark = needs_tools


def test_seal_writes_image_hash_tree_and_record(sealed_pair):
    sealed, _ = sealed_pair
    out = sealed.directory
    assert sorted(p.name for p in out.iterdir()) == ["initrd.img", "root.img", "root.verity", "seal.json", "vmlinuz"]
    record = json.loads((out / SEAL_JSON).read_text())
    assert record["root_hash"] == sealed.root_hash and len(sealed.root_hash) == 64
    assert record["verity"]["salt"] == sealed.verity.salt
    assert record["verity"]["data_blocks"] * 4096 == sealed.image_bytes == (out / "root.img").stat().st_size
    assert record["hash_bytes"] == (out / "root.verity").stat().st_size > 0
    assert record["fs_type"] == "erofs" and record["kernel_version"] == KVER
    assert record["component_manifest_sha256"] and record["timings"]["total"] > 0
    assert (out / "vmlinuz").read_bytes().startswith(b"KERNEL-v1")
    assert SealedRoot.load(out).root_hash == sealed.root_hash
    assert sealed_pair[1].root_hash != sealed.root_hash


def test_verify_passes_and_python_root_hash_agrees(sealed_pair):
    sealed, _ = sealed_pair
    assert verity.verify(sealed.image, sealed.hash_tree, sealed.root_hash) >= 0
    with sealed.image.open("rb") as fh:
        computed = verity.root_hash_of(fh, offset=0, data_blocks=sealed.verity.data_blocks, salt=sealed.verity.salt)
    assert computed == sealed.root_hash


@pytest.mark.parametrize("blocks", [1, 129, 300])
def test_python_root_hash_matches_veritysetup(tmp_path, blocks):
    data = tmp_path / "data.img"
    data.write_bytes(bytes(range(256)) * 16 * blocks)
    params = verity.format_hash_tree(data, tmp_path / "hash")
    with data.open("rb") as fh:
        assert verity.root_hash_of(fh, offset=0, data_blocks=blocks, salt=params.salt) == params.root_hash


def test_one_flipped_byte_fails_verify(sealed_copy):
    copy = sealed_copy(1)
    sealed = SealedRoot.load(copy)
    flip_byte(sealed.image, sealed.image_bytes // 2)
    with pytest.raises(VerityError, match=r"root\.img"):
        verity.verify(sealed.image, sealed.hash_tree, sealed.root_hash)


def test_verify_wrong_or_malformed_root_hash(sealed_pair):
    sealed, other = sealed_pair
    with pytest.raises(VerityError, match=r"root\.img"):
        verity.verify(sealed.image, sealed.hash_tree, other.root_hash)
    with pytest.raises(VerityError, match="64 hex"):
        verity.verify(sealed.image, sealed.hash_tree, "nothex")


def test_sealed_image_content(sealed_pair, tmp_path):
    sealed, _ = sealed_pair
    out = tmp_path / "x"
    subprocess.run(["fsck.erofs", f"--extract={out}", str(sealed.image)], check=True, capture_output=True)
    assert not (out / "usr/bin/apt-get").exists() and not (out / "etc/apt").exists()
    assert (out / "usr/bin/dpkg-query").exists()
    skel = out / "usr/share/nodeforge/var-skel"
    assert (skel / "lib/dpkg/status").exists() and not (skel / "lib/apt").exists()
    assert (skel / "run").is_symlink() and oct((skel / "tmp").stat().st_mode)[-4:] == "1777"
    assert list((out / "var").iterdir()) == []
    assert (out / "usr/share/doc/busybox/copyright").exists()
    assert not (out / "usr/share/doc/busybox/changelog.gz").exists() and not (out / "usr/share/man").exists()
    assert list((out / "boot").iterdir()) == [] and not (out / "vmlinuz").is_symlink()
    assert not (out / ".dockerenv").exists()
    assert "tmpfs\t/tmp" in (out / "etc/fstab").read_text()
    assert (out / "etc/marker").read_text() == "v1\n"
    assert (out / f"usr/lib/systemd/system/{LOCAL_SETTINGS_UNIT}").exists()
    assert (out / f"etc/systemd/system/multi-user.target.wants/{LOCAL_SETTINGS_UNIT}").is_symlink()
    assert (out / diskimage.PROBE_EXTRA_SCRIPT.lstrip("/")).exists()
    assert diskimage.PROBE_EXTRA_SCRIPT in (out / diskimage.PROBE_SCRIPT.lstrip("/")).read_text()
    assert (out / "opt/cni/bin/loopback").exists()
    record = json.loads((sealed.directory / SEAL_JSON).read_text())
    assert any("apt-get" in r for r in record["removed"]) and record["removed_bytes"] > 10000


def test_initramfs_content(sealed_pair, tmp_path):
    sealed, _ = sealed_pair
    listing = subprocess.run(
        ["cpio", "-t"], input=gzip.decompress(sealed.initrd.read_bytes()), capture_output=True, check=True
    ).stdout.decode()
    names = set(listing.split())
    for name in ("init", "bin/busybox", "sbin/veritysetup", "dev/console", "etc/nodeforge-modules"):
        assert name in names, name
    assert "lib/modules/dm-verity.ko" in names and "lib/modules/erofs.ko" in names
    assert any(n.startswith("lib/x86_64-linux-gnu/libcryptsetup") for n in names)
    assert "lib/modules/squashfs.ko" not in names


def test_resolve_modules_dependencies_first(tmp_path):
    (tmp_path / "modules.dep").write_text(
        "kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko:\nkernel/d-x.ko:\n"
    )
    (tmp_path / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    order = resolve_modules(tmp_path, ["a", "d_x", "ext4"])
    assert order == ["kernel/c.ko", "kernel/b.ko", "kernel/a.ko", "kernel/d-x.ko"]
    with pytest.raises(SealError, match=r"modules\.dep.*nope"):
        resolve_modules(tmp_path, ["nope"])


def test_missing_tar_names_it(tmp_path):
    with pytest.raises(diskimage.RootfsTarNotFoundError, match=r"missing\.tar"):
        seal_rootfs(tmp_path / "missing.tar", tmp_path / "out")


def test_not_a_tar_names_it(tmp_path):
    bad = tmp_path / "garbage.tar"
    bad.write_bytes(b"not a tar at all\n" * 200)
    with pytest.raises(diskimage.RootfsTarError, match=r"garbage\.tar"):
        seal_rootfs(bad, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # nothing half-written


def test_kernel_without_fs_module(tmp_path):
    tar = tiny_rootfs(tmp_path / "nofs.tar", fs_modules=False)
    with pytest.raises(SealError, match=r"nofs\.tar.*no erofs module"):
        seal_rootfs(tar, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_unknown_fs_type(tmp_path):
    tar = tiny_rootfs(tmp_path / "r.tar")
    with pytest.raises(SealError, match="ext2"):
        seal_rootfs(tar, tmp_path / "out", fs_type="ext2")


def test_sealed_dir_errors_name_files(sealed_copy, tmp_path):
    with pytest.raises(SealedDirError, match=r"seal\.json"):
        SealedRoot.load(tmp_path)
    copy = sealed_copy(1)
    (copy / "root.verity").unlink()
    with pytest.raises(SealedDirError, match=r"root\.verity"):
        SealedRoot.load(copy)
    (copy / "seal.json").write_text("{not json")
    with pytest.raises(SealedDirError, match=r"seal\.json"):
        SealedRoot.load(copy)


def test_prepare_without_strip_keeps_apt(tmp_path):
    tar = tiny_rootfs(tmp_path / "r.tar")
    root = tmp_path / "root"
    root.mkdir()
    diskimage.extract_rootfs(tar, root)
    report = prepare_sealed_root(root, strip=False)
    assert (root / "usr/bin/apt-get").exists() and report.removed == []
    assert (root / "usr/share/nodeforge/var-skel/lib/apt").is_dir()


def test_squashfs_variant(tmp_path):
    tar = tiny_rootfs(tmp_path / "r.tar")
    sealed = seal_rootfs(tar, tmp_path / "sq", fs_type="squashfs")
    assert sealed.image.read_bytes()[:4] == b"hsqs"
    verity.verify(sealed.image, sealed.hash_tree, sealed.root_hash)
    initrd = gzip.decompress(sealed.initrd.read_bytes())
    assert b"squashfs.ko" in initrd


def test_build_initramfs_missing_modules_dir(tmp_path):
    with pytest.raises(SealError, match="lib/modules"):
        build_initramfs(tmp_path, KVER, tmp_path / "i.img")
