"""Shared fixtures of the unit and end-to-end tests."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeforge.bake.aptcache import AptCache, AptCacheError
from nodeforge.bake.fixtures import build_artifact_tree, build_ssm_agent_deb
from nodeforge.bake.mirror import ArtifactMirror
from nodeforge.paths import cache_dir
from nodeforge.releases import kubelet_releases

REPO = Path(__file__).resolve().parents[1]
E2E = REPO / "tests" / "e2e"
APT_CACHE = pytest.StashKey[AptCache]()
APT_CACHE_WARNING = pytest.StashKey[str]()

# CLI output is asserted as plain text: typer forces a colour terminal when PY_COLORS or FORCE_COLOR is set at
# all (even to 0), so clear them before any test imports typer.
for _var in ("PY_COLORS", "FORCE_COLOR"):
    os.environ.pop(_var, None)
os.environ["NO_COLOR"] = "1"


# Longest xdist groups first (scripts/test.sh turns xdist's reordering by test count off): a worker that starts a
# long group late, or finds one queued behind another, sets the length of the whole run. Then the other e2e
# groups, then everything else (unit tests fill the gaps at the end).
LONG_GROUPS = (
    "bake", "molecule-default", "molecule-hardening", "molecule-cloud_init", "bad-input", "molecule-containerd",
    "catalog-writes",
)  # fmt: skip


def _xdist_group(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    if marker is None:
        return ""
    return str(marker.args[0] if marker.args else marker.kwargs.get("name", ""))


def _schedule_rank(item: pytest.Item) -> int:
    group = _xdist_group(item)
    if group in LONG_GROUPS:
        return LONG_GROUPS.index(group)
    if group:
        return len(LONG_GROUPS)
    return len(LONG_GROUPS) + (1 if "/tests/e2e/" in str(item.fspath) else 2)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Under --dist loadgroup, every grouped test's node id must carry its group (xdist tags it on the workers).

    Without the tag xdist spreads a group over all workers: each one runs the group's session fixtures (three
    bakes at once). pytest 9.2 with pytest-xdist 3.8 did exactly that, silently.
    """
    if not getattr(session.config.option, "loadgroup", False) or not hasattr(session.config, "workerinput"):
        return
    untagged = [item.nodeid for item in session.items if _xdist_group(item) and "@" not in item.nodeid]
    if untagged:
        raise pytest.UsageError(
            f"pytest-xdist did not tag {len(untagged)} grouped tests with their xdist_group (e.g. {untagged[0]}): "
            "groups would be split across workers; use the pytest/pytest-xdist pair pinned in requirements.txt"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
    order = {id(item): index for index, item in enumerate(items)}
    # within a group: tests that need only the baked disk (tests/e2e/conftest.py) before those that wait for the
    # whole bake, so the group's other boots run beside the bake's first boot and checks
    items.sort(key=lambda item: (_schedule_rank(item), "baked" in getattr(item, "fixturenames", ()), order[id(item)]))


@pytest.fixture(scope="session")
def fixture_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    build_artifact_tree(root, list(kubelet_releases(REPO).values()))
    build_ssm_agent_deb(root)  # the node playbook's ssm_agent role installs it off Amazon Linux
    return root


@pytest.fixture(scope="session")
def mirror(fixture_tree: Path) -> Iterator[ArtifactMirror]:
    with ArtifactMirror(fixture_tree) as served:
        yield served


def docker_available() -> bool:
    return shutil.which("docker") is not None and shutil.which("mmdebstrap") is not None


# The package cache of the run: every Molecule instance and the bake's Packer build install Debian packages, the same
# ones again and again; apt-cacher-ng on 127.0.0.1 (cache under .cache/apt-cacher-ng, kept between runs) fetches each
# once. Started here, in the controller (xdist starts its workers after this hook, so they inherit the variables), for
# runs that include the end-to-end tests; the workers, Molecule (.config/molecule/config.yml) and the bake fixture hand
# NODEFORGE_APT_PROXY to the roles as os_packages_apt_proxy. A caller's own NODEFORGE_APT_PROXY is used as it is (set
# it empty to run without a cache). When the cache cannot start, everything downloads from the mirror, with a warning.
def _selects_e2e(config: pytest.Config) -> bool:
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        path = (base / arg.split("::", 1)[0]).resolve()
        if path == E2E or E2E in path.parents or path in E2E.parents:
            return True
    return False


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput") or "NODEFORGE_APT_PROXY" in os.environ or not _selects_e2e(config):
        return
    cache = AptCache(cache_dir() / "apt-cacher-ng")
    try:
        cache.start()
    except AptCacheError as exc:
        warning = f"WARNING: no package cache for this run ({exc}); instances download from the Debian mirror"
        config.stash[APT_CACHE_WARNING] = warning
        print(warning, file=sys.stderr)
        os.environ["NODEFORGE_APT_PROXY"] = ""
        return
    config.stash[APT_CACHE] = cache
    os.environ["NODEFORGE_APT_PROXY"] = cache.url
    os.environ["NODEFORGE_APT_CACHE_LOG"] = str(cache.log_path)


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = config.stash.get(APT_CACHE, None)
    if cache is not None:
        cache.stop()
        os.environ.pop("NODEFORGE_APT_PROXY", None)
        os.environ.pop("NODEFORGE_APT_CACHE_LOG", None)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    warning = config.stash.get(APT_CACHE_WARNING, None)
    cache = config.stash.get(APT_CACHE, None)
    if warning:
        terminalreporter.write_sep("-", "package cache")
        terminalreporter.write_line(warning, yellow=True, bold=True)
    elif cache is not None:
        terminalreporter.write_sep("-", "package cache")
        terminalreporter.write_line(f"apt-cacher-ng {cache.url} ({cache.root}): {cache.stats().summary()}")
