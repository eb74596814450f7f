"""Immutable-image benchmark: sealed root size vs the mutable image, seal / verity format / verify / boot times.

Prints the figures; asserts nothing. Run: .venv/bin/python bench/immutable.py [ROOTFS_TAR] [--boot] [--reproduce]
(default tar: build/local/bench/rootfs.tar, the one bench/bake.py bakes). --reproduce seals the tar a second time
(a fresh extraction) and reports whether the root hash, image and hash tree came out identical; --signing-key
signs the seal (a throw-away key is made when the value is "new").
"""

from __future__ import annotations

import argparse
import filecmp
import json
import tempfile
import time
from pathlib import Path

from nodeforge.immutable import bake_immutable, signing, update, verity
from nodeforge.immutable.seal import seal_rootfs
from nodeforge.vm.disk import build_disk_image

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rootfs_tar", nargs="?", type=Path, default=REPO / "build/local/bench/rootfs.tar")
    parser.add_argument("--boot", action="store_true", help="also boot the A/B disk once under QEMU (~40 s)")
    parser.add_argument("--work", type=Path, help="keep the artifacts here (default: a temporary directory)")
    parser.add_argument("--reproduce", action="store_true", help="seal a second time and compare (reproducibility)")
    parser.add_argument("--signing-key", help='private key to sign the root hash with ("new": a throw-away key)')
    parser.add_argument("--no-mutable", action="store_true", help="skip the mutable ext4 disk build")
    args = parser.parse_args()
    if not args.rootfs_tar.is_file():
        raise SystemExit(f"{args.rootfs_tar}: no such rootfs tar (bake one first: .venv/bin/python bench/bake.py)")

    with tempfile.TemporaryDirectory(prefix="nodeforge-bench-immutable-", dir=REPO / "build") as tmp:
        work = args.work or Path(tmp)
        figures: dict[str, object] = {}
        mutable = None
        if not args.no_mutable:
            started = time.monotonic()
            mutable = build_disk_image(args.rootfs_tar, work / "mutable")
            figures["mutable ext4 disk build (s)"] = round(time.monotonic() - started, 1)

        key = None
        if args.signing_key == "new":
            key = work / "bench-signing.key"
            signing.generate_key(key)
        elif args.signing_key:
            key = Path(args.signing_key)
        sealed_first = None
        if key is not None:
            sealed_first = seal_rootfs(args.rootfs_tar, work / "immutable" / "sealed", signing_key=key)
        report = bake_immutable(args.rootfs_tar, work / "immutable", boot=args.boot, sealed=sealed_first)
        sealed = report.sealed
        mib = 2**20
        figures["rootfs tar (MiB)"] = round(sealed.rootfs_tar_bytes / mib, 1)
        if mutable is not None:
            figures["mutable ext4 disk (MiB, apparent)"] = round(mutable.size_bytes / mib, 1)
            figures["mutable ext4 disk (MiB, allocated)"] = round(mutable.disk.stat().st_blocks * 512 / mib, 1)
        figures[f"sealed {sealed.fs_type} root (MiB)"] = round(sealed.image_bytes / mib, 1)
        figures["verity hash tree (MiB)"] = round(sealed.hash_bytes / mib, 2)
        figures["sealed root / rootfs tar"] = round(sealed.image_bytes / sealed.rootfs_tar_bytes, 3)
        figures["removed by seal (MiB)"] = round(sealed.removed_bytes / mib, 1)
        figures["initramfs (MiB)"] = round(sealed.initrd_bytes / mib, 2)
        figures["A/B disk (MiB, apparent)"] = round(report.disk_bytes / mib, 1)
        figures["A/B disk (MiB, allocated)"] = round(report.disk_allocated_bytes / mib, 1)
        figures["seal total (s)"] = sealed.timings.get("total")
        figures["seal stages (s)"] = sealed.timings
        figures["verity format (s)"] = sealed.verity.format_seconds
        figures["veritysetup verify (s)"] = round(verity.verify(sealed.image, sealed.hash_tree, sealed.root_hash), 2)
        figures["disk create (s)"] = report.timings.get("disk")
        started = time.monotonic()
        result = update.update_slot(report.disk, sealed.directory)
        figures["update slot B (s)"] = round(time.monotonic() - started, 2)
        figures["update stages (s)"] = result.seconds
        if report.boot is not None:
            figures["boot: report after (s)"] = report.boot.boot.seconds
            figures["boot: total incl. QEMU start/stop (s)"] = round(report.boot.seconds, 1)
            figures["boot: checks passed"] = f"{sum(report.boot.checks.values())}/{len(report.boot.checks)}"
        figures["root hash"] = sealed.root_hash
        figures["seal inputs"] = {k: v for k, v in sealed.inputs.items() if k not in ("tools",)}
        figures["signed by"] = sealed.signature.get("key", "(unsigned)")
        if args.reproduce:
            again = seal_rootfs(args.rootfs_tar, work / "again", signing_key=key)
            figures["second seal total (s)"] = again.timings.get("total")
            figures["second seal: same root hash"] = again.root_hash == sealed.root_hash
            figures["second seal: same image bytes"] = filecmp.cmp(again.image, sealed.image, shallow=False)
            figures["second seal: same hash tree bytes"] = filecmp.cmp(again.hash_tree, sealed.hash_tree, shallow=False)
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
