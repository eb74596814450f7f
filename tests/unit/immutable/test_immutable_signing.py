"""Signed root hashes: signing at seal time, the initramfs's check (run here under busybox sh), the disk's key area
and slot trailers, updates refused without a valid signature. The QEMU boots are in tests/e2e."""

from __future__ import annotations

import base64
import gzip
import json
import shutil
import subprocess

import pytest
from immutable_helpers import needs_tools, tiny_rootfs

from nodeforge.immutable import signing
from nodeforge.immutable.errors import UpdateRefusedError, VerityError
from nodeforge.immutable.manifest import record_seal
from nodeforge.immutable.seal import SEAL_JSON, SealedRoot, seal_rootfs
from nodeforge.immutable.update import update_slot, verify_slot
from nodeforge.vm.ab_disk import create_disk, read_layout, write_public_key

pytestmark = needs_tools


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    base = tmp_path_factory.mktemp("keys")
    good, other = base / "good.key", base / "other.key"
    signing.generate_key(good)
    signing.generate_key(other)
    ec = base / "ec.key"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(ec)], check=True
    )
    return {"good": good, "other": other, "ec": ec}


@pytest.fixture(scope="module")
def signed(keys, tmp_path_factory):
    base = tmp_path_factory.mktemp("signed")
    return seal_rootfs(tiny_rootfs(base / "r.tar", marker="signed"), base / "sealed", signing_key=keys["good"])


@pytest.fixture
def busybox_path(tmp_path, monkeypatch):
    """PATH = busybox applets + openssl only, as in the initramfs."""
    bindir = tmp_path / "bb"
    bindir.mkdir()
    busybox = shutil.which("busybox")
    for applet in subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split():
        (bindir / applet).symlink_to(busybox)
    (bindir / "openssl").symlink_to(shutil.which("openssl"))
    monkeypatch.setenv("PATH", str(bindir))
    return bindir


def check(pub: str | None, trailer: bytes, root_hash: str, *, required: bool = False) -> tuple[bool, str]:
    area = signing.key_area(pub) if pub is not None else bytes(signing.KEY_AREA_SIZE)
    return signing.run_verify_script(area, trailer, root_hash, required=required, shell="sh")


def test_seal_signs_the_root_hash(signed, keys):
    record = json.loads((signed.directory / SEAL_JSON).read_text())
    pub = keys["good"].with_suffix(".pub").read_text()
    assert record["signature"]["key"] == signing.fingerprint(pub) == signed.signature["key"]
    assert signed.public_key_file.read_text() == pub
    trailer = signed.signature_file.read_bytes()
    assert len(trailer) == signing.TRAILER_SIZE
    fields = dict(line.split("=", 1) for line in trailer.rstrip(b"\0").decode().splitlines()[1:])
    assert fields["root_hash"] == signed.root_hash
    sig, msg = signed.directory / "sig.bin", signed.directory / "msg"
    sig.write_bytes(base64.b64decode(fields["signature"]))
    msg.write_text(signed.root_hash)
    argv = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(signed.public_key_file), "-rawin"]
    subprocess.run([*argv, "-in", str(msg), "-sigfile", str(sig)], check=True, capture_output=True)
    sig.unlink()
    msg.unlink()
    assert SealedRoot.load(signed.directory).signed


def test_signing_key_in_the_manifest(signed, tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"builds": [{"custom_data": {"os": "debian12"}}]}))
    custom = record_seal(path, signed)
    assert custom["signing_key"] == signed.signature["key"] and custom["root_hash"] == signed.root_hash


def test_initramfs_carries_openssl_and_the_check(signed, sealed_pair):
    listing = subprocess.run(
        ["cpio", "-t"], input=gzip.decompress(signed.initrd.read_bytes()), capture_output=True, check=True
    ).stdout.decode()
    names = set(listing.split())
    assert {"bin/openssl", signing.VERIFY_PATH.lstrip("/"), signing.REQUIRE_FLAG.lstrip("/")} <= names
    assert any(n.startswith("lib/x86_64-linux-gnu/libssl.so") for n in names)
    unsigned = gzip.decompress(sealed_pair[0].initrd.read_bytes())
    assert (
        b"nodeforge-require-signature"
        not in subprocess.run(["cpio", "-t"], input=unsigned, capture_output=True, check=True).stdout
    )


def test_check_accepts_the_signed_root(signed, busybox_path):
    ok, line = check(signed.public_key_file.read_text(), signed.signature_file.read_bytes(), signed.root_hash)
    assert ok, line
    assert line == f"root hash {signed.root_hash} signed by {signed.signature['key']}"


def test_check_refuses_a_changed_root_hash(signed, busybox_path):
    other = ("0" if signed.root_hash[0] != "0" else "1") + signed.root_hash[1:]
    ok, line = check(signed.public_key_file.read_text(), signed.signature_file.read_bytes(), other)
    assert not ok and f"root hash {other} is not the one signed for this slot ({signed.root_hash})" in line


def test_check_refuses_a_changed_signature(signed, busybox_path):
    text = signed.signature_file.read_bytes().rstrip(b"\0").decode()
    head, sig = text.rsplit("signature=", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[10] ^= 0x01
    trailer = f"{head}signature={base64.b64encode(bytes(raw)).decode()}\n".encode().ljust(signing.TRAILER_SIZE, b"\0")
    ok, line = check(signed.public_key_file.read_text(), trailer, signed.root_hash)
    assert not ok and "does not verify against the public key on the boot partition" in line


def test_check_refuses_the_wrong_key(signed, keys, busybox_path):
    other_pub = keys["other"].with_suffix(".pub").read_text()
    ok, line = check(other_pub, signed.signature_file.read_bytes(), signed.root_hash)
    assert not ok and f"({signing.fingerprint(other_pub)})" in line and "does not verify" in line


def test_check_missing_pieces(signed, busybox_path):
    pub = signed.public_key_file.read_text()
    ok, line = check(pub, bytes(signing.TRAILER_SIZE), signed.root_hash)
    assert not ok and "carries no root hash signature" in line
    ok, line = check(None, signed.signature_file.read_bytes(), signed.root_hash, required=True)
    assert not ok and "no public key on the boot partition" in line
    ok, line = check(None, bytes(signing.TRAILER_SIZE), signed.root_hash, required=False)
    assert ok and line.startswith("unsigned root accepted")


def test_ecdsa_key(keys, signed, busybox_path):
    pub = signing.public_key_pem(keys["ec"])
    raw = signing.sign_root_hash(signed.root_hash, keys["ec"])
    trailer = signing.trailer(signed.root_hash, raw, signing.fingerprint(pub))
    assert check(pub, trailer, signed.root_hash)[0]
    assert not check(pub, trailer, signed.root_hash.replace(signed.root_hash[5], "x"))[0]


def test_disk_carries_key_and_trailers(signed, sealed_pair, keys, tmp_path):
    disk = tmp_path / "disk.img"
    layout = create_disk(disk, signed, state_mb=16)
    assert layout.public_key() == signed.public_key_file.read_text()
    assert layout.read_trailer("a") == signed.signature_file.read_bytes()
    assert layout.read_trailer("b") == bytes(signing.TRAILER_SIZE)
    with pytest.raises(UpdateRefusedError, match=r"carries no root hash signature.*\n.*slot A stays active"):
        update_slot(disk, sealed_pair[1].directory)  # unsigned root onto a disk with a key
    write_public_key(disk, keys["other"].with_suffix(".pub").read_text())
    with pytest.raises(UpdateRefusedError, match="does not verify against the public key"):
        update_slot(disk, signed.directory)
    write_public_key(disk, signed.public_key_file.read_text())
    assert update_slot(disk, signed.directory).slot == "b"
    layout = read_layout(disk)
    assert layout.read_trailer("b") == signed.signature_file.read_bytes()
    info = layout.read_record().slots["b"]
    verify_slot(layout, "b", info, signed)
    with disk.open("r+b") as fh:  # a trailer that differs from the sealed root's is caught in place
        fh.seek(layout.slot("b").start + layout.trailer_offset("b") + 30)
        fh.write(b"X")
    with pytest.raises(VerityError, match="slot B signature trailer differs"):
        verify_slot(layout, "b", info, signed)


def test_bad_signing_key_named_nothing_written(tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    with pytest.raises(signing.SigningError, match=r"bad\.key"):
        seal_rootfs(tiny_rootfs(tmp_path / "r.tar"), tmp_path / "out", signing_key=bad)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
    with pytest.raises(signing.SigningError, match=r"missing\.key: signing key not found"):
        signing.public_key_pem(tmp_path / "missing.key")


def test_keygen_never_overwrites(tmp_path):
    key = tmp_path / "k.key"
    pub = signing.generate_key(key)
    assert oct(key.stat().st_mode)[-3:] == "600" and pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = key.read_bytes()
    with pytest.raises(signing.SigningError, match="exists already"):
        signing.generate_key(key)
    assert key.read_bytes() == before
