"""packer/eks-node/scripts/merge_versions.py: the manifest's last post-processor."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from packer_support import TEMPLATE_DIR

SCRIPT = TEMPLATE_DIR / "scripts" / "merge_versions.py"

COMPONENTS = {
    "schema": 1,
    "os": {"distribution": "Amazon", "version": "2023", "family": "RedHat"},
    "arch": "aarch64",
    "binaries": {"containerd": {"path": "/usr/bin/containerd", "sha256": "0" * 64, "version": "containerd 1.7.27"}},
    "packages": {"kernel": "6.1.119", "containerd": "1.7.27", "runc": "1.1.14", "bash": "5.2.15"},
}


def build(run: str, build_id: str) -> dict:
    return {
        "name": "eks-node",
        "builder_type": "amazon-ebs",
        "build_time": 1735787045,
        "files": None,
        "artifact_id": "us-west-2:ami-0123456789abcdef0",
        "packer_run_uuid": run,
        "custom_data": {
            "kubernetes_version": "1.31",
            "os": "al2023",
            "arch": "arm64",
            "os_version": "2023",
            "containerd_version": "",
            "runc_version": "",
            "kernel_version": "",
            "build_id": build_id,
        },
    }


@pytest.fixture
def manifest(tmp_path):
    path = tmp_path / "manifest.json"
    document = {"builds": [build("run-1", "b1"), build("run-2", "b2")], "last_run_uuid": "run-2"}
    path.write_text(json.dumps(document))
    return path


def merge(manifest, components, build_id="b2"):
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(manifest), str(components), build_id],
        capture_output=True,
        text=True,
        check=False,
    )


def test_fills_the_measured_versions_of_the_last_build(manifest, tmp_path):
    components = tmp_path / "components.json"
    components.write_text(json.dumps(COMPONENTS))
    proc = merge(manifest, components)
    assert proc.returncode == 0, proc.stderr
    old, new = json.loads(manifest.read_text())["builds"]
    assert new["custom_data"] == {
        **build("run-2", "b2")["custom_data"],
        "kernel_version": "6.1.119",
        "containerd_version": "1.7.27",
        "runc_version": "1.1.14",
        "os_version": "2023",
    }
    assert old == build("run-1", "b1"), "earlier runs stay as they were"
    assert all(isinstance(value, str) for value in new["custom_data"].values())


def test_missing_component_manifest_leaves_the_manifest(manifest, tmp_path):
    before = manifest.read_text()
    proc = merge(manifest, tmp_path / "absent.json")
    assert proc.returncode == 0
    assert "manifest left as written" in proc.stderr
    assert manifest.read_text() == before


def test_unknown_build_is_an_error(manifest, tmp_path):
    components = tmp_path / "components.json"
    components.write_text(json.dumps(COMPONENTS))
    proc = merge(manifest, components, build_id="b1")  # b1 is not of the last run
    assert proc.returncode == 1
    assert "no build 'b1'" in proc.stderr
