"""The read commands' fast path: same answers as the typer app, no typer/rich/boto3 imported, typer for the rest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from nodeforge.catalog import cli, fast, synthetic

E1, E2, W1 = "ami-0e000000000000001", "ami-0e000000000000002", "ami-0f000000000000001"
SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
def db(tmp_path: Path, write_manifest: Any) -> Path:
    path = tmp_path / "catalog.db"
    manifest = write_manifest(
        [
            synthetic.build(run="r1", amis={"us-east-1": E1, "us-west-2": W1}, kubelet_version="1.31.2"),
            synthetic.build(run="r2", amis={"us-east-1": E2}, build_time=1_732_100_000, kubelet_version="1.31.3"),
        ]
    )
    result = CliRunner().invoke(cli.app, ["ingest", str(manifest), "--db", str(path)])
    assert result.exit_code == 0, result.stderr
    return path


COMMANDS = [
    ["list"],
    ["list", "-o", "json", "--region", "us-west-2"],
    ["list", "--limit=1", "--arch", "amd64"],
    ["latest", "-k", "1.31", "--os", "al2023", "--region", "us-east-1", "--channel", "candidate"],
    ["latest", "-k", "1.31", "--os", "al2023", "--region", "eu-central-1", "--channel", "candidate", "-o", "json"],
    ["latest", "-k", "1.31", "--os", "al2023", "--region", "us-east-7"],
    ["show", E1],
    ["show", E2, "--output", "json"],
    ["diff", E1, E2],
    ["diff", E1, E2, "--all", "-o", "json"],
    ["history", "--limit", "1"],
    ["export", "karpenter", "-k", "1.31", "--os", "al2023", "--channel", "candidate"],
    ["export", "eksctl", E1, "-o", "json", "--region", "us-west-2", "--name", "ng-1"],
    ["show", "ami-00000000000000000"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_fast_path_answers_as_the_typer_app(db: Path, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    typer_result = CliRunner().invoke(cli.app, [*argv, "--db", str(db)])
    code = fast.run([*argv, "--db", str(db)])
    captured = capsys.readouterr()
    assert code == typer_result.exit_code
    assert captured.out == typer_result.stdout
    assert captured.err.replace("\n", " ").split() == typer_result.stderr.replace("\n", " ").split()


@pytest.mark.parametrize(
    "argv",
    [
        ["latest", "--help"],
        ["list", "--limit", "0"],
        ["list", "-o", "yaml"],
        ["export", "terraform"],
        ["show"],
        ["list", "--colour", "red"],
        ["ingest", "m.json"],
        ["promote", E1, "--reason", "x"],
    ],
)
def test_the_rest_goes_to_typer(argv: list[str]) -> None:
    assert fast.run(argv) is None


def test_a_read_as_a_process_imports_no_typer_rich_boto3(db: Path) -> None:
    argv = ["-m", "nodeforge", "catalog", "latest", "-k", "1.31", "--os", "al2023", "--region", "us-east-1"]
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv, "--channel", "candidate", "--db", str(db), "-o", "json"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert json.loads(done.stdout)["image_id"] == E2
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert "nodeforge.catalog.reads" in imported
    for heavy in ("typer", "click", "rich", "boto3", "botocore", "yaml", "dataclasses", "pathlib", "typing"):
        assert heavy not in imported, heavy


def test_the_entry_point_hands_everything_else_to_typer(db: Path) -> None:
    env = {"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"}
    helped = subprocess.run(
        [sys.executable, "-m", "nodeforge", "catalog", "latest", "--help"], capture_output=True, text=True, env=env
    )
    assert helped.returncode == 0 and "--kubernetes-version" in helped.stdout
    promoted = subprocess.run(
        [sys.executable, "-m", "nodeforge", "catalog", "promote", E1, "--reason", "ok", "--db", str(db), "-o", "json"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert json.loads(promoted.stdout)["to"] == "stable", promoted.stderr
