"""Signed root hashes: the build signs the dm-verity root hash; the initramfs verifies it before opening the root.

Scheme (see docs/immutable.md, "Signed root hash"):

* **What is signed**: the root hash as 64 lower-case hex characters, no newline -- the message the kernel's
  own dm-verity root-hash signature check uses, so the key and message carry over if that path is taken.
* **Keys**: any key ``openssl pkeyutl`` signs with: Ed25519 (``nodeforge image keygen`` makes one), ECDSA
  or RSA (those hash the message with sha256). The private key stays with the user; the seal writes the
  public half next to the sealed root (``root.pub``).
* **Where the pieces live on the disk**: the public key in the boot partition ``NF-BOOTCFG`` (a key area at
  ``KEY_OFFSET``; the boot record lives in the ESP's grubenv now); each slot's signature in the last 4 KiB of its
  partition (a *trailer*, written with the slot's payload, so an update brings its own signature).
* **Who verifies**: the initramfs, with ``openssl pkeyutl -verify`` (OpenSSL 3.0 from the host, like
  veritysetup, whose libcrypto it already carries), by the script :data:`VERIFY_SCRIPT` -- the same script
  the unit tests run on the host. Why not the kernel's ``CONFIG_DM_VERITY_VERIFY_ROOTHASH_SIG`` (set in
  Debian's 6.1 kernel): it trusts only keys in the kernel's built-in or secondary keyring, and a user's key
  gets into those only signed by a built-in key (rebuilding the kernel) or enrolled as a MOK through shim
  under UEFI Secure Boot -- neither available here.
* **Policy**: a root sealed with a key gets an initramfs that *requires* a signature; any initramfs requires
  one when the boot partition holds a key. Without both, the root boots unsigned (disks made before signing).

What this does not protect: the kernel and initramfs themselves (they sit unsigned in the slot); that is the
job of UEFI Secure Boot over the boot loader and a signed kernel/initramfs (the self-booting disk's work).
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import subprocess
import tempfile
from pathlib import Path

from nodeforge.immutable.errors import ImmutableError
from nodeforge.immutable.tools import which

TRAILER_SIZE = 4096
TRAILER_MAGIC = "nodeforge-rootsig v1"
KEY_MAGIC = "nodeforge-pubkey v1"
KEY_OFFSET = 512 * 1024
"""Byte offset of the public-key area inside NF-BOOTCFG (kept where it was when a boot record shared the partition)."""
KEY_AREA_SIZE = 64 * 1024
VERIFY_PATH = "/bin/nodeforge-verify-root"
REQUIRE_FLAG = "/etc/nodeforge-require-signature"


class SigningError(ImmutableError):
    """A key or signature that cannot be used: names the file."""


def _openssl(argv: list[str], *, subject: Path | str, what: str, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run([which("openssl"), *argv], input=stdin, capture_output=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.decode(errors="replace").strip().splitlines()[-5:])
        raise SigningError(f"{subject}: {what} failed (openssl exit {proc.returncode}):\n{tail}")
    return proc.stdout


def generate_key(private_key: Path) -> Path:
    """Write a new Ed25519 private key to ``private_key`` (mode 0600) and its public half next to it (``.pub``)."""
    private_key = Path(private_key)
    if private_key.exists():
        raise SigningError(f"{private_key}: exists already (not overwriting a key)")
    private_key.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(private_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        _openssl(["genpkey", "-algorithm", "ed25519", "-out", str(private_key)], subject=private_key, what="genpkey")
        public = private_key.with_suffix(".pub")
        public.write_text(public_key_pem(private_key))
    except BaseException:
        private_key.unlink(missing_ok=True)
        raise
    return public


def public_key_pem(private_key: Path) -> str:
    """The PEM public key of a private key file; :class:`SigningError` naming the file if it is not one."""
    private_key = Path(private_key)
    if not private_key.is_file():
        raise SigningError(f"{private_key}: signing key not found")
    return _openssl(["pkey", "-in", str(private_key), "-pubout"], subject=private_key, what="reading the key").decode()


def _key_is_eddsa(key: Path, *, public: bool) -> bool:
    argv = ["pkey", *(["-pubin"] if public else []), "-in", str(key), "-noout", "-text_pub"]
    first = _openssl(argv, subject=key, what="reading the key").decode().splitlines()[:1]
    return bool(first) and first[0].startswith(("ED25519", "ED448"))


def fingerprint(public_pem: str) -> str:
    """``sha256:HEX`` of the DER public key (what the console and seal.json name a key by)."""
    with tempfile.NamedTemporaryFile("w", suffix=".pem") as fh:
        fh.write(public_pem)
        fh.flush()
        der = _openssl(["pkey", "-pubin", "-in", fh.name, "-outform", "DER"], subject="public key", what="DER")
    return "sha256:" + hashlib.sha256(der).hexdigest()


def message(root_hash: str) -> bytes:
    """The signed message for ``root_hash``."""
    if not re.fullmatch(r"[0-9a-f]{64}", root_hash):
        raise SigningError(f"{root_hash!r} is not a sha256 root hash (64 lower-case hex digits)")
    return root_hash.encode()


def sign_root_hash(root_hash: str, private_key: Path) -> bytes:
    """The signature of ``root_hash`` by ``private_key`` (raw bytes as ``openssl pkeyutl -sign`` writes them)."""
    private_key = Path(private_key)
    data = message(root_hash)
    digest = [] if _key_is_eddsa(private_key, public=False) else ["-digest", "sha256"]
    with tempfile.TemporaryDirectory(prefix="nodeforge-sign-") as tmp:
        msg = Path(tmp) / "msg"
        msg.write_bytes(data)
        argv = ["pkeyutl", "-sign", "-inkey", str(private_key), "-rawin", *digest, "-in", str(msg)]
        return _openssl(argv, subject=private_key, what="signing the root hash")


def trailer(root_hash: str, signature: bytes, key_fingerprint: str) -> bytes:
    """The slot trailer (``TRAILER_SIZE`` bytes, NUL-padded) carrying a root hash's signature."""
    text = (
        f"{TRAILER_MAGIC}\nroot_hash={root_hash}\nkey={key_fingerprint}\n"
        f"signature={base64.b64encode(signature).decode()}\n"
    )
    raw = text.encode()
    if len(raw) > TRAILER_SIZE:
        raise SigningError(f"signature of {len(signature)} bytes does not fit the {TRAILER_SIZE}-byte slot trailer")
    return raw.ljust(TRAILER_SIZE, b"\0")


def key_area(public_pem: str) -> bytes:
    """The NF-BOOTCFG key area (``KEY_AREA_SIZE`` bytes, NUL-padded) holding ``public_pem``."""
    pem = public_pem.strip()
    if not (pem.startswith("-----BEGIN PUBLIC KEY-----") and pem.endswith("-----END PUBLIC KEY-----")):
        raise SigningError("not a PEM public key (-----BEGIN PUBLIC KEY-----)")
    raw = f"{KEY_MAGIC}\n{pem}\n".encode()
    if len(raw) > KEY_AREA_SIZE:
        raise SigningError(f"public key of {len(raw)} bytes does not fit the {KEY_AREA_SIZE}-byte key area")
    return raw.ljust(KEY_AREA_SIZE, b"\0")


def parse_key_area(raw: bytes) -> str | None:
    """The PEM public key in a key area, ``None`` if the area holds none."""
    text = raw.rstrip(b"\0").decode(errors="replace")
    if not text.startswith(KEY_MAGIC + "\n"):
        return None
    return text[len(KEY_MAGIC) + 1 :]


# The check the initramfs runs (busybox sh + openssl). Usage:
#   nodeforge-verify-root REQUIRED KEY_AREA_FILE TRAILER_FILE ROOT_HASH
# REQUIRED=1: a signature is required even without a key on the boot partition.
# Prints one line (why it refuses, or what it accepted) and exits 0 (open the root) or 1 (refuse).
VERIFY_SCRIPT = rf"""#!/bin/sh
required=$1 key_area=$2 trailer=$3 roothash=$4
tmp=${{TMPDIR:-/tmp}}/nodeforge-verify.$$
mkdir -p "$tmp" || {{ echo "cannot create $tmp"; exit 1; }}
trap 'rm -rf "$tmp"' EXIT
tr -d '\000' <"$key_area" >"$tmp/key.txt" 2>/dev/null
if [ "$(head -n 1 "$tmp/key.txt")" != "{KEY_MAGIC}" ]; then
    if [ "$required" = 1 ]; then
        echo "no public key on the boot partition, and this initramfs requires a signed root"
        exit 1
    fi
    echo "unsigned root accepted: no public key on the boot partition"
    exit 0
fi
sed -n '2,$p' "$tmp/key.txt" >"$tmp/key.pem"
if ! openssl pkey -pubin -in "$tmp/key.pem" -noout 2>/dev/null; then
    echo "the key on the boot partition is not a public key"
    exit 1
fi
keyid=sha256:$(openssl pkey -pubin -in "$tmp/key.pem" -outform DER 2>/dev/null | sha256sum | cut -d' ' -f1)
tr -d '\000' <"$trailer" >"$tmp/trailer.txt" 2>/dev/null
if [ "$(head -n 1 "$tmp/trailer.txt")" != "{TRAILER_MAGIC}" ]; then
    echo "the slot carries no root hash signature (key $keyid on the boot partition requires one)"
    exit 1
fi
signed=$(sed -n 's/^root_hash=//p' "$tmp/trailer.txt")
sed -n 's/^signature=//p' "$tmp/trailer.txt" | base64 -d >"$tmp/sig" 2>/dev/null
if [ ! -s "$tmp/sig" ]; then
    echo "the slot's signature is not base64"
    exit 1
fi
printf '%s' "$roothash" >"$tmp/msg"
digest="-digest sha256"
case "$(openssl pkey -pubin -in "$tmp/key.pem" -noout -text_pub 2>/dev/null | head -n 1)" in
    ED25519*|ED448*) digest= ;;
esac
if ! openssl pkeyutl -verify -pubin -inkey "$tmp/key.pem" -rawin $digest -in "$tmp/msg" -sigfile "$tmp/sig" \
    >/dev/null 2>&1; then
    if [ "$signed" != "$roothash" ]; then
        echo "root hash $roothash is not the one signed for this slot ($signed); refusing"
    else
        echo "signature of root hash $roothash does not verify against the public key on the boot partition ($keyid)"
    fi
    exit 1
fi
echo "root hash $roothash signed by $keyid"
exit 0
"""


def run_verify_script(
    key_area_bytes: bytes, trailer_bytes: bytes, root_hash: str, *, required: bool, shell: str = "sh"
) -> tuple[bool, str]:
    """Run :data:`VERIFY_SCRIPT` (the initramfs's check) here; returns (accepted, the line it printed)."""
    with tempfile.TemporaryDirectory(prefix="nodeforge-verify-") as tmp:
        script, key, sig = Path(tmp) / "verify", Path(tmp) / "key-area", Path(tmp) / "trailer"
        script.write_text(VERIFY_SCRIPT)
        key.write_bytes(key_area_bytes)
        sig.write_bytes(trailer_bytes)
        argv = [shell, str(script), "1" if required else "0", str(key), str(sig), root_hash]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env={**os.environ, "TMPDIR": tmp})
    return proc.returncode == 0, (proc.stdout.strip() or proc.stderr.strip())
