"""Bootstrap agent benchmark: the whole process, run as the node's unit runs it, as a ratio to ``python3 -c pass``.

What runs is what a node runs (issue 12, section 5):
- the interpreter: the OS's ``/usr/bin/python3`` when it has PyYAML (Debian's python3-yaml, as the image's), else
  ``--python``; ``python3 -c pass`` is timed on the same interpreter;
- the agent laid out as the bootstrap_agent role installs it (``LIB/nodeforge/__init__.py`` and
  ``LIB/nodeforge/bootstrap/``) and byte-compiled by that interpreter, as the role's handler does;
- the command: the role's wrapper (templates/nodeforge-bootstrap.sh.j2) rendered for LIB and that interpreter, with
  the arguments of the unit's ExecStart (templates/nodeforge-bootstrap.service.j2, the role's defaults), plus
  ``--root`` (a fresh copy of an image root), ``--imds-endpoint`` (the fake IMDS on 127.0.0.1), ``--cpus 2`` and
  ``--kubelet-version`` (off ``/`` the agent does not run ``kubelet --version``; on a node it does, as
  amazon-eks-ami's bootstrap.sh does too);
- the image root holds what the agent reads on a node: the containerd role's config.toml (read and completed on
  every run) with the reading of it the bootstrap_agent role records at bake time, and the ECR credential provider
  (its config is written when it is there).

For each dialect (user data as Karpenter, managed node groups and eksctl send it) the loop alternates
``python3 -c pass`` and the agent, so both see the same machine load; medians are printed, and the agent's as a
multiple of the bare interpreter's. Target (issue 12): <= 6 for every dialect. The CPU time (user + system) of
each is printed too: on a loaded machine it moves less than the wall time, which also holds the waits (fsync,
IMDS round trips, the run queue). Also printed: in-process medians
(first run, re-run with nothing to change) and peak memory. Asserts nothing.
Run: .venv/bin/python bench/bootstrap.py [--runs N] [--python PATH]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jinja2
import yaml

REPO = Path(__file__).resolve().parents[1]
INPUTS = REPO / "tests" / "unit" / "bootstrap" / "inputs"
ROLE = REPO / "roles" / "bootstrap_agent"
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "unit" / "bootstrap" / "nodeadm_cases"))

from nodeadm_case_helpers import baked_containerd_config  # noqa: E402

from nodeforge.bootstrap.cli import main  # noqa: E402
from nodeforge.bootstrap.containerd import cache_base_config  # noqa: E402
from nodeforge.vm.imds import FakeImdsServer  # noqa: E402

DIALECTS = {
    "bootstrap.sh (eksctl AL2 shell script)": "eksctl-al2.sh",
    "bootstrap.sh (managed node group MIME)": "mng-al2.mime",
    "nodeconfig (Karpenter AL2023 MIME, YAML)": "karpenter-al2023.mime",
    "toml (Karpenter Bottlerocket)": "karpenter-bottlerocket.toml",
}
CONTAINERD_VERSION = "1.6.20"  # Debian 12's, as on the image: a version 2 config.toml
CREDENTIAL_PROVIDER = "etc/eks/image-credential-provider/ecr-credential-provider"
TARGET = 6


def node_python(requested: str | None) -> str:
    """The interpreter a Debian node runs the agent on (its python3, PyYAML from python3-yaml)."""
    if requested:
        return requested
    system = "/usr/bin/python3"
    if Path(system).exists() and subprocess.run([system, "-I", "-c", "import yaml"], check=False).returncode == 0:
        return system
    return sys.executable


def install(lib: Path, python: str) -> None:
    """The agent's files as the role copies them (.py and .json, no caches), byte-compiled by ``python``."""
    source = REPO / "src" / "nodeforge"
    (lib / "nodeforge").mkdir(parents=True)
    shutil.copy(source / "__init__.py", lib / "nodeforge" / "__init__.py")
    for path in sorted((source / "bootstrap").rglob("*")):
        if path.is_file() and path.suffix in (".py", ".json") and "__pycache__" not in path.parts:
            target = lib / "nodeforge" / "bootstrap" / path.relative_to(source / "bootstrap")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    subprocess.run([python, "-m", "compileall", "-q", "-f", str(lib)], check=True, env={"PATH": os.environ["PATH"]})


def unit_command(lib: Path, python: str) -> list[str]:
    """The unit's ExecStart, with the rendered wrapper in place of bootstrap_agent_bin_path."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    variables = {**defaults, "ansible_managed": "bench", "bootstrap_agent_lib_dir": str(lib)}
    variables["bootstrap_agent_interpreter"] = python
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

    def render(name: str) -> str:
        return environment.from_string((ROLE / "templates" / name).read_text(encoding="utf-8")).render(**variables)

    wrapper = lib / "nodeforge-bootstrap"
    wrapper.write_text(render("nodeforge-bootstrap.sh.j2"))
    wrapper.chmod(0o755)
    unit = render("nodeforge-bootstrap.service.j2")
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv[0] == defaults["bootstrap_agent_bin_path"], exec_start
    return [str(wrapper), *argv[1:]]


def image_root(path: Path) -> Path:
    """What the agent reads on the image besides the user data and IMDS."""
    config = path / "etc/containerd/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(baked_containerd_config(CONTAINERD_VERSION), encoding="utf-8")
    assert cache_base_config(path) == "created"  # as the bootstrap_agent role records it at bake time
    provider = path / CREDENTIAL_PROVIDER
    provider.parent.mkdir(parents=True)
    provider.write_text("#!/bin/sh\n", encoding="utf-8")
    provider.chmod(0o755)
    return path


def common(endpoint: str, root: Path) -> list[str]:
    return ["--root", str(root), "--imds-endpoint", endpoint, "--cpus", "2", "--kubelet-version", "1.31"]


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the process and its children) of one run."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read() if process.stderr else b""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{shlex.join(command)} failed: {stderr.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def whole_process(state: object, runs: int, python: str, command: list[str], image: Path) -> dict[str, dict]:
    """Per dialect: medians of ``python3 -c pass`` and of the agent, interleaved, and their ratio."""
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}  # a unit's environment: nothing of this shell's
    bare = [python, "-c", "pass"]
    figures = {}
    scratch = Path(tempfile.mkdtemp())
    for label, name in DIALECTS.items():
        state.user_data = (INPUTS / name).read_bytes()  # type: ignore[attr-defined]
        baseline, times = [], []
        for attempt in range(runs + 1):  # the first, a warm-up, is not counted
            root = scratch / f"root-{attempt}"
            shutil.copytree(image, root)
            bare_time = timed(bare, env)
            agent_time = timed([*command, *common(state.endpoint, root)], env)  # type: ignore[attr-defined]
            shutil.rmtree(root)
            if attempt:
                baseline.append(bare_time)
                times.append(agent_time)
        wall = [statistics.median(run[0] for run in series) for series in (baseline, times)]
        cpu = [statistics.median(run[1] for run in series) for series in (baseline, times)]
        figures[label] = {
            "python3 -c pass (ms)": round(wall[0] * 1000, 1),
            "agent whole process (ms)": round(wall[1] * 1000, 1),
            "ratio": round(wall[1] / wall[0], 2),
            "CPU: python3 -c pass / agent (ms)": f"{cpu[0] * 1000:.1f} / {cpu[1] * 1000:.1f}",
            "CPU ratio": round(cpu[1] / cpu[0], 2),
        }
    shutil.rmtree(scratch)
    return figures


def in_process(endpoint: str, runs: int, image: Path) -> tuple[float, float]:
    """Median seconds of a first run (files created) and of a re-run (all unchanged), in this process."""
    first, again = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as scratch:
            root = Path(scratch) / "root"
            shutil.copytree(image, root)
            for bucket in (first, again):
                started = time.perf_counter()
                code = main([*common(endpoint, root), "--no-start"], out=io.StringIO(), err=io.StringIO())
                bucket.append(time.perf_counter() - started)
                assert code == 0
    return statistics.median(first), statistics.median(again)


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--python", help="the node's interpreter (default: /usr/bin/python3 if it has PyYAML)")
    args = parser.parse_args()
    python = node_python(args.python)
    with tempfile.TemporaryDirectory() as work:
        lib, image = Path(work) / "lib", image_root(Path(work) / "image")
        install(lib, python)
        command = unit_command(lib, python)
        version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"], capture_output=True)
        figures: dict[str, object] = {
            "interpreter": f"{python} ({version.stdout.decode().strip()})",
            "command": shlex.join([*command, *common("URL", Path("ROOT"))]),
        }
        with FakeImdsServer() as state:
            whole = whole_process(state, args.runs, python, command, image)
            figures["whole process, interleaved with python3 -c pass"] = whole
            in_process_figures = {}
            for label, name in DIALECTS.items():
                state.user_data = (INPUTS / name).read_bytes()
                first, again = in_process(state.endpoint, max(3, args.runs // 2), image)
                in_process_figures[label] = {
                    "first run (ms)": round(first * 1000, 1),
                    "re-run, unchanged (ms)": round(again * 1000, 1),
                }
            figures["in process (this interpreter)"] = in_process_figures
    figures["peak memory"] = {
        "in-process bench (MiB)": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "largest subprocess (MiB)": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }
    worst = max(whole, key=lambda label: whole[label]["ratio"])
    figures["headline"] = (
        f"agent / python3 -c pass: worst dialect {worst}: {whole[worst]['ratio']} (target <= {TARGET})"
    )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main_()
