"""Seal a baked rootfs tar into a read-only root: erofs image + dm-verity hash tree + kernel + initramfs.

Artifacts written to the output directory (all renamed into place only when everything succeeded):

* ``root.img``     the erofs image (lz4hc) of the prepared root (:mod:`nodeforge.immutable.layout`)
* ``root.verity``  its dm-verity hash tree (``veritysetup format``; superblock + tree)
* ``vmlinuz``      the image's kernel, ``initrd.img`` the sealed-root initramfs
  (:mod:`nodeforge.immutable.initramfs`)
* ``seal.json``    root hash, salt, data blocks, sizes, timings, what was removed, and the sha256 of
  the image's component manifest (/etc/nodeforge/image-manifest.json). The root hash cannot live
  inside the image it hashes, so this file is the sealed image's manifest entry.

Why erofs: the Debian cloud kernel has both ``erofs.ko`` and ``squashfs.ko``; erofs (lz4hc) seals
the ~550 MiB node root in ~10 s to ~300 MiB and reads with less CPU, squashfs (zstd) is smaller
but ~3x slower to build. ``fs_type="squashfs"`` is supported too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nodeforge.immutable import reproducible, signing
from nodeforge.immutable.errors import SealedDirError, SealError
from nodeforge.immutable.initramfs import build_initramfs, modules_dir
from nodeforge.immutable.layout import prepare_sealed_root
from nodeforge.immutable.tools import run
from nodeforge.immutable.verity import BLOCK_SIZE, VerityParams, check_root_hash, format_hash_tree
from nodeforge.vm import disk as diskimage

SEAL_JSON = "seal.json"
IMAGE_NAME = "root.img"
HASH_NAME = "root.verity"
KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
SIGNATURE_NAME = "root.sig"
PUBLIC_KEY_NAME = "root.pub"
COMPONENT_MANIFEST = "/etc/nodeforge/image-manifest.json"
FS_TYPES = ("erofs", "squashfs")


@dataclass
class SealedRoot:
    """A sealed root directory, as recorded in its ``seal.json``."""

    directory: Path
    fs_type: str
    kernel_version: str
    verity: VerityParams
    image_bytes: int
    hash_bytes: int
    kernel_bytes: int
    initrd_bytes: int
    rootfs_tar: str = ""
    rootfs_tar_bytes: int = 0
    version: str = ""
    component_manifest_sha256: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    initramfs_modules: list[str] = field(default_factory=list)
    signature: dict[str, str] = field(default_factory=dict)
    """When sealed with a key: the key's fingerprint, the signed message and the file names (root.sig, root.pub)."""
    inputs: dict[str, Any] = field(default_factory=dict)
    """What the root hash is a function of (:mod:`nodeforge.immutable.reproducible`): the tree digest, the
    timestamp epoch, the filesystem options and UUID, how the salt was derived, the tools' versions."""

    @property
    def root_hash(self) -> str:
        return self.verity.root_hash

    @property
    def image(self) -> Path:
        return self.directory / IMAGE_NAME

    @property
    def hash_tree(self) -> Path:
        return self.directory / HASH_NAME

    @property
    def kernel(self) -> Path:
        return self.directory / KERNEL_NAME

    @property
    def initrd(self) -> Path:
        return self.directory / INITRD_NAME

    @property
    def signed(self) -> bool:
        return bool(self.signature)

    @property
    def signature_file(self) -> Path:
        """The slot trailer carrying the root hash's signature (:func:`nodeforge.immutable.signing.trailer`)."""
        return self.directory / SIGNATURE_NAME

    @property
    def public_key_file(self) -> Path:
        return self.directory / PUBLIC_KEY_NAME

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["directory"] = str(self.directory)
        data["root_hash"] = self.root_hash
        data["verity"] = self.verity.to_dict()
        data["files"] = {"image": IMAGE_NAME, "hash_tree": HASH_NAME, "kernel": KERNEL_NAME, "initrd": INITRD_NAME}
        return data

    @classmethod
    def load(cls, directory: Path) -> SealedRoot:
        """Read ``directory/seal.json``; :class:`SealedDirError` naming the file if it or an artifact is missing."""
        directory = Path(directory)
        path = directory / SEAL_JSON
        try:
            data = json.loads(path.read_text())
            verity = VerityParams.from_dict(data["verity"])
            check_root_hash(verity.root_hash, subject=path)
            sealed = cls(
                directory=directory,
                verity=verity,
                **{k: data[k] for k in cls.__dataclass_fields__ if k not in ("directory", "verity") and k in data},
            )
        except FileNotFoundError as exc:
            raise SealedDirError(f"{path}: not found ({directory} is not a sealed root directory)") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SealedDirError(f"{path}: invalid seal record ({exc})") from exc
        artifacts = [sealed.image, sealed.hash_tree, sealed.kernel, sealed.initrd]
        if sealed.signed:
            artifacts += [sealed.signature_file, sealed.public_key_file]
        for artifact in artifacts:
            if not artifact.is_file():
                raise SealedDirError(f"{artifact}: missing from the sealed root directory")
        return sealed


def _fs_module_present(root: Path, kernel_version: str, fs_type: str) -> bool:
    mod_dir = modules_dir(root, kernel_version)
    if list((mod_dir / "kernel/fs" / fs_type).glob(f"{fs_type}.ko*")):
        return True
    builtin = mod_dir / "modules.builtin"
    return builtin.exists() and f"kernel/fs/{fs_type}/{fs_type}.ko" in builtin.read_text()


def fs_options(fs_type: str, compression: str | None, *, fs_uuid: str) -> list[str]:
    """The filesystem builder's options (no paths): part of the seal's recorded inputs."""
    if fs_type == "erofs":
        # SOURCE_DATE_EPOCH (environment) clamps mtimes and fixes the build time; -U fixes the UUID; erofs-utils
        # sorts directory entries itself. Owners stay as in the tar (no --all-root: the node has non-root files).
        return ["--quiet", *([f"-z{compression}"] if compression else []), f"-U{fs_uuid}"]
    # mksquashfs 4.5 reads SOURCE_DATE_EPOCH itself (and refuses -mkfs-time alongside it). Not covered by the
    # reproducibility tests: erofs is the sealed root's filesystem.
    return ["-noappend", "-quiet", "-no-progress", "-b", "131072", "-comp", compression or "zstd"]


def _make_fs(root: Path, image: Path, fs_type: str, options: list[str], epoch: int, subject: Path) -> None:
    env = {**os.environ, reproducible.EPOCH_ENV: str(epoch)}
    if fs_type == "erofs":
        run(["mkfs.erofs", *options, str(image), str(root)], subject=subject, what="mkfs.erofs", env=env)
    else:
        run(["mksquashfs", str(root), str(image), *options], subject=subject, what="mksquashfs", env=env)
    size = image.stat().st_size
    if size % BLOCK_SIZE:  # dm-verity needs whole blocks; squashfs pads to 4 KiB, erofs to its block size
        with image.open("ab") as fh:
            fh.truncate(size + BLOCK_SIZE - size % BLOCK_SIZE)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def seal_rootfs(
    rootfs_tar: Path,
    out_dir: Path,
    *,
    fs_type: str = "erofs",
    compression: str | None = None,
    probe_units: Sequence[str] = ("containerd", "nodeforge-bootstrap"),
    strip: bool = True,
    salt: str | None = None,
    source_date_epoch: int | None = None,
    signing_key: Path | None = None,
    version: str = "",
) -> SealedRoot:
    """Seal ``rootfs_tar`` into ``out_dir`` (see the module docstring); returns what ``seal.json`` records.

    ``compression`` defaults to lz4hc (erofs) / zstd (squashfs). The seal is reproducible: the same tree gives
    the same root hash (:mod:`nodeforge.immutable.reproducible`; ``salt`` (hex) overrides the derived salt,
    ``source_date_epoch`` the timestamp epoch, default $SOURCE_DATE_EPOCH or the tar's newest file mtime).
    ``signing_key`` (a private key file): sign the root hash (``root.sig``, public half ``root.pub``) and build
    an initramfs that requires a signed root (:mod:`nodeforge.immutable.signing`).
    Raises :class:`~nodeforge.vm.disk.RootfsTarError`
    for a missing or unreadable tar, :class:`SealError` / :class:`~nodeforge.immutable.errors.ToolError`
    otherwise; a failed seal leaves no partial artifacts.
    """
    rootfs_tar, out_dir = Path(rootfs_tar), Path(out_dir)
    if fs_type not in FS_TYPES:
        raise SealError(f"{rootfs_tar}: unsupported read-only filesystem {fs_type!r} (use one of {FS_TYPES})")
    if compression is None:
        compression = "lz4hc" if fs_type == "erofs" else "zstd"
    if not rootfs_tar.is_file():
        raise diskimage.RootfsTarNotFoundError(f"{rootfs_tar}: rootfs tar not found")
    public_pem = signing.public_key_pem(Path(signing_key)) if signing_key is not None else ""
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix=".nodeforge-seal-", dir=out_dir))
    try:
        root = scratch / "root"
        root.mkdir()
        t0 = time.monotonic()
        diskimage.extract_rootfs(rootfs_tar, root)
        root.chmod(0o755)
        os.chown(root, 0, 0)
        timings["extract"] = time.monotonic() - t0
        try:
            epoch, epoch_source = reproducible.resolve_epoch(root, source_date_epoch)
        except ValueError as exc:
            raise SealError(f"{rootfs_tar}: {exc}") from exc

        kernel_version, kernel, _debian_initrd = diskimage.find_kernel(root, rootfs_tar)
        if not _fs_module_present(root, kernel_version, fs_type):
            raise SealError(
                f"{rootfs_tar}: kernel {kernel_version} has no {fs_type} module; cannot mount a sealed root"
            )
        shutil.copyfile(kernel, scratch / KERNEL_NAME)
        manifest = root / COMPONENT_MANIFEST.lstrip("/")
        manifest_sha = _sha256(manifest) if manifest.is_file() else ""

        t0 = time.monotonic()
        initramfs = build_initramfs(
            root, kernel_version, scratch / INITRD_NAME, fs_module=fs_type, require_signature=bool(public_pem)
        )
        timings["initramfs"] = time.monotonic() - t0

        t0 = time.monotonic()
        layout = prepare_sealed_root(root, probe_units=probe_units, strip=strip)
        timings["prepare"] = time.monotonic() - t0

        t0 = time.monotonic()
        reproducible.set_directory_mtimes(root, epoch)
        tree_sha = reproducible.tree_digest(root, epoch)
        timings["tree digest"] = time.monotonic() - t0

        t0 = time.monotonic()
        image = scratch / IMAGE_NAME
        options = fs_options(fs_type, compression, fs_uuid=reproducible.fs_uuid(tree_sha))
        _make_fs(root, image, fs_type, options, epoch, out_dir / IMAGE_NAME)
        timings[f"mkfs.{fs_type}"] = time.monotonic() - t0
        shutil.rmtree(root)

        t0 = time.monotonic()
        image_sha = _sha256(image)
        verity_salt = salt if salt is not None else reproducible.verity_salt(image_sha)
        verity = format_hash_tree(
            image, scratch / HASH_NAME, salt=verity_salt, uuid=reproducible.verity_uuid(image_sha)
        )
        timings["verity format"] = time.monotonic() - t0
        signature: dict[str, str] = {}
        if signing_key is not None:
            t0 = time.monotonic()
            key_id = signing.fingerprint(public_pem)
            raw = signing.sign_root_hash(verity.root_hash, Path(signing_key))
            (scratch / SIGNATURE_NAME).write_bytes(signing.trailer(verity.root_hash, raw, key_id))
            (scratch / PUBLIC_KEY_NAME).write_text(public_pem)
            signature = {
                "key": key_id,
                "message": "the root hash, 64 lower-case hex digits, no newline",
                "file": SIGNATURE_NAME,
                "public_key": PUBLIC_KEY_NAME,
            }
            timings["sign"] = time.monotonic() - t0
        inputs = {
            "tree_sha256": tree_sha,
            "source_date_epoch": epoch,
            "source_date_epoch_from": epoch_source,
            "fs_options": options,
            "fs_uuid": reproducible.fs_uuid(tree_sha) if fs_type == "erofs" else "",
            "image_sha256": image_sha,
            "salt_from": "argument" if salt is not None else "sha256('nodeforge-verity-salt-v1' NUL image_sha256)",
            "verity_uuid": verity.uuid,
            "verity_options": f"format 1, {BLOCK_SIZE}-byte blocks, {verity.hash_algorithm}",
            "tools": [
                v
                for v in (
                    reproducible.package_version("erofs-utils" if fs_type == "erofs" else "squashfs-tools"),
                    reproducible.package_version("cryptsetup-bin"),
                )
                if v
            ],
            "strip": strip,
        }

        sealed = SealedRoot(
            directory=out_dir,
            fs_type=fs_type,
            kernel_version=kernel_version,
            verity=verity,
            image_bytes=image.stat().st_size,
            hash_bytes=(scratch / HASH_NAME).stat().st_size,
            kernel_bytes=(scratch / KERNEL_NAME).stat().st_size,
            initrd_bytes=initramfs.size_bytes,
            rootfs_tar=str(rootfs_tar),
            rootfs_tar_bytes=rootfs_tar.stat().st_size,
            version=version or verity.root_hash[:12],
            component_manifest_sha256=manifest_sha,
            removed=layout.removed,
            removed_bytes=layout.removed_bytes,
            notes=layout.notes,
            initramfs_modules=initramfs.modules,
            inputs=inputs,
            signature=signature,
        )
        timings["total"] = time.monotonic() - started
        sealed.timings = {k: round(v, 2) for k, v in timings.items()}
        for name in (IMAGE_NAME, HASH_NAME, KERNEL_NAME, INITRD_NAME):
            (scratch / name).replace(out_dir / name)
        for name in (SIGNATURE_NAME, PUBLIC_KEY_NAME):  # a re-seal without a key leaves no stale signature
            if signature:
                (scratch / name).replace(out_dir / name)
            else:
                (out_dir / name).unlink(missing_ok=True)
        tmp_json = scratch / SEAL_JSON
        tmp_json.write_text(json.dumps(sealed.to_dict(), indent=2) + "\n")
        tmp_json.replace(out_dir / SEAL_JSON)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return sealed
