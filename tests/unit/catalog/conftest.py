"""Fixtures of the catalog tests: a fresh catalog file, manifests, and one moto_server for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nodeforge.catalog import synthetic
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.motoserver import MotoServer
from nodeforge.catalog.store import Catalog


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "catalog.db"


@pytest.fixture
def catalog(db: Path) -> Iterator[Catalog]:
    with Catalog.open(db) as opened:
        yield opened


@pytest.fixture
def write_manifest(tmp_path: Path) -> Any:
    """write_manifest(builds, name="manifest.json", last_run_uuid=None) -> Path"""

    def write(builds: list[dict[str, Any]], name: str = "manifest.json", last_run_uuid: str | None = None) -> Path:
        return synthetic.write(tmp_path / name, builds, last_run_uuid)

    return write


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with MotoServer(log=tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AwsContext:
    """An empty moto, and an environment in which boto3 can reach nothing else."""
    moto_server.reset()
    for key, value in moto_server.env().items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return AwsContext(endpoint_url=moto_server.url)
