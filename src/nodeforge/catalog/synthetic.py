"""Synthetic Packer manifests in the real format, for the catalog's tests and benchmark."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

VERSIONS = ("1.28", "1.29", "1.30", "1.31", "1.32")
OSES = ("al2023", "al2", "bottlerocket")
ARCHES = ("x86_64", "arm64")
REGIONS = ("us-east-1", "us-west-2", "eu-west-1", "ap-southeast-2")


def build(
    *,
    run: str,
    amis: dict[str, str],
    kubernetes_version: str = "1.31",
    os: str = "al2023",
    arch: str = "x86_64",
    build_time: int = 1_732_000_000,
    name: str = "node",
    **custom: str,
) -> dict[str, Any]:
    """One amazon-ebs build entry as the manifest post-processor writes it."""
    return {
        "name": name,
        "builder_type": "amazon-ebs",
        "build_time": build_time,
        "files": None,
        "artifact_id": ",".join(f"{region}:{ami}" for region, ami in amis.items()),
        "packer_run_uuid": run,
        "custom_data": {"kubernetes_version": kubernetes_version, "os": os, "arch": arch, **custom},
    }


def manifest(builds: list[dict[str, Any]], last_run_uuid: str | None = None) -> dict[str, Any]:
    return {"builds": builds, "last_run_uuid": last_run_uuid or (builds[-1]["packer_run_uuid"] if builds else "")}


def write(path: Path, builds: list[dict[str, Any]], last_run_uuid: str | None = None) -> Path:
    path.write_text(json.dumps(manifest(builds, last_run_uuid), indent=1))
    return path


def many(count: int, *, seed: int = 0, start: int = 1_700_000_000, max_regions: int = 3) -> list[dict[str, Any]]:
    """``count`` builds spread (pseudo-randomly, reproducibly) over versions, OSes, arches and 1 to 3 regions."""
    rng = random.Random(seed)  # noqa: S311 (test data, not secrets)
    builds = []
    for index in range(count):
        n = seed * 10_000_000 + index
        regions = rng.sample(REGIONS, rng.randint(1, max_regions))
        amis = {region: f"ami-{n * 4 + k:017x}" for k, region in enumerate(regions)}
        version = rng.choice(VERSIONS)
        builds.append(
            build(
                run=f"run-{seed}-{index}",
                amis=amis,
                kubernetes_version=version,
                os=rng.choice(OSES),
                arch=rng.choice(ARCHES),
                build_time=start + index * 60,
                kubelet_version=f"{version}.{index % 9}",
                containerd_version="1.7.23",
                runc_version="1.1.15",
                kernel_version="6.1.115",
                git_commit=f"{n:012x}",
                template="eks-al2023",
            )
        )
    return builds
