"""kubelet_version = "latest": the newest build of a minor, listed from S3 (moto), the fixture mirror, a folder."""

from __future__ import annotations

import re

import boto3
import pytest
from moto import mock_aws

from nodeforge.bake.fixtures import Release, build_artifact_tree
from nodeforge.bake.mirror import ArtifactMirror
from nodeforge.releases import ReleaseLookupError, kubelet_releases, latest_from_s3, latest_release, s3_location

# Builds present in the sources below: several patches and dates per minor, arm64 lagging behind amd64.
BUILDS = [
    Release("1.33.9", "2026-03-02"),
    Release("1.33.13", "2026-06-21"),
    Release("1.33.13", "2026-07-05"),
    Release("1.33.13", "2026-06-21", "arm64"),
    Release("1.34.9", "2026-07-05"),
    Release("1.35.6", "2026-07-05"),
    Release("1.35.10", "2026-01-01"),  # a higher patch wins over a later date: versions sort numerically
    Release("1.3.99", "2030-01-01"),  # minor 1.3: must never be taken for 1.33-1.35
]
EXPECTED = [
    ("1.33", "x86_64", "1.33.13", "2026-07-05"),
    ("1.33", "arm64", "1.33.13", "2026-06-21"),
    ("1.34", "amd64", "1.34.9", "2026-07-05"),
    ("1.35", "x86_64", "1.35.10", "2026-01-01"),
    ("1.3", "x86_64", "1.3.99", "2030-01-01"),
]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("artifacts")
    build_artifact_tree(root, BUILDS)
    return root


@pytest.fixture(scope="module")
def s3(tree):
    with mock_aws():  # moto sets fake credentials while it is active
        client = boto3.client("s3", region_name="us-west-2")
        client.create_bucket(Bucket="amazon-eks", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        for path in sorted(tree.rglob("*")):
            if path.is_file():
                client.put_object(Bucket="amazon-eks", Key=str(path.relative_to(tree)), Body=path.read_bytes())
        # Noise the bucket layout also has: other OSes, other tools, a minor that only shares the prefix.
        client.put_object(Bucket="amazon-eks", Key="1.33.13/2026-08-01/bin/windows/amd64/kubelet.exe", Body=b"x")
        client.put_object(Bucket="amazon-eks", Key="1.34.99/2026-08-01/bin/linux/amd64/kubectl", Body=b"x")
        yield client


@pytest.mark.parametrize(("minor", "arch", "version", "build_date"), EXPECTED)
def test_s3_listing(s3, minor, arch, version, build_date):
    for source in ("https://amazon-eks.s3.us-west-2.amazonaws.com", "s3://amazon-eks"):
        release = latest_release(source, minor, arch, s3_client=s3)
        assert (release.version, release.build_date) == (version, build_date), source


def test_s3_listing_reads_every_page(s3):
    # Pages of 2 keys: the newest build is on a later page than the first match.
    release = latest_from_s3("amazon-eks", "", "1.33", "amd64", s3, page_size=2)
    assert (release.version, release.build_date) == ("1.33.13", "2026-07-05")
    assert (
        len(
            list(
                s3.get_paginator("list_objects_v2").paginate(
                    Bucket="amazon-eks", Prefix="1.33.", PaginationConfig={"PageSize": 2}
                )
            )
        )
        > 3
    )


def test_s3_missing_minor_names_the_bucket(s3):
    with pytest.raises(ReleaseLookupError, match=r"no kubelet build of Kubernetes 1.36 .* s3://amazon-eks/"):
        latest_release("s3://amazon-eks", "1.36", s3_client=s3)


@pytest.mark.parametrize(("minor", "arch", "version", "build_date"), EXPECTED)
def test_mirror_directory_listing(tree, minor, arch, version, build_date):
    with ArtifactMirror(tree) as mirror:
        release = latest_release(mirror.url, minor, arch)
    assert (release.version, release.build_date, release.arch) == (
        version,
        build_date,
        "arm64" if arch == "arm64" else "amd64",
    )


@pytest.mark.parametrize(("minor", "arch", "version", "build_date"), EXPECTED)
def test_folder(tree, minor, arch, version, build_date):
    release = latest_release(str(tree), minor, arch)
    assert (release.version, release.build_date) == (version, build_date)


def test_the_fixture_mirror_serves_every_catalogued_minor(tmp_path):
    releases = kubelet_releases()
    assert {"1.33", "1.34", "1.35"} <= set(releases)
    build_artifact_tree(tmp_path, list(releases.values()))
    with ArtifactMirror(tmp_path) as mirror:
        for minor, pinned in releases.items():
            assert latest_release(mirror.url, minor) == pinned


def test_bad_inputs(tree):
    with pytest.raises(ReleaseLookupError, match="not a Kubernetes minor"):
        latest_release(str(tree), "1.33.1")
    with pytest.raises(ReleaseLookupError, match="unknown architecture"):
        latest_release(str(tree), "1.33", "ppc64le")
    with pytest.raises(ReleaseLookupError, match="neither"):
        latest_release("ftp://example.invalid/", "1.33")
    with pytest.raises(ReleaseLookupError, match="artifact folder not found"):
        latest_release(str(tree / "nope"), "1.33")
    with pytest.raises(ReleaseLookupError, match=re.escape("cannot list http://127.0.0.1:9/")):
        latest_release("http://127.0.0.1:9", "1.33")


def test_s3_locations():
    assert s3_location("https://amazon-eks.s3.us-west-2.amazonaws.com") == ("amazon-eks", "", "us-west-2")
    assert s3_location("https://amazon-eks.s3.amazonaws.com/mirror/") == ("amazon-eks", "mirror", None)
    assert s3_location("https://s3.eu-west-1.amazonaws.com/my-bucket/eks") == ("my-bucket", "eks", "eu-west-1")
    assert s3_location("s3://b/p") == ("b", "p", None)
    assert s3_location("http://127.0.0.1:8080") is None
