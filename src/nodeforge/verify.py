"""Run the node checks (tests/infra) against an instance of a finished image."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from nodeforge import docker
from nodeforge.paths import repo_root


@dataclass
class VerifyResult:
    image: str
    passed: int
    failed: int
    skipped: int
    seconds: float
    report: Path

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.passed > 0


def _count(junit: Path) -> tuple[int, int, int]:
    root = ET.parse(junit).getroot()  # noqa: S314 - our own pytest's report
    suites = [root] if root.tag == "testsuite" else list(root)
    tests = sum(int(s.get("tests", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    return tests - failed - skipped, failed, skipped


def verify_image(image: str, *, out_dir: Path, markers: str | None = None, keep: bool = False) -> VerifyResult:
    """Start a systemd instance of IMAGE and run every check of tests/infra against it."""
    if not docker.image_exists(image):
        raise docker.DockerError(f"image not found: {image}")
    labels = docker.image_labels(image)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "verify.log"
    env = dict(os.environ)
    if "org.nodeforge.kubernetes-version" in labels:
        env["NODEFORGE_KUBERNETES_VERSION"] = labels["org.nodeforge.kubernetes-version"]
    started = time.monotonic()
    totals = [0, 0, 0]
    # Booted instance for the node checks; the image as shipped (not booted: booting writes a machine-id,
    # wtmp and a journal) for the sysprep checks.
    passes = [
        ("booted", "not sysprep and not verified_download and not os_packages", docker.start_instance),
        ("static", "sysprep", docker.start_static),
    ]
    with log.open("w") as handle:
        for label, selection, start in passes:
            expr = f"({selection}) and ({markers})" if markers else selection
            name = f"nodeforge-verify-{label}-{uuid.uuid4().hex[:8]}"
            junit = out_dir / f"verify-{label}.xml"
            junit.unlink(missing_ok=True)
            start(image, name)
            try:
                cmd = [
                    sys.executable, "-m", "pytest", str(repo_root() / "tests" / "infra"),
                    f"--hosts=docker://{name}", "-p", "no:cacheprovider", f"--junitxml={junit}", "-q", "-m", expr,
                ]  # fmt: skip
                handle.write(f"== {label} instance: -m '{expr}'\n")
                handle.flush()
                subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False, cwd=repo_root())
            finally:
                if not keep:
                    docker.remove(name)
            counts = _count(junit) if junit.exists() else (0, 1, 0)
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
    passed, failed, skipped = totals
    return VerifyResult(image, passed, failed, skipped, time.monotonic() - started, log)
