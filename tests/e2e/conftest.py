"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nodeforge.bake import docker
from nodeforge.bake.base import BaseSpec
from nodeforge.bake.pipeline import BakeOptions, BakeReport, bake_local
from nodeforge.cli_support import StageReporter


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


# One bake per session, in a background thread of the worker that runs the xdist group "bake" (every test using it
# is in that group, so the session bakes once). The bake's stages come one after the other (Packer, export,
# hygiene, boot disk, first boot, checks over SSH), but the group's other boots only need the disk: they start when
# the "boot disk" stage is done, beside the bake's own first boot and SSH checks, instead of after them. TCG boots
# are single-threaded: run side by side they use both CPUs in the run's last minutes, where one boot used one.
@dataclass
class BakeRun:
    out: Path
    image: str
    disk_ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    report: BakeReport | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class BakedDisk:
    """What the bake has made once its "boot disk" stage is done (the first boot and its checks may still run)."""

    image: str
    disk: Path
    rootfs_tar: Path
    manifest: Path


class _SignalingReporter(StageReporter):
    def __init__(self, run: BakeRun) -> None:
        super().__init__()
        self.run = run

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with super().stage(name):
            yield
        if name == "boot disk":
            self.run.disk_ready.set()


BAKE_TIMEOUT = 3600.0  # seconds a test waits for the bake (about 20 min on a loaded CI machine)


@pytest.fixture(scope="session")
def bake_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BakeRun]:
    out = tmp_path_factory.mktemp("bake")
    # the test run's package cache (tests/conftest.py), for the build only: the hygiene scan and the checks make sure
    # the image keeps no proxy
    options = BakeOptions(image_tag="e2e-test", out_dir=out, apt_proxy=os.environ.get("NODEFORGE_APT_PROXY", ""))
    run = BakeRun(out=out, image=f"{options.image_repository}:{options.image_tag}")

    def bake() -> None:
        try:
            run.report = bake_local(options, _SignalingReporter(run))
        except BaseException as exc:  # handed to the tests that wait for it
            run.error = exc
        finally:
            run.disk_ready.set()
            run.done.set()

    thread = threading.Thread(target=bake, name="session-bake")
    thread.start()
    yield run
    thread.join()
    subprocess.run(["docker", "rmi", "-f", run.image], capture_output=True, check=False)


def _wait(run: BakeRun, event: threading.Event, what: str) -> None:
    if not event.wait(BAKE_TIMEOUT):
        pytest.fail(f"the session's bake gave no {what} within {BAKE_TIMEOUT:.0f} s (out: {run.out})")


@pytest.fixture(scope="session")
def baked_disk(bake_run: BakeRun) -> BakedDisk:
    """The baked image's disk, as soon as the bake has built it."""
    _wait(bake_run, bake_run.disk_ready, "disk")
    disk = bake_run.out / "disk" / "disk.img"
    if not disk.is_file():
        pytest.fail(f"the session's bake failed before its boot disk: {bake_run.error}")
    return BakedDisk(
        image=bake_run.image,
        disk=disk,
        rootfs_tar=bake_run.out / "rootfs.tar",
        manifest=bake_run.out / "manifest.json",
    )


@pytest.fixture(scope="session")
def baked(bake_run: BakeRun) -> tuple[BakeReport, Path]:
    """The whole bake's report (first boot and the checks over SSH included)."""
    _wait(bake_run, bake_run.done, "report")
    if bake_run.report is None:
        pytest.fail(f"the session's bake failed: {bake_run.error}")
    return bake_run.report, bake_run.out
