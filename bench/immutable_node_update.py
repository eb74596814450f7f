"""The on-node update scenario of tests/e2e/test_immutable_boot.py without the session bake: prints its figures.

Seals a baked Docker image (``nodeforge image seal-image``), builds the A/B disk, seals the good and broken variants,
then runs the test's own scenario and checks (the node updates itself from the host over HTTP, a broken update rolls
back by itself, a good one marks itself and boots again, under OVMF). ~16 min under TCG on 2 shared vCPUs.

    PYTHONPATH=src python bench/immutable_node_update.py /tmp/nfupd [--image nodeforge/node:s3d] [--setup-only]

Files in WORK: rootfs.tar, sealed/ (slot A), disk-pristine.img, serve/{good,broken}/, disk.img (the run's copy).
Existing ones are reused.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests/e2e"))

import test_immutable_boot as scenario

from nodeforge.immutable.seal import SealedRoot
from nodeforge.vm.ab_disk import create_disk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--image", default="nodeforge/node:s3d", help="baked node image (docker)")
    parser.add_argument("--setup-only", action="store_true", help="seal and build the disk, do not boot")
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    figures: dict[str, float] = {}
    started = time.monotonic()
    if not (work / "sealed/seal.json").is_file():
        cmd = ["nodeforge", "image", "seal-image", args.image, "--out", str(work / "sealed")]
        subprocess.run([*cmd, "--rootfs-tar", str(work / "rootfs.tar")], check=True)
        figures["seal-image"] = round(time.monotonic() - started, 1)
    pristine = work / "disk-pristine.img"
    if not pristine.is_file():
        create_disk(pristine, SealedRoot.load(work / "sealed"))
    serve = work / "serve"
    serve.mkdir(exist_ok=True)
    sealed = {}
    for name, files in (("good", scenario.GOOD_MARKER), ("broken", scenario.BROKEN_KUBELET_DROPIN)):
        begun = time.monotonic()
        if (serve / name / "seal.json").is_file():
            sealed[name] = SealedRoot.load(serve / name)
        else:
            sealed[name] = scenario.variant_seal(work / "rootfs.tar", serve, name, files)
            figures[f"seal {name} (lz4)"] = round(time.monotonic() - begun, 1)
    print(json.dumps({"figures": figures, "root_hashes": {k: v.root_hash for k, v in sealed.items()}}), flush=True)
    if args.setup_only:
        return 0
    disk = work / "disk.img"
    shutil.copyfile(pristine, disk)
    begun = time.monotonic()
    outcome = scenario.node_update_scenario(disk, sealed["good"], sealed["broken"], serve)
    run = outcome["run"]
    figures["run (4 boots, 2 updates)"] = run.seconds
    figures["next power-on (OVMF) to the verity root"] = outcome["again"].seconds
    figures["scenario total"] = round(time.monotonic() - begun, 1)
    print(json.dumps({"figures": figures, "boots": run.boots, "console": str(run.console_log)}, indent=1), flush=True)
    scenario.check_node_update(disk, sealed["good"], sealed["broken"], outcome)
    print("scenario checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
