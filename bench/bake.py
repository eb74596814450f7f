"""Bake benchmark: base build (cold and cached), first and second (idempotent) converge, total bake, size.

Prints the figures; asserts nothing. Run: .venv/bin/python bench/bake.py [--cold]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from nodeforge.bake import docker
from nodeforge.bake.base import BaseSpec, build_base
from nodeforge.bake.pipeline import BakeOptions, bake_local

REPO = Path(__file__).resolve().parents[1]


def converge_twice() -> tuple[float, float, str]:
    """molecule converge twice on the whole node (scenario default); returns both times and the 2nd recap."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", PY_COLORS="0")
    times = []
    recap = ""
    subprocess.run(["molecule", "destroy", "-s", "default"], cwd=REPO, env=env, capture_output=True, check=False)
    subprocess.run(["molecule", "create", "-s", "default"], cwd=REPO, env=env, capture_output=True, check=True)
    subprocess.run(["molecule", "prepare", "-s", "default"], cwd=REPO, env=env, capture_output=True, check=True)
    try:
        for _ in range(2):
            started = time.monotonic()
            proc = subprocess.run(
                ["molecule", "converge", "-s", "default"],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise SystemExit(f"molecule converge failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
            times.append(time.monotonic() - started)
            recap = (re.findall(r"nodeforge-default\s+:\s+ok=\d+\s+changed=\d+", proc.stdout) or [""])[-1]
    finally:
        subprocess.run(["molecule", "destroy", "-s", "default"], cwd=REPO, env=env, capture_output=True, check=False)
    return times[0], times[1], recap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="rebuild the base image to time a cold build")
    args = parser.parse_args()
    figures: dict[str, object] = {}
    if args.cold:
        figures["base build cold (s)"] = round(build_base(force=True).seconds, 1)
    figures["base build cached (s)"] = round(build_base().seconds, 2)
    first, second, recap = converge_twice()
    figures["first converge (s)"] = round(first, 1)
    figures["second converge (s)"] = round(second, 1)
    figures["second converge recap"] = recap
    started = time.monotonic()
    report = bake_local(BakeOptions(image_tag="bench"))
    figures["total local bake (s)"] = round(time.monotonic() - started, 1)
    figures["bake stages (s)"] = report.timings
    figures["image size (MiB)"] = round(report.image_size_bytes / 2**20)
    figures["rootfs tar (MiB)"] = round(report.rootfs_tar_bytes / 2**20)
    figures["base image size (MiB)"] = round(docker.image_size(BaseSpec().tag) / 2**20)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
