"""Shared fixtures of the unit and end-to-end tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from nodeforge.fixtures import build_artifact_tree
from nodeforge.mirror import ArtifactMirror
from nodeforge.releases import kubelet_releases

REPO = Path(__file__).resolve().parents[1]

# CLI output is asserted as plain text: typer forces a colour terminal when PY_COLORS or FORCE_COLOR is set at
# all (even to 0), so clear them before any test imports typer.
for _var in ("PY_COLORS", "FORCE_COLOR"):
    os.environ.pop(_var, None)
os.environ["NO_COLOR"] = "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def fixture_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("artifacts")
    build_artifact_tree(root, list(kubelet_releases(REPO).values()))
    return root


@pytest.fixture(scope="session")
def mirror(fixture_tree: Path) -> Iterator[ArtifactMirror]:
    with ArtifactMirror(fixture_tree) as served:
        yield served


def docker_available() -> bool:
    return shutil.which("docker") is not None and shutil.which("mmdebstrap") is not None
