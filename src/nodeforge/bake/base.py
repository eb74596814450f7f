"""The local base OS image: Debian bookworm from mmdebstrap, standing in for Amazon Linux.

The image is cached by its inputs: the same suite, variant and package list give the same Docker tag,
so a rebuild with unchanged inputs costs one `docker image inspect`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nodeforge.bake import docker
from nodeforge.paths import cache_dir

BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-apt",
    "iproute2",
    "procps",
    "ca-certificates",
    "linux-image-cloud-amd64",
    "initramfs-tools",
    "sudo",
)


@dataclass(frozen=True)
class BaseSpec:
    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = BASE_PACKAGES
    repository: str = "nodeforge/base"

    def digest(self) -> str:
        payload = json.dumps({"suite": self.suite, "variant": self.variant, "packages": sorted(self.packages)})
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.suite}-{self.digest()}"


@dataclass
class BaseResult:
    tag: str
    cached: bool
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def build_base(spec: BaseSpec | None = None, *, force: bool = False) -> BaseResult:
    """Make sure the base image exists in Docker; build it with mmdebstrap when it does not."""
    spec = spec or BaseSpec()
    started = time.monotonic()
    if not force and docker.image_exists(spec.tag):
        return BaseResult(spec.tag, cached=True, seconds=time.monotonic() - started)
    out_dir = cache_dir() / "base"
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        t0 = time.monotonic()
        cmd = [
            "mmdebstrap",
            f"--variant={spec.variant}",
            f"--include={','.join(spec.packages)}",
            spec.suite,
            str(tarball),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"mmdebstrap failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
        timings["mmdebstrap"] = time.monotonic() - t0
        t0 = time.monotonic()
        docker.run(["import", "--change", 'CMD ["/lib/systemd/systemd"]', str(tarball), spec.tag])
        docker.run(["tag", spec.tag, f"{spec.repository}:{spec.suite}"])
        timings["import"] = time.monotonic() - t0
    return BaseResult(spec.tag, cached=False, seconds=time.monotonic() - started, timings=timings)
