"""Every Molecule scenario: create, converge, idempotence (a second converge changes nothing), verify; the
scenarios of the roles the whole node applies as they are (WHOLE_NODE_ROLES) take their second converge from the
whole node's re-converge of the baked image instead.

The default scenario (the whole node, playbooks/node.yml, in a container) is opt-in here
(NODEFORGE_MOLECULE_DEFAULT=1): the test run proves the same on what the bake ships, where it does not repeat the
whole node's converge twice more. Its converge is the Packer build's, its checks run on the live build instance
(verify-build) and on the booted node (verify --ssh), and its idempotence on an instance of the baked image
(tests/e2e/test_bake.py::test_baked_image_reconverges_with_no_change).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))
# Packages a scenario's converge installs that no other scenario does: when the run has its package cache
# (tests/conftest.py), its transfer log must show them served during the scenario, i.e. the converge's apt traffic
# went through the cache.
CACHE_PROBES = {"os_packages": ("jq", "libjq1")}
# nice(1) of the scenarios that are not on the run's longest paths (see test_molecule_scenario)
MOLECULE_NICENESS = 5
REFRESH_TASK = "TASK [os_packages : Refresh the apt package index when packages are missing]"


def index_refreshes(text: str) -> int:
    """How many times the converges in a Molecule log refreshed the apt index (the task ran, not skipped)."""
    blocks = text.split(REFRESH_TASK)[1:]
    return sum(1 for block in blocks if re.search(r"^(ok|changed): \[", block.split("TASK [", 1)[0], re.MULTILINE))


def test_every_role_has_a_scenario():
    roles = {p.name for p in (REPO / "roles").iterdir() if (p / "tasks").is_dir()}
    assert roles <= set(SCENARIOS), f"roles without a scenario: {roles - set(SCENARIOS)}"
    assert "default" in SCENARIOS


# Scenarios that converge their roles as playbooks/node.yml does (roles only, no tasks of their own, no host
# variables; test_whole_node_role_scenarios_only_apply_roles checks it). Here they run destroy, create, prepare,
# converge, verify, destroy: the role alone on a bare instance, and its checks. Their second converge is the whole
# node's, on the baked image (test_bake.py::test_baked_image_reconverges_with_no_change runs every one of these roles
# again with the build's variables and fails on any change). `molecule test -s NAME` keeps the full sequence.
WHOLE_NODE_ROLES = (
    "bootstrap_agent", "cloud_init", "iam_authenticator", "image_manifest", "kubelet", "node_base", "ssm_agent",
    "target_python",
)  # fmt: skip
PLAY_KEYS = {"name", "hosts", "become", "gather_facts", "roles"}


def test_whole_node_role_scenarios_only_apply_roles():
    node = yaml.safe_load((REPO / "playbooks" / "node.yml").read_text())
    node_roles = {entry["role"] for play in node for entry in play.get("roles", [])}
    for scenario in WHOLE_NODE_ROLES:
        plays = yaml.safe_load((REPO / "molecule" / scenario / "converge.yml").read_text())
        for play in plays:
            assert set(play) <= PLAY_KEYS, (scenario, sorted(set(play) - PLAY_KEYS))
            assert {entry["role"] for entry in play["roles"]} <= node_roles, scenario
        config = yaml.safe_load((REPO / "molecule" / scenario / "molecule.yml").read_text())
        assert "inventory" not in config.get("provisioner", {}), scenario


RUN_DEFAULT = os.environ.get("NODEFORGE_MOLECULE_DEFAULT") == "1"
OPT_IN = pytest.mark.skipif(
    not RUN_DEFAULT,
    reason="the whole node's scenario is opt-in (NODEFORGE_MOLECULE_DEFAULT=1): the bake proves it on the built image",
)


def _marks(scenario: str) -> list[pytest.MarkDecorator]:
    marks = [pytest.mark.xdist_group(f"molecule-{scenario}")]
    return [*marks, OPT_IN] if scenario == "default" else marks


# Each scenario has its own instance (nodeforge-<scenario>), so scenarios run in parallel under pytest-xdist.
@pytest.mark.parametrize("scenario", [pytest.param(s, marks=_marks(s)) for s in SCENARIOS])
def test_molecule_scenario(scenario, mirror, tmp_path):
    env = dict(
        os.environ,
        NODEFORGE_ARTIFACT_SOURCE=mirror.url,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        ANSIBLE_FORCE_COLOR="0",
        PY_COLORS="0",
        NO_COLOR="1",
    )
    log = tmp_path / f"molecule-{scenario}.log"
    cache_log = Path(os.environ.get("NODEFORGE_APT_CACHE_LOG") or tmp_path / "no-cache.log")
    cache_offset = cache_log.stat().st_size if cache_log.exists() else 0
    # The run's longest paths are the bake (its Packer converge and QEMU boots, tests/e2e/conftest.py) and the whole
    # node (default): the other scenarios' controllers (Ansible, testinfra) yield the CPU to them when it is short.
    if scenario in WHOLE_NODE_ROLES:  # molecule test without its idempotence step (.config/molecule/config.yml)
        env["NODEFORGE_MOLECULE_SECOND_CONVERGE"] = "side_effect"
    command = ["molecule", "test", "-s", scenario]
    if scenario != "default":
        command = ["nice", "-n", str(MOLECULE_NICENESS), *command]
    with log.open("w") as handle:
        proc = subprocess.run(command, cwd=REPO, env=env, stdout=handle, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, f"molecule test -s {scenario} failed:\n" + "\n".join(text.splitlines()[-60:])
    idempotence = "Idempotence completed successfully" in text or "idempotence: Executed: Successful" in text
    assert idempotence == (scenario not in WHOLE_NODE_ROLES), f"{scenario}: idempotence step ran: {idempotence}"
    assert " passed" in text
    if scenario == "default":  # the whole node includes os_packages from five roles: one index refresh in all
        assert text.count(REFRESH_TASK) >= 5 and index_refreshes(text) == 1, "apt index refreshed more than once"
    if scenario in CACHE_PROBES and os.environ.get("NODEFORGE_APT_CACHE_LOG"):
        lines = cache_log.read_bytes()[cache_offset:].decode(errors="replace").splitlines()
        served = {line.rsplit("/", 1)[-1].split("_", 1)[0] for line in lines if "|O|" in line and line.endswith(".deb")}
        missing = set(CACHE_PROBES[scenario]) - served
        assert not missing, f"{scenario}: {sorted(missing)} not served by the package cache ({cache_log})"
