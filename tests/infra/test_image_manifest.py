"""image_manifest: the component manifest written at bake time matches what is installed."""

import json

import pytest

pytestmark = pytest.mark.image_manifest


@pytest.fixture(scope="module")
def manifest(host):
    f = host.file("/etc/nodeforge/image-manifest.json")
    assert f.user == "root" and f.mode == 0o644
    return json.loads(f.content_string)


def test_packages_recorded(host, manifest):
    assert manifest["packages"]["containerd"] == host.package("containerd").version
    assert len(manifest["packages"]) > 50


def test_binaries_hashed(host, manifest):
    for name, info in manifest["binaries"].items():
        assert info["sha256"] == host.file(info["path"]).sha256sum, name
    assert "containerd" in manifest["binaries"]
    assert manifest["binaries"]["containerd"]["version"].startswith("containerd")
