"""Bootstrap agent benchmark: wall time from start to files written, per dialect, in-process and as
``python3 -m nodeforge.bootstrap``; peak memory (ru_maxrss). Target: under 0.5 s.

Uses the tests' fake IMDS on 127.0.0.1 and their user-data inputs; writes under temporary roots.
Prints the figures; asserts nothing. Run: .venv/bin/python bench/bootstrap.py [--runs N]
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
TESTS = REPO / "tests" / "unit" / "bootstrap"
sys.path.insert(0, str(TESTS))

from bootstrap_fake_imds import FakeImdsServer  # noqa: E402

from nodeforge.bootstrap.cli import main  # noqa: E402

DIALECTS = {
    "nodeconfig (Karpenter AL2023 MIME)": "karpenter-al2023.mime",
    "bootstrap.sh (managed node group MIME)": "mng-al2.mime",
    "toml (Karpenter Bottlerocket)": "karpenter-bottlerocket.toml",
}


def common(endpoint: str, root: str) -> list[str]:
    return ["--root", root, "--imds-endpoint", endpoint, "--cpus", "2", "--kubelet-version", "1.31", "--no-start"]


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


def as_subprocess(endpoint: str, runs: int, *, isolated: bool) -> float:
    """Median seconds of ``python -m nodeforge.bootstrap`` (isolated: -I -S with only src/ and PyYAML)."""
    times = []
    env = dict(os.environ)
    command = [sys.executable]
    if isolated:
        import yaml

        shim = Path(tempfile.mkdtemp()) / "path"
        shim.mkdir()
        (shim / "yaml").symlink_to(Path(yaml.__file__).parent)
        if (Path(yaml.__file__).parents[1] / "_yaml").exists():
            (shim / "_yaml").symlink_to(Path(yaml.__file__).parents[1] / "_yaml")
        bootstrap = (
            "import sys; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; "
            "from nodeforge.bootstrap.cli import main; sys.exit(main(sys.argv[1:]))"
        )
        command += ["-I", "-S", "-c", bootstrap, str(REPO / "src"), str(shim)]
    else:
        command += ["-m", "nodeforge.bootstrap"]
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as root:
            started = time.perf_counter()
            subprocess.run([*command, *common(endpoint, root)], env=env, capture_output=True, check=True)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    with FakeImdsServer() as state:
        for label, name in DIALECTS.items():
            state.user_data = (TESTS / "inputs" / name).read_bytes()
            first, again = in_process(state.endpoint, args.runs)
            figures[label] = {
                "in-process first run (ms)": round(first * 1000, 1),
                "in-process re-run, unchanged (ms)": round(again * 1000, 1),
                "subprocess -m (ms)": round(
                    as_subprocess(state.endpoint, max(3, args.runs // 2), isolated=False) * 1000, 1
                ),
                "subprocess -I -S, stdlib+yaml only (ms)": round(
                    as_subprocess(state.endpoint, max(3, args.runs // 2), isolated=True) * 1000, 1
                ),
            }
    figures["peak memory"] = {
        "in-process bench (MiB)": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "largest subprocess (MiB)": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main_()
