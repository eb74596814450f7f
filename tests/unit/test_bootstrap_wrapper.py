"""The bootstrap_agent role's commands, rendered and run: the wrapper (/usr/bin/nodeforge-bootstrap) runs the agent
from the role's library directory, isolated from PYTHON* variables and from the working directory; the bake-time
reading of the image's containerd config.toml."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jinja2
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "bootstrap_agent"
TEMPLATE = ROLE / "templates" / "nodeforge-bootstrap.sh.j2"
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


def test_role_records_the_containerd_config_for_the_agent(tmp_path):
    """The install task's command, as the role renders it, on a root holding a config.toml."""
    tasks = yaml.safe_load((ROLE / "tasks" / "install.yml").read_text(encoding="utf-8"))
    task = next(t for t in tasks if t["name"] == "Record the image's containerd configuration for the agent")
    variables = {"bootstrap_agent_interpreter": sys.executable, "bootstrap_agent_lib_dir": str(REPO / "src")}
    argv = [jinja2.Template(str(arg)).render(**variables) for arg in task["ansible.builtin.command"]["argv"]]
    assert argv[-1] == "/"
    config = tmp_path / "etc/containerd/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "pause:3.10"\n')
    env = {"PATH": os.environ.get("PATH", "")}
    runs = [subprocess.run([*argv[:-1], str(tmp_path)], capture_output=True, text=True, env=env) for _ in range(2)]
    assert [run.stdout.strip() for run in runs] == ["created", "unchanged"], runs[0].stderr  # changed_when reads it
    recorded = json.loads((tmp_path / "etc/nodeforge/containerd-config.json").read_text())
    assert recorded["config"]["plugins"]["io.containerd.grpc.v1.cri"]["sandbox_image"] == "pause:3.10"
