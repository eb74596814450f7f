"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import subprocess

import pytest

from nodeforge.bake import BakeOptions, bake_local


# Session scope: under xdist the group's tests share a worker but may be interleaved with other modules' tests,
# which would tear a module-scoped bake down (and remove its image) between them. Every test using it is in the
# xdist group "bake", so the session bakes once.
@pytest.fixture(scope="session")
def baked(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bake")
    options = BakeOptions(image_tag="e2e-test", out_dir=out)
    report = bake_local(options)
    yield report, out
    subprocess.run(["docker", "rmi", "-f", report.image], capture_output=True, check=False)
