"""Fixture artifacts, the loopback mirror and the release catalog."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
import urllib.request
from pathlib import Path

import pytest

from nodeforge.bake.fixtures import FIXTURE_MARKER, Release, build_artifact_tree, build_oci_image
from nodeforge.bake.mirror import ArtifactMirror
from nodeforge.releases import kubelet_releases

REPO = Path(__file__).resolve().parents[2]


def test_catalog_read_from_role_defaults():
    releases = kubelet_releases(REPO)
    assert releases["1.31"].version.startswith("1.31.")
    for minor, release in releases.items():
        assert release.version.startswith(f"{minor}.")
        assert len(release.build_date) == 10


def test_artifact_tree_layout_and_digests(tmp_path):
    release = Release("1.31.3", "2024-12-12", "arm64")
    digests = build_artifact_tree(tmp_path, [release])
    assert len(digests) == 3
    for rel, digest in digests.items():
        path = tmp_path / rel
        assert rel.startswith("1.31.3/2024-12-12/bin/linux/arm64/")
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        assert (tmp_path / f"{rel}.sha256").read_text() == f"{digest}  {path.name}\n"
        assert FIXTURE_MARKER.encode() in path.read_bytes()
        assert path.stat().st_mode & 0o111


def test_fixture_kubelet_answers_version(tmp_path):
    build_artifact_tree(tmp_path, [Release("1.30.7", "2024-12-12")])
    out = subprocess.run(
        [tmp_path / "1.30.7/2024-12-12/bin/linux/amd64/kubelet", "--version"], capture_output=True, text=True
    )
    assert out.stdout.strip() == "Kubernetes v1.30.7"


def test_mirror_serves_loopback_only(tmp_path):
    build_artifact_tree(tmp_path, [Release("1.31.3", "2024-12-12")])
    with ArtifactMirror(tmp_path) as mirror:
        assert mirror.url.startswith("http://127.0.0.1:")
        body = urllib.request.urlopen(f"{mirror.url}/1.31.3/2024-12-12/bin/linux/amd64/kubelet.sha256").read()
        assert body.decode().endswith("  kubelet\n")


def test_mirror_refuses_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="artifact mirror folder not found"):
        ArtifactMirror(tmp_path / "nope")


@pytest.mark.skipif(not Path("/bin/busybox").exists(), reason="busybox-static not installed")
def test_oci_image_is_a_valid_layout(tmp_path):
    out = build_oci_image(tmp_path / "img.tar")
    with tarfile.open(out) as archive:
        names = archive.getnames()
        index = json.loads(archive.extractfile("index.json").read())
        manifest_digest = index["manifests"][0]["digest"].split(":")[1]
        manifest = json.loads(archive.extractfile(f"blobs/sha256/{manifest_digest}").read())
        for blob in [manifest["config"], *manifest["layers"]]:
            data = archive.extractfile(f"blobs/sha256/{blob['digest'].split(':')[1]}").read()
            assert hashlib.sha256(data).hexdigest() == blob["digest"].split(":")[1]
            assert len(data) == blob["size"]
    assert "oci-layout" in names
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"].startswith("localhost/")


def test_ssm_agent_fixture_deb_is_labelled_and_reproducible(tmp_path):
    from nodeforge.bake.fixtures import SSM_AGENT_DEB_PATH, build_ssm_agent_deb

    digest = build_ssm_agent_deb(tmp_path)
    deb = tmp_path / SSM_AGENT_DEB_PATH
    assert hashlib.sha256(deb.read_bytes()).hexdigest() == digest
    assert (tmp_path / f"{SSM_AGENT_DEB_PATH}.sha256").read_text() == f"{digest}  amazon-ssm-agent.deb\n"
    assert build_ssm_agent_deb(tmp_path / "again") == digest, "same bytes every time"
    info = subprocess.run(["dpkg-deb", "-f", deb, "Package", "Version", "Description"], capture_output=True, text=True)
    assert "Package: amazon-ssm-agent" in info.stdout and "nodeforge.fixture" in info.stdout
    assert FIXTURE_MARKER in info.stdout
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    assert "./usr/bin/amazon-ssm-agent" in listing and "./lib/systemd/system/amazon-ssm-agent.service" in listing
