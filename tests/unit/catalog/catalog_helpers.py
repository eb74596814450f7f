"""Helpers shared by the catalog tests."""

from __future__ import annotations

from nodeforge.catalog.aws import AwsContext


def register(aws: AwsContext, region: str, name: str, tags: dict[str, str] | None = None) -> str:
    """An AMI in moto (register_image ignores TagSpecifications: tags are created afterwards)."""
    ec2 = aws.client("ec2", region)
    image_id = ec2.register_image(Name=name, Architecture="x86_64", RootDeviceName="/dev/xvda")["ImageId"]
    if tags:
        ec2.create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return image_id
