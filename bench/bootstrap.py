"""Bootstrap agent benchmark: the whole process, as a ratio to ``python3 -c pass`` measured in the same loop.

For each dialect (user data as Karpenter, managed node groups and eksctl send it) the loop alternates
``python -S -c pass`` and ``python -S -m nodeforge.bootstrap ...`` (the agent configuring a fresh root from the
fake IMDS on 127.0.0.1, systemd left alone), so both see the same machine load; medians are printed, and the
agent's as a multiple of the bare interpreter's. Target (issue 12): the whole-process ratio <= 6 for the
bootstrap.sh dialect, the one amazon-eks-ami's bootstrap.sh takes (0.73-0.97 s there).

``-S`` on both sides: no site-packages processing (this machine's site imports certifi, tempfile, zipfile ... which
would hide the agent's own import cost); the agent's path is src/ plus PyYAML's directory, as on a node.
Also printed: in-process medians (first run, re-run with nothing to change) and peak memory. Asserts nothing.
Run: .venv/bin/python bench/bootstrap.py [--runs N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "tests" / "unit" / "bootstrap" / "inputs"
sys.path.insert(0, str(REPO / "src"))

from nodeforge.bootstrap.cli import main  # noqa: E402
from nodeforge.vm.imds import FakeImdsServer  # noqa: E402

DIALECTS = {
    "bootstrap.sh (eksctl AL2 shell script)": "eksctl-al2.sh",
    "bootstrap.sh (managed node group MIME)": "mng-al2.mime",
    "nodeconfig (Karpenter AL2023 MIME, YAML)": "karpenter-al2023.mime",
    "toml (Karpenter Bottlerocket)": "karpenter-bottlerocket.toml",
}
HEADLINE = "bootstrap.sh (eksctl AL2 shell script)"


def common(endpoint: str, root: str) -> list[str]:
    return ["--root", root, "--imds-endpoint", endpoint, "--cpus", "2", "--kubelet-version", "1.31", "--no-start"]


def yaml_path() -> str:
    """A directory holding only PyYAML (and its C extension), for the agent's path under -S."""
    import yaml

    shim = Path(tempfile.mkdtemp()) / "path"
    shim.mkdir()
    (shim / "yaml").symlink_to(Path(yaml.__file__).parent)
    if (Path(yaml.__file__).parents[1] / "_yaml").exists():
        (shim / "_yaml").symlink_to(Path(yaml.__file__).parents[1] / "_yaml")
    return str(shim)


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def whole_process(state: object, runs: int) -> dict[str, dict[str, float]]:
    """Per dialect: medians of the bare interpreter and of the agent, interleaved, and their ratio."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), yaml_path()]))
    bare = [sys.executable, "-S", "-c", "pass"]
    agent = [sys.executable, "-S", "-m", "nodeforge.bootstrap"]
    figures = {}
    for label, name in DIALECTS.items():
        state.user_data = (INPUTS / name).read_bytes()  # type: ignore[attr-defined]
        subprocess.run([*agent, *common(state.endpoint, tempfile.mkdtemp())], env=env, check=True, capture_output=True)  # type: ignore[attr-defined]
        baseline, times = [], []
        for _ in range(runs):
            baseline.append(timed(bare, env))
            with tempfile.TemporaryDirectory() as root:
                times.append(timed([*agent, *common(state.endpoint, root)], env))  # type: ignore[attr-defined]
        figures[label] = {
            "python -S -c pass (ms)": round(statistics.median(baseline) * 1000, 1),
            "agent whole process (ms)": round(statistics.median(times) * 1000, 1),
            "ratio": round(statistics.median(times) / statistics.median(baseline), 2),
        }
    return figures


def in_process(endpoint: str, runs: int) -> tuple[float, float]:
    """Median seconds of a first run (files created) and of a re-run (all unchanged)."""
    first, again = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as root:
            for bucket in (first, again):
                started = time.perf_counter()
                code = main(common(endpoint, root), out=io.StringIO(), err=io.StringIO())
                bucket.append(time.perf_counter() - started)
                assert code == 0
    return statistics.median(first), statistics.median(again)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with FakeImdsServer() as state:
        figures: dict[str, object] = {
            "whole process, interleaved with python -S -c pass": whole_process(state, args.runs)
        }
        in_process_figures = {}
        for label, name in DIALECTS.items():
            state.user_data = (INPUTS / name).read_bytes()
            first, again = in_process(state.endpoint, max(3, args.runs // 2))
            in_process_figures[label] = {
                "first run (ms)": round(first * 1000, 1),
                "re-run, unchanged (ms)": round(again * 1000, 1),
            }
        figures["in process"] = in_process_figures
    figures["peak memory"] = {
        "in-process bench (MiB)": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "largest subprocess (MiB)": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    headline = figures["whole process, interleaved with python -S -c pass"][HEADLINE]  # type: ignore[index]
    figures["headline"] = f"{HEADLINE}: agent / python -S -c pass = {headline['ratio']} (target <= 6)"
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main_()
