"""The main job end to end: bake a local node image with Packer, verify it, boot it under QEMU."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nodeforge.bake import docker

# module-scoped fixtures (one bake, one instance): keep this file on one xdist worker
pytestmark = pytest.mark.xdist_group("bake")


# the `baked` fixture (one bake per session) is in conftest.py


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
