"""What an AMI's name, tags and DescribeImages entry say, in the naming and tagging of amazon-eks-ami and ours."""

from __future__ import annotations

import pytest

from nodeforge.catalog.facts import from_image, from_name, from_tags


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        # amazon-eks-ami's Makefile: AMI_VARIANT-node-<minor>-v<date>
        ("amazon-eks-node-1.30-v20241109", {"kubernetes_version": "1.30", "os": "al2", "arch": "x86_64"}),
        ("amazon-eks-arm64-node-1.29-v20240917", {"kubernetes_version": "1.29", "os": "al2", "arch": "arm64"}),
        ("amazon-eks-al2023-node-1.31-v20241109", {"kubernetes_version": "1.31", "os": "al2023", "arch": "x86_64"}),
        (
            "amazon-eks-al2023-arm64-fips-node-1.32-v20250101",
            {"kubernetes_version": "1.32", "os": "al2023", "arch": "arm64", "fips": "true"},
        ),
        (
            "amazon-eks-gpu-node-1.30-v20241109",
            {"kubernetes_version": "1.30", "os": "al2", "arch": "x86_64", "variant": "gpu"},
        ),
        # AWS's published AL2023 names
        (
            "amazon-eks-node-al2023-arm64-standard-1.31-v20241109",
            {"kubernetes_version": "1.31", "os": "al2023", "arch": "arm64"},
        ),
        (
            "amazon-eks-node-al2023-x86_64-nvidia-1.31-v20241109",
            {"kubernetes_version": "1.31", "os": "al2023", "arch": "x86_64", "variant": "nvidia"},
        ),
        # nodeforge's <prefix>-<minor>-<os>-<arch>-<build id>
        (
            "nodeforge-eks-node-1.31-al2023-arm64-20241109T101112Z",
            {"kubernetes_version": "1.31", "os": "al2023", "arch": "arm64"},
        ),
        ("my-golden-image-7", {}),
    ],
)
def test_names(name: str, facts: dict[str, str]) -> None:
    assert from_name(name) == facts


def test_tags_in_three_vocabularies() -> None:
    eks = from_tags(
        {
            "kubernetes": "1.31.2/2024-11-08/bin/linux/arm64",
            "containerd_version": "1.7.23",
            "source_ami_id": "ami-0123456789abcdef0",
            "docker_version": "25.0",
        }
    )
    assert eks == {
        "kubernetes_version": "1.31",
        "kubelet_version": "1.31.2",
        "arch": "arm64",
        "containerd_version": "1.7.23",
        "source_image": "ami-0123456789abcdef0",
    }
    ours = from_tags(
        {
            "os": "al2023",
            "arch": "x86_64",
            "kubernetes_version": "1.30",
            "source_ami": "ami-1",
            "nodeforge:os": "bottlerocket",
            "nodeforge:name": "n",
        }
    )
    assert (ours["os"], ours["image_name"], ours["source_image"]) == ("bottlerocket", "n", "ami-1")  # nodeforge:* first


def test_describe_images_entry() -> None:
    image = {
        "ImageId": "ami-1",
        "Name": "amazon-eks-node-1.30-v20241109",
        "Architecture": "arm64",  # what EC2 says wins over the name's arch
        "CreationDate": "2024-11-09T10:11:12.000Z",
        "Tags": [{"Key": "kubernetes_version", "Value": "1.30.6"}],
    }
    facts = from_image(image)
    assert facts["arch"] == "arm64" and facts["image_name"] == "amazon-eks-node-1.30-v20241109"
    assert facts["build_time"] == "1731147072"
    assert (facts["kubernetes_version"], facts["kubelet_version"]) == ("1.30", "1.30.6")  # a patch version tag
