"""Fixtures of the bootstrap agent's tests: a fake IMDS and a runner writing under a temporary root."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nodeforge.bootstrap.cli import main
from nodeforge.vm.imds import DEFAULT_METADATA, FakeImds, FakeImdsServer


@pytest.fixture(scope="session")
def imds_server() -> Iterator[FakeImds]:
    with FakeImdsServer() as state:
        yield state


@pytest.fixture
def imds(imds_server: FakeImds) -> Iterator[FakeImds]:
    """The session's fake IMDS, reset to the default instance for each test."""
    imds_server.metadata = dict(DEFAULT_METADATA)
    imds_server.user_data = None
    imds_server.requests.clear()
    imds_server.fail_next = 0
    yield imds_server


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Agent:
    imds: FakeImds
    root: Path

    def run(self, *args: str, user_data: bytes | str | None = None) -> Result:
        """Run the agent in-process with the fake IMDS, writing under ``root``; deterministic node options."""
        if user_data is not None:
            self.imds.user_data = user_data.encode() if isinstance(user_data, str) else user_data
        out, err = io.StringIO(), io.StringIO()
        argv = list(args)
        mode: list[str] = []
        if argv and argv[0] == "legacy":
            mode, argv = ["legacy"], argv[1:]
        base = [
            "--root", str(self.root), "--imds-endpoint", self.imds.endpoint, "--imds-retries", "1",
            "--cpus", "2", "--no-start",
        ]  # fmt: skip
        code = main([*mode, *base, *argv], out=out, err=err)
        return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture
def agent(imds: FakeImds, tmp_path: Path) -> Agent:
    root = tmp_path / "root"
    root.mkdir()
    return Agent(imds, root)
