"""The main job end to end: bake a local node image with Packer, verify it, boot it under QEMU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from test_molecule import REFRESH_TASK, index_refreshes

from nodeforge.bake import docker
from nodeforge.bake.mirror import ArtifactMirror
from nodeforge.paths import cache_dir, repo_root

# module-scoped fixtures (one bake, one instance): keep this file on one xdist worker
pytestmark = pytest.mark.xdist_group("bake")


# the `baked` fixture (one bake per session) is in conftest.py

# The whole node converges once per test run, in the Packer build (playbooks/node.yml, what `molecule test`'s default
# scenario converges in a container). Its idempotence is proven on what the build committed: an instance of the
# baked image (systemd, the build's docker run options) converged again with the build's own variables (read from
# Packer's log: the `--extra-vars` it handed to ansible-playbook) must change nothing. Sysprep has run in that image,
# as it had when Molecule's idempotence step re-converged its instance; but this instance has booted since, and its
# systemd wrote a machine-id and a journal, which sysprep cleans again (changes a booted image must show). Every other
# task must report no change.
PACKER_EXTRA_VARS = re.compile(r"Executing Ansible: ansible-playbook .*?--extra-vars (\{.*?\}) --")
RECAP = re.compile(r"^\S+\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)
# the only build variables that cannot be reused as they were: the build's artifact mirror is gone with the build
MIRROR_VARS = ("nodeforge_artifact_source", "ssm_agent_package_source")
# sysprep's cleaning of what the instance's own boot wrote (systemd's machine-id, journald's files, the logs)
BOOT_TRACES_CLEANED = {
    "sysprep : Empty /etc/machine-id",
    "sysprep : Remove rotated logs and journal files",
    "sysprep : Empty logs, keeping the files and their modes",
}


def build_extra_vars(packer_log: Path) -> dict[str, object]:
    match = PACKER_EXTRA_VARS.search(packer_log.read_text(errors="replace"))
    assert match, f"no ansible-playbook --extra-vars in {packer_log}"
    return json.loads(match.group(1))


def changed_tasks(log: str) -> list[str]:
    """The tasks of an ansible-playbook log that reported a change."""
    tasks, current = [], ""
    for line in log.splitlines():
        if line.startswith("TASK ["):
            current = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed: [") and current not in tasks:
            tasks.append(current)
    return tasks


def _reconverge(bake_run, tmp_path_factory) -> dict[str, object]:
    baked = bake_run.wait_image()
    work = tmp_path_factory.mktemp("reconverge")
    extra = build_extra_vars(bake_run.out / "packer.log")
    name = f"nodeforge-reconverge-{uuid.uuid4().hex[:6]}"
    docker.start_instance(baked.image, name)
    try:
        (work / "inventory.ini").write_text(f"{name} ansible_connection=community.docker.docker\n")
        with ArtifactMirror(cache_dir() / "fixtures" / "artifacts") as mirror:
            extra.update(dict.fromkeys(MIRROR_VARS, mirror.url))
            repo = repo_root()
            env = dict(
                os.environ,
                ANSIBLE_CONFIG=str(repo / "ansible.cfg"),
                ANSIBLE_ROLES_PATH=str(repo / "roles"),
                ANSIBLE_FORCE_COLOR="0",
                PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            )
            command = ["ansible-playbook", "-i", str(work / "inventory.ini"), "--extra-vars", json.dumps(extra),
                       str(repo / "playbooks" / "node.yml")]  # fmt: skip
            proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=repo, check=False)
    finally:
        docker.remove(name)
    log = work / "reconverge.log"
    log.write_text(proc.stdout + proc.stderr)
    return {"rc": proc.returncode, "log": log, "extra_vars": extra}


BAKE_RUNS = {"reconverge": _reconverge}


def test_baked_image_reconverges_with_no_change(bake_runs):
    run = bake_runs.result("reconverge")
    text = run["log"].read_text()
    assert run["rc"] == 0, f"the re-converge failed ({run['log']}):\n" + "\n".join(text.splitlines()[-40:])
    recap = RECAP.findall(text)
    assert len(recap) == 1, recap  # one host
    ok, changed, unreachable, failed = (int(n) for n in recap[0])
    assert (unreachable, failed) == (0, 0), run["log"]
    changed_names = changed_tasks(text)
    assert set(changed_names) <= BOOT_TRACES_CLEANED, (changed_names, run["log"])
    assert changed == len(changed_names)  # every change is one of those tasks, once
    assert ok > 200  # the whole node ran, not an empty play


def test_one_package_index_refresh_in_the_build(baked):
    """The whole node includes os_packages from several roles: the build refreshed the apt index once in all."""
    _, out = baked
    text = re.sub(r"^\s*docker\.node: ", "", (out / "packer.log").read_text(errors="replace"), flags=re.M)
    assert text.count(REFRESH_TASK) >= 5 and index_refreshes(text) == 1, "apt index refreshed more than once"


def test_build_container_ran_in_the_lead_cgroup(baked, bake_run):
    """When the run has its lead CPU cgroup (conftest.LeadCpu), Packer started the build container under it."""
    if bake_run.lead is None:
        pytest.skip("no writable cgroup v1 cpu hierarchy: the build ran with Docker's default cgroup")
    _, out = baked
    run_command = next(line for line in (out / "packer.log").read_text(errors="replace").splitlines()
                       if "Run command: docker run" in line)  # fmt: skip
    assert f"--cgroup-parent {bake_run.lead.docker_parent} " in run_command, run_command


def test_checks_pass_against_the_image(baked):
    report, _ = baked
    assert report.verify["failed"] == 0
    assert report.verify["passed"] >= 60


def test_image_boots_as_a_node(baked):
    report, _ = baked
    assert report.boot["state"] == "running"
    assert report.boot["failed_units"] == []
    assert report.boot["units"]["containerd"] == "active"
    assert "ext4" in report.boot["root"] and " rw" in report.boot["root"]


def test_manifest_written(baked):
    report, _ = baked
    manifest = json.loads(Path(report.manifest).read_text())
    build = manifest["builds"][-1]
    assert build["builder_type"] == "docker"
    assert build["custom_data"]["kubernetes_version"] == "1.31"
    assert build["custom_data"]["kubelet_version"] == "1.31.3"
    assert build["custom_data"]["os"] == "debian12" and build["custom_data"]["arch"] == "x86_64"
    assert build["artifact_id"]


def test_component_manifest_downloaded(baked, fixture_tree):
    report, _ = baked
    components = json.loads(Path(report.components).read_text())
    kubelet = components["binaries"]["kubelet"]
    assert kubelet["version"] == "Kubernetes v1.31.3"
    expected = (fixture_tree / "1.31.3/2024-12-12/bin/linux/amd64/kubelet.sha256").read_text().split()[0]
    assert kubelet["sha256"] == expected
    assert components["packages"]["containerd"]


def test_image_carries_no_secrets_or_identity(baked):
    """The exported root has no host keys, no machine-id content and no package lists."""
    report, _ = baked
    listing = subprocess.run(["tar", "-tvf", report.rootfs_tar], capture_output=True, text=True, check=True).stdout
    names = [line.split()[-1] for line in listing.splitlines()]
    assert not [n for n in names if "ssh_host_" in n]
    assert not [n for n in names if n.endswith("authorized_keys")]
    machine_id = [line for line in listing.splitlines() if line.endswith(" etc/machine-id")]
    assert machine_id and machine_id[0].split()[2] == "0"
    assert docker.image_labels(report.image)["org.nodeforge.kubernetes-version"] == "1.31"


def test_hygiene_scan_of_the_image_is_clean(baked):
    """The bake's hygiene stage scanned every member of the exported root and found nothing."""
    report, _ = baked
    assert report.hygiene["clean"], report.hygiene["findings"]
    assert report.hygiene["members"] > 10000


def test_manifest_ingests_into_catalog(baked, tmp_path):
    """The local bake's manifest follows the catalog's custom_data contract: ingest, then ask for the latest."""
    from typer.testing import CliRunner

    from nodeforge.cli import app

    report, _ = baked
    db = str(tmp_path / "catalog.db")
    runner = CliRunner()
    ingest = runner.invoke(app, ["catalog", "ingest", report.manifest, "--db", db])
    assert ingest.exit_code == 0, ingest.output
    latest = runner.invoke(
        app,
        ["catalog", "latest", "-k", "1.31", "--os", "debian12", "--arch", "x86_64", "--region", "local",
         "--channel", "candidate", "--db", db, "--output", "json"],
    )  # fmt: skip
    assert latest.exit_code == 0, latest.output
    assert "nodeforge/node:e2e-test" in latest.output


def test_verify_cis_table_of_the_image(baked):
    """`nodeforge verify --cis IMAGE --output json`: every CIS worker-node check, by id, passes on the image."""
    from typer.testing import CliRunner

    from nodeforge.cli import app

    report, _ = baked
    result = CliRunner().invoke(app, ["verify", report.image, "--cis", "--output", "json"])
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["checks"]
    ids = {c["id"] for c in checks}
    assert {"3.1.1", "3.1.2", "3.1.3", "3.1.4"} <= ids
    assert {f"3.2.{n}" for n in range(1, 10)} <= ids
    assert {c["title"] for c in checks if c["id"] == "legacy"} >= {
        "protect kernel defaults",
        "node identity",
        "node identity set at boot only",
        "cloud provider external",
    }
    assert [c for c in checks if c["status"] != "pass"] == []
