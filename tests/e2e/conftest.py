"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from nodeforge.bake import docker
from nodeforge.bake.base import BaseSpec
from nodeforge.bake.pipeline import BakeOptions, bake_local


@pytest.fixture(scope="module")
def instance(request: pytest.FixtureRequest) -> Iterator[str]:
    """A systemd instance of the base image for the module's converges (named after the module)."""
    spec = BaseSpec()
    if not docker.image_exists(spec.tag):
        pytest.fail(f"base image {spec.tag} missing: run `nodeforge base` first")
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    name = f"nodeforge-{module}-{uuid.uuid4().hex[:6]}"
    docker.start_instance(spec.tag, name)
    yield name
    docker.remove(name)


# Session scope: under xdist the group's tests share a worker but may be interleaved with other modules' tests,
# which would tear a module-scoped bake down (and remove its image) between them. Every test using it is in the
# xdist group "bake", so the session bakes once.
@pytest.fixture(scope="session")
def baked(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bake")
    # the test run's package cache (tests/conftest.py), for the build only: the hygiene scan and the checks make sure
    # the image keeps no proxy
    options = BakeOptions(image_tag="e2e-test", out_dir=out, apt_proxy=os.environ.get("NODEFORGE_APT_PROXY", ""))
    report = bake_local(options)
    yield report, out
    subprocess.run(["docker", "rmi", "-f", report.image], capture_output=True, check=False)
