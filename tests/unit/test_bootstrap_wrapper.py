"""The bootstrap_agent role's command wrapper (/usr/bin/nodeforge-bootstrap), rendered and run: it runs the agent
from the role's library directory, isolated from PYTHON* variables and from the working directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jinja2

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "roles" / "bootstrap_agent" / "templates" / "nodeforge-bootstrap.sh.j2"
INPUTS = REPO / "tests" / "unit" / "bootstrap" / "inputs"


def wrapper(tmp_path: Path) -> Path:
    text = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(TEMPLATE.read_text(encoding="utf-8"))
    path = tmp_path / "nodeforge-bootstrap"
    path.write_text(
        text.render(
            ansible_managed="test", bootstrap_agent_interpreter=sys.executable, bootstrap_agent_lib_dir=REPO / "src"
        )
        + "\n"
    )
    path.chmod(0o755)
    return path


def decoy(tmp_path: Path) -> Path:
    """A directory shadowing modules the agent imports (``json``, ``nodeforge``) with ones that fail: the agent must
    pick up neither from $PYTHONPATH nor from its working directory."""
    folder = tmp_path / "decoy"
    (folder / "nodeforge").mkdir(parents=True)
    (folder / "nodeforge" / "__init__.py").write_text("raise SystemExit('decoy nodeforge imported')\n")
    (folder / "json.py").write_text("raise SystemExit('decoy json imported')\n")
    return folder


def test_wrapper_runs_the_agent_isolated(tmp_path):
    from nodeforge.vm.imds import FakeImdsServer

    command = wrapper(tmp_path)
    shadow = decoy(tmp_path)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(shadow), "PYTHONSTARTUP": "/nonexistent"}
    usage = subprocess.run([command, "--help"], capture_output=True, text=True, env=env, cwd=shadow, check=False)
    assert usage.returncode == 0, usage.stderr
    assert "exit codes:" in usage.stdout
    # the exit code and both streams come through the quick exit (no interpreter teardown)
    wrong = subprocess.run([command, "--no-such-option"], capture_output=True, text=True, env=env, check=False)
    assert wrong.returncode == 2
    assert "--no-such-option" in wrong.stderr
    root = tmp_path / "root"
    root.mkdir()
    with FakeImdsServer() as state:
        state.user_data = (INPUTS / "eksctl-al2.sh").read_bytes()
        completed = subprocess.run(
            [command, "--no-start", "--cis-mode", "enforce", "--root", root, "--imds-endpoint", state.endpoint,
             "--cpus", "2", "--kubelet-version", "1.31", "--json"],
            capture_output=True, text=True, env=env, cwd=shadow, check=False,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["facts"]["maxPods"] == 58
    assert (root / "etc/kubernetes/kubelet/config.json").is_file()
