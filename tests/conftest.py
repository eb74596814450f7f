"""Shared fixtures of the unit and end-to-end tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeforge.bake.fixtures import build_artifact_tree, build_ssm_agent_deb
from nodeforge.bake.mirror import ArtifactMirror
from nodeforge.releases import kubelet_releases

REPO = Path(__file__).resolve().parents[1]

# CLI output is asserted as plain text: typer forces a colour terminal when PY_COLORS or FORCE_COLOR is set at
# all (even to 0), so clear them before any test imports typer.
for _var in ("PY_COLORS", "FORCE_COLOR"):
    os.environ.pop(_var, None)
os.environ["NO_COLOR"] = "1"


# Longest xdist groups first (scripts/test.sh turns xdist's reordering by test count off): a worker that starts a
# long group late, or finds one queued behind another, sets the length of the whole run. Then the other e2e
# groups, then everything else (unit tests fill the gaps at the end).
LONG_GROUPS = ("molecule-default", "bake", "molecule-hardening", "bad-input", "molecule-containerd", "catalog-writes")


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
    items.sort(key=lambda item: (_schedule_rank(item), order[id(item)]))


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
