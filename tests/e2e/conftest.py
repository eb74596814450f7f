"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
# hygiene, boot disk, first boot, checks over SSH); the group's other work only needs some of them: the immutable
# variant the baked image (after "packer build"), the extra launches the boot disk (after "boot disk"). Those runs
# (each test module's BAKE_RUNS, see bake_runs below) start in threads of their own with the group and wait for what
# they need, so they run beside the bake's own first boot and SSH checks and beside each other, not after them. TCG
# boots are single-threaded: side by side they use both CPUs, where one after the other they used one.
@dataclass
class BakeRun:
    out: Path
    image: str
    lead: LeadCpu | None = None
    # Seconds a boot of the group waits for the node's report: its guests boot beside each other, the lead cgroup's
    # work and the Molecule scenarios. An MNG report came 896 s after power-on in one run and missed the launch's
    # 900 s default in the next (cloud-init done at 748 s of uptime), where the same boot alone takes 90-120 s.
    boot_timeout: float = 1800.0
    image_ready: threading.Event = field(default_factory=threading.Event)
    disk_ready: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    report: BakeReport | None = None
    error: BaseException | None = None

    def wait(self, event: threading.Event, what: str) -> None:
        if not event.wait(BAKE_TIMEOUT):
            pytest.fail(f"the session's bake gave no {what} within {BAKE_TIMEOUT:.0f} s (out: {self.out})")

    def take_lead(self) -> None:
        """The calling thread, and every process it starts from now on, on the group's longest path (LeadCpu)."""
        if self.lead is not None:
            self.lead.join()

    def leave_lead(self) -> None:
        if self.lead is not None:
            self.lead.leave()

    def wait_image(self) -> BakedImage:
        """The baked Docker image and Packer's manifest, once the Packer build is done."""
        self.wait(self.image_ready, "image")
        manifest = self.out / "manifest.json"
        if not manifest.is_file():
            pytest.fail(f"the session's bake failed before its image was built: {self.error}")
        return BakedImage(image=self.image, manifest=manifest)

    def wait_disk(self) -> BakedDisk:
        """The baked image's boot disk, once the bake has built it (its first boot and checks may still run)."""
        self.wait(self.disk_ready, "disk")
        disk = self.out / "disk" / "disk.img"
        if not disk.is_file():
            pytest.fail(f"the session's bake failed before its boot disk: {self.error}")
        return BakedDisk(
            image=self.image, disk=disk, rootfs_tar=self.out / "rootfs.tar", manifest=self.out / "manifest.json"
        )


@dataclass(frozen=True)
class BakedImage:
    """What the bake has made once Packer is done: the image (Docker) and Packer's manifest."""

    image: str
    manifest: Path


@dataclass(frozen=True)
class BakedDisk:
    """What the bake has made once its "boot disk" stage is done (the first boot and its checks may still run)."""

    image: str
    disk: Path
    rootfs_tar: Path
    manifest: Path


class LeadCpu:
    """A CPU cgroup with a larger share for the bake group's longest path: the Packer build (its controller, and its
    build container through ``docker run --cgroup-parent``), then the immutable chain (sealing, the sealed boots).

    Measured on the 2-CPU machine: the Packer build takes 255 s alone and 8.5-12 min beside the Molecule scenarios,
    and every boot of the group waits for it; the immutable chain then ran alone on one CPU for the run's last 4
    minutes. With cgroup v1 each task of the root cgroup weighs 1024 and each cgroup its cpu.shares (all Docker
    containers together: 1024), so this group at 8192 gets a CPU whenever it has work, and the rest (Molecule's
    containers and controllers, the other boots) shares what is left. cgroup v1 moves single threads (``tasks``), and
    a thread's children start in its cgroup. Best effort: without a writable v1 cpu hierarchy (cgroup v2 only, no
    permission) nothing moves and everything runs as before.
    """

    SHARES = 8192
    NAME = "nodeforge-lead"

    def __init__(self, mount: Path, parent: str) -> None:
        self.mount = mount
        self.path = mount / parent.strip("/") / self.NAME  # parent: the worker's own cpu cgroup ("/" here)
        self.path.mkdir(exist_ok=True)
        (self.path / "cpu.shares").write_text(f"{self.SHARES}\n")

    @classmethod
    def create(cls, mount: Path = Path("/sys/fs/cgroup/cpu")) -> LeadCpu | None:
        try:
            lines = Path("/proc/thread-self/cgroup").read_text().splitlines()
            parent = next(line.split(":", 2)[2] for line in lines if "cpu" in line.split(":")[1].split(","))
            return cls(mount, parent) if (mount / "cpu.shares").is_file() else None
        except (OSError, StopIteration):
            return None

    @property
    def docker_parent(self) -> str:
        return "/" + str(self.path.relative_to(self.mount))

    def join(self) -> None:
        (self.path / "tasks").write_text(f"{threading.get_native_id()}\n")

    def leave(self) -> None:
        (self.path.parent / "tasks").write_text(f"{threading.get_native_id()}\n")

    def remove(self) -> None:
        with contextlib.suppress(OSError):  # empty once the build container is gone and the threads have left
            self.path.rmdir()


class _SignalingReporter(StageReporter):
    def __init__(self, run: BakeRun) -> None:
        super().__init__()
        self.run = run

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        with super().stage(name):
            yield
        if name == "packer build":
            self.run.leave_lead()  # the bake's first boot and checks are not on the group's longest path
            self.run.image_ready.set()
        elif name == "boot disk":
            self.run.disk_ready.set()


BAKE_TIMEOUT = 3600.0  # seconds a test waits for the bake (about 20 min on a loaded CI machine)


@pytest.fixture(scope="session")
def bake_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BakeRun]:
    out = tmp_path_factory.mktemp("bake")
    # the test run's package cache (tests/conftest.py), for the build only: the hygiene scan and the checks make sure
    # the image keeps no proxy
    lead = LeadCpu.create()
    options = BakeOptions(
        image_tag="e2e-test",
        out_dir=out,
        apt_proxy=os.environ.get("NODEFORGE_APT_PROXY", ""),
        cgroup_parent=lead.docker_parent if lead else "",
        first_boot_timeout=BakeRun.boot_timeout,
    )
    run = BakeRun(out=out, image=f"{options.image_repository}:{options.image_tag}", lead=lead)

    def bake() -> None:
        try:
            run.take_lead()  # the Packer build; the reporter leaves the lead after it
            run.report = bake_local(options, _SignalingReporter(run))
        except BaseException as exc:  # handed to the tests that wait for it
            run.error = exc
        finally:
            run.image_ready.set()
            run.disk_ready.set()
            run.done.set()

    thread = threading.Thread(target=bake, name="session-bake")
    thread.start()
    yield run
    thread.join()
    subprocess.run(["docker", "rmi", "-f", run.image], capture_output=True, check=False)
    if lead is not None:
        lead.remove()


# baked_disk and baked ask for bake_runs: whichever test of the group comes first, the runs start with the group.
@pytest.fixture(scope="session")
def baked_disk(bake_run: BakeRun, bake_runs: BakeRuns) -> BakedDisk:
    """The baked image's disk, as soon as the bake has built it."""
    return bake_run.wait_disk()


@pytest.fixture(scope="session")
def baked(bake_run: BakeRun, bake_runs: BakeRuns) -> tuple[BakeReport, Path]:
    """The whole bake's report (first boot and the checks over SSH included)."""
    bake_run.wait(bake_run.done, "report")
    if bake_run.report is None:
        pytest.fail(f"the session's bake failed: {bake_run.error}")
    return bake_run.report, bake_run.out


class BakeRuns:
    """The results of the session's runs on the bake (BAKE_RUNS of the selected test modules), by name."""

    def __init__(self, futures: dict[str, Future[Any]]) -> None:
        self.futures = futures

    def result(self, name: str) -> Any:
        if name not in self.futures:
            pytest.fail(f"no run {name!r} on the session's bake (runs: {sorted(self.futures)})")
        return self.futures[name].result()  # waits; a run's exception is raised here, in the test that asks


@pytest.fixture(scope="session")
def bake_runs(
    request: pytest.FixtureRequest, bake_run: BakeRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BakeRuns]:
    """Every run on the session's bake that the selected tests need, started together in threads of their own.

    A test module lists its runs in BAKE_RUNS (name -> function(bake_run, tmp_path_factory)); each function waits
    for what it needs (``bake_run.wait_image()``, ``wait_disk()``) and returns what its tests check. The first test
    asking for any of them starts them all, so a run that is only needed by later tests does not wait for them.
    """
    modules = {id(item.module): item.module for item in request.session.items if isinstance(item, pytest.Function)}
    runs: dict[str, Callable[[BakeRun, pytest.TempPathFactory], Any]] = {}
    for module in modules.values():
        runs.update(getattr(module, "BAKE_RUNS", {}))
    with ThreadPoolExecutor(max_workers=max(len(runs), 1), thread_name_prefix="bake-run") as pool:
        yield BakeRuns({name: pool.submit(run, bake_run, tmp_path_factory) for name, run in runs.items()})
