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


def test_package_digests_recorded(host, manifest):
    """Every package has a sha256 in the manifest; Debian's is the digest of its dpkg md5sums file."""
    digests = manifest["package_digests"]
    assert digests["algorithm"] == "sha256"
    assert len(digests["digests"]) > 50
    for name in ("containerd", "runc"):
        assert len(digests["digests"][name]) == 64, name
    md5sums = host.file("/var/lib/dpkg/info/containerd.md5sums")
    if md5sums.exists:
        assert digests["digests"]["containerd"] == md5sums.sha256sum
