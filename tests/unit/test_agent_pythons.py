"""The bootstrap agent runs on the node's python3, which is older than the tooling's: 3.7 on Amazon Linux 2, 3.9 on
AL2023. Its unit tests (tests/unit/bootstrap) run here under 3.11 with the rest of the suite, and under CPython 3.7
and 3.8 by this test, each in the venv scripts/setup.sh makes from pyenv's interpreter (requirements-agent.txt)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENT_TESTS = REPO / "tests" / "unit" / "bootstrap"
OLD_PYTHONS = ("3.7", "3.8")
# nodeadm's conformance cases render the containerd role's Jinja template and read TOML with tomllib: tooling-side
# (3.11). The agent code they drive is the same code the other agent tests run on the old interpreters.


def agent_python(version: str) -> Path:
    """The interpreter of the venv scripts/setup.sh made for ``version``."""
    return REPO / ".cache" / "agent-python" / version / "bin" / "python"


@pytest.mark.parametrize("version", OLD_PYTHONS)
def test_agent_unit_tests_pass_under_old_python(version: str) -> None:
    python = agent_python(version)
    assert python.exists(), f"no CPython {version} venv at {python.parent.parent}: run scripts/setup.sh"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(AGENT_TESTS)]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    completed = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--confcutdir={AGENT_TESTS}",
         f"--rootdir={REPO}", f"--ignore={AGENT_TESTS / 'nodeadm_cases'}", str(AGENT_TESTS)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    summary = completed.stdout.strip().splitlines()[-1:] or [completed.stderr.strip()[-2000:]]
    assert completed.returncode == 0, f"CPython {version}:\n{completed.stdout[-6000:]}\n{completed.stderr[-2000:]}"
    reported = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
    ).stdout.strip()
    assert reported == version, f"{python} is CPython {reported}, not {version}"
    passed = re.search(r"(\d+) passed", summary[0])
    assert passed and int(passed.group(1)) >= 100, f"CPython {version} ran too few tests: {summary[0]}"
