"""The agent runs on the node with the OS python3 and PyYAML only: check its imports two ways."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bootstrap_helpers import TOOLING_ONLY

import nodeforge.bootstrap

PACKAGE = Path(nodeforge.bootstrap.__file__).parent
SRC = PACKAGE.parents[1]


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


@TOOLING_ONLY  # sys.stdlib_module_names: 3.10+
def test_only_stdlib_yaml_and_the_package_itself():
    allowed = set(sys.stdlib_module_names) | {"yaml", "tomli"}  # tomli: tomllib on Python < 3.11 (tomlr.py)
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            if name.startswith("nodeforge.bootstrap") or (top in allowed and top != "nodeforge"):
                continue
            offenders.setdefault(path.name, []).append(name)
    assert offenders == {}


def test_runs_isolated_with_only_src_and_yaml(tmp_path):
    """python -I -S: no site-packages; only src/ and PyYAML's directory on the path."""
    yaml_dir = str(Path(yaml.__file__).parents[1])
    shim = tmp_path / "yaml_only"
    shim.mkdir()
    (shim / "yaml").symlink_to(Path(yaml.__file__).parent)
    if (Path(yaml_dir) / "_yaml").exists():
        (shim / "_yaml").symlink_to(Path(yaml_dir) / "_yaml")
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]];"
        "from nodeforge.bootstrap import cli, userdata, plan, writer, imds;"
        "import nodeforge.bootstrap.cli as c; raise SystemExit(c.main(['--help']))"
    )
    completed = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(SRC), str(shim)],
        capture_output=True, text=True, env={"PATH": os.environ.get("PATH", "")}, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "exit codes:" in completed.stdout
    listing = code.replace("raise SystemExit(c.main(['--help']))", "print(sorted(sys.modules))")
    loaded = subprocess.run(
        [sys.executable, "-I", "-S", "-c", listing, str(SRC), str(shim)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    modules = {name.strip("' ") for name in loaded.stdout.strip("[]\n").split(",")}
    assert not {"requests", "typer", "rich", "pydantic", "boto3", "nodeforge.cli"} & modules


def test_module_entry_point_as_subprocess(tmp_path):
    from bootstrap_helpers import INPUTS

    from nodeforge.vm.imds import FakeImdsServer

    with FakeImdsServer() as state:
        state.user_data = (INPUTS / "eksctl-al2.sh").read_bytes()
        completed = subprocess.run(
            [sys.executable, "-m", "nodeforge.bootstrap", "--root", str(tmp_path), "--imds-endpoint", state.endpoint,
             "--cpus", "2", "--json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    import json

    report = json.loads(completed.stdout)
    assert report["facts"]["maxPods"] == 58
    assert {f["path"]: f["action"] for f in report["files"]}["/etc/kubernetes/kubelet/config.json"] == "created"
    assert report["services"] == []  # --root is not /: systemd is left alone


@TOOLING_ONLY
def test_tomli_pinned_alike_in_the_agent_the_role_and_the_test_venvs():
    """tomllib's stand-in on python3 < 3.11: one version in the agent's error message, the role and the venvs."""
    from nodeforge.bootstrap.tomlr import TOMLI_VERSION

    repo = SRC.parent
    role_vars = yaml.safe_load((repo / "roles/bootstrap_agent/vars/main.yml").read_text(encoding="utf-8"))
    assert role_vars["bootstrap_agent_tomli_version"] == TOMLI_VERSION
    assert f"tomli=={TOMLI_VERSION}" in (repo / "requirements-agent.txt").read_text(encoding="utf-8").split()
    assert role_vars["bootstrap_agent_python_min"] == "3.7"


def test_toml_without_tomllib_or_tomli_is_refused_with_what_to_install(agent, monkeypatch):
    """A python3 older than 3.11 without tomli: TOML user data is refused naming tomli, nothing is written."""
    from bootstrap_helpers import INPUTS

    from nodeforge.bootstrap import tomlr

    monkeypatch.setattr(tomlr, "_parser", None)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # import fails as on Python < 3.11
    monkeypatch.setitem(sys.modules, "tomli", None)
    result = agent.run(user_data=(INPUTS / "karpenter-bottlerocket.toml").read_bytes())
    assert result.code == 1, result.err
    assert "has no tomllib (Python 3.11+) and the tomli package is not installed" in result.err
    assert f"tomli=={tomlr.TOMLI_VERSION}" in result.err
    assert list(agent.root.iterdir()) == []


HEAVY = {"argparse", "urllib.request", "http.client", "ssl", "email", "difflib", "dataclasses", "inspect",
         "subprocess", "tempfile", "tomllib", "tomli", "yaml", "typing", "socket", "traceback", "copy"}  # fmt: skip


@pytest.mark.parametrize("image", [False, True], ids=["empty-root", "image-root"])
@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("eksctl-al2.sh", set()),  # bootstrap.sh dialect: no YAML, no TOML
        ("karpenter-al2023.mime", {"yaml"}),  # NodeConfig YAML: PyYAML only
    ],
)
def test_a_run_imports_only_what_its_input_needs(tmp_path, name, allowed, image):
    """Start-up time: a whole run (IMDS, user data, plan, write) loads none of the heavy modules it does not need;
    on an image root too, whose containerd config.toml the bootstrap_agent role read at bake time."""
    from bootstrap_helpers import INPUTS

    from nodeforge.bootstrap.containerd import cache_base_config
    from nodeforge.vm.imds import FakeImdsServer

    if image:
        config = tmp_path / "etc/containerd/config.toml"
        config.parent.mkdir(parents=True)
        config.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "pause:3.10"\n')
        assert cache_base_config(tmp_path) == "created"

    code = (
        "import sys; from nodeforge.bootstrap.cli import main; code = main(sys.argv[1:]); "
        "print(' '.join(sorted(sys.modules)), file=sys.stderr); sys.exit(code)"
    )
    path = os.pathsep.join([str(SRC), str(Path(yaml.__file__).parents[1])])  # -S: no site-packages but these
    with FakeImdsServer() as state:
        state.user_data = (INPUTS / name).read_bytes()
        completed = subprocess.run(
            [sys.executable, "-S", "-c", code, "--root", str(tmp_path), "--imds-endpoint", state.endpoint,
             "--cpus", "2", "--kubelet-version", "1.31", "--no-start"],
            capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path},
            check=False,
        )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    loaded = set(completed.stderr.strip().splitlines()[-1].split())
    assert (HEAVY - allowed) & loaded == set()
    assert allowed <= loaded
