"""nodeforge tag-images against moto EC2: the measured versions on every AMI copy and its snapshots."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from nodeforge.ami_tags import PLACEHOLDER, TagImagesError, tag_images
from nodeforge.packer_cli import app

MEASURED = {"containerd_version": "1.7.27", "runc_version": "1.3.3", "kernel_version": "5.10.245"}


def register(region: str) -> tuple[str, str]:
    ec2 = boto3.client("ec2", region_name=region)
    volume = ec2.create_volume(AvailabilityZone=f"{region}a", Size=20)
    snapshot = ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]  # the image's root snapshot
    image = ec2.register_image(
        Name=f"nodeforge-eks-node-1.31-al2-x86_64-b1-{region}",
        RootDeviceName="/dev/xvda",
        BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot}}],
    )["ImageId"]
    ec2.create_tags(Resources=[image], Tags=[{"Key": key, "Value": PLACEHOLDER} for key in MEASURED])
    (mapping,) = ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    return image, mapping["Ebs"]["SnapshotId"]


def manifest(tmp_path, artifact_id: str, **data: str):
    path = tmp_path / "manifest.json"
    build = {"packer_run_uuid": "run2", "artifact_id": artifact_id, "custom_data": {"build_id": "b1", **data}}
    old = {"packer_run_uuid": "run1", "artifact_id": "us-west-2:ami-00000000", "custom_data": {"build_id": "b1"}}
    path.write_text(json.dumps({"last_run_uuid": "run2", "builds": [old, build]}))
    return path


def tags_of(region: str, resource: str) -> dict[str, str]:
    ec2 = boto3.client("ec2", region_name=region)
    if resource.startswith("ami-"):
        found = ec2.describe_images(ImageIds=[resource])["Images"][0].get("Tags", [])
    else:
        found = ec2.describe_snapshots(SnapshotIds=[resource])["Snapshots"][0].get("Tags", [])
    return {tag["Key"]: tag["Value"] for tag in found}


@mock_aws
def test_every_copy_and_snapshot_gets_the_measured_versions(tmp_path):
    home, home_snapshot = register("us-west-2")
    copy, copy_snapshot = register("eu-west-1")
    path = manifest(tmp_path, f"us-west-2:{home},eu-west-1:{copy}", **MEASURED)
    result = CliRunner().invoke(app, ["tag-images", str(path), "b1"])
    assert result.exit_code == 0, result.output
    assert f"eu-west-1 {copy} (+1 snapshots): containerd_version=1.7.27" in result.output
    for region, resource in (("us-west-2", home), ("us-west-2", home_snapshot), ("eu-west-1", copy)):
        assert {key: tags_of(region, resource)[key] for key in MEASURED} == MEASURED
    assert tags_of("eu-west-1", copy_snapshot)["kernel_version"] == "5.10.245"


@mock_aws
def test_unmeasured_versions_fail_the_step(tmp_path):
    image, _ = register("us-west-2")
    path = manifest(tmp_path, f"us-west-2:{image}", containerd_version="1.7.27", runc_version="", kernel_version="")
    result = CliRunner().invoke(app, ["tag-images", str(path), "b1"])
    assert result.exit_code == 1
    assert "recorded no runc_version, kernel_version" in result.output
    assert tags_of("us-west-2", image)["containerd_version"] == PLACEHOLDER, "nothing tagged"


def test_bad_manifests(tmp_path):
    with pytest.raises(TagImagesError, match="cannot read the Packer manifest"):
        tag_images(tmp_path / "missing.json", "b1")
    with pytest.raises(TagImagesError, match="0 builds with build_id 'b2'"):
        tag_images(manifest(tmp_path, "us-west-2:ami-1", **MEASURED), "b2")
    with pytest.raises(TagImagesError, match="is not REGION:ami-ID"):
        tag_images(manifest(tmp_path, "Null", **MEASURED), "b1")
