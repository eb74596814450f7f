"""Tag the AMIs of a finished build with the component versions the image really carries.

The amazon-ebs source tags an AMI when it registers it, before anyone knows which containerd, runc and kernel
the OS repositories delivered. The last post-processor of packer/eks-node runs ``nodeforge tag-images``: it
reads the Packer manifest (whose custom_data merge_versions.py has just filled from the image's component
manifest, roles/image_manifest), and sets those versions as tags on the AMI and its snapshots in every region
the build registered or copied it to. A version the manifest lacks is an error: the tag would lie.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Tag (and custom_data key) -> what it records.
MEASURED_TAGS = ("containerd_version", "runc_version", "kernel_version")
PLACEHOLDER = "pending-component-manifest"


class TagImagesError(ValueError):
    """The manifest cannot say what to tag, or tagging failed: the message names the file, build or image."""


@dataclass(frozen=True)
class TaggedImage:
    region: str
    image_id: str
    snapshot_ids: tuple[str, ...]
    tags: dict[str, str]


def build_of(manifest: dict[str, Any], build_id: str, source: str = "manifest") -> dict[str, Any]:
    """The build of the manifest's last run whose custom_data.build_id is build_id."""
    last_run = manifest.get("last_run_uuid")
    found = [
        build
        for build in manifest.get("builds", [])
        if isinstance(build.get("custom_data"), dict)
        and build["custom_data"].get("build_id") == build_id
        and (not last_run or build.get("packer_run_uuid") == last_run)
    ]
    if len(found) != 1:
        raise TagImagesError(f"{source}: {len(found)} builds with build_id {build_id!r} in the last run, expected 1")
    return found[0]


def images_of(build: dict[str, Any], source: str = "manifest") -> list[tuple[str, str]]:
    """(region, AMI id) pairs of an amazon-ebs artifact id ("us-west-2:ami-1,eu-west-1:ami-2")."""
    pairs = []
    for item in str(build.get("artifact_id", "")).split(","):
        region, sep, image_id = item.strip().partition(":")
        if not sep or not region or not image_id.startswith("ami-"):
            raise TagImagesError(f"{source}: artifact_id {build.get('artifact_id')!r} is not REGION:ami-ID[,...]")
        pairs.append((region, image_id))
    return pairs


def measured_tags(build: dict[str, Any], source: str = "manifest") -> dict[str, str]:
    """containerd_version, runc_version and kernel_version from the build's custom_data; all must be measured."""
    data = build.get("custom_data", {})
    missing = [key for key in MEASURED_TAGS if not data.get(key) or data.get(key) == PLACEHOLDER]
    if missing:
        raise TagImagesError(
            f"{source}: the component manifest recorded no {', '.join(missing)} (custom_data of build "
            f"{data.get('build_id')!r}); the AMI keeps the tag value {PLACEHOLDER!r}"
        )
    return {key: str(data[key])[:256] for key in MEASURED_TAGS}


def tag_images(manifest_path: Path, build_id: str, client_for: Callable[[str], Any] | None = None) -> list[TaggedImage]:
    """Tag every AMI of the build (and its snapshots) with the measured versions; return what was tagged."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TagImagesError(f"{manifest_path}: cannot read the Packer manifest ({exc})") from exc
    build = build_of(manifest, build_id, str(manifest_path))
    tags = measured_tags(build, str(manifest_path))
    pairs = images_of(build, str(manifest_path))
    if client_for is None:
        import boto3  # lazy

        def client_for(region: str) -> Any:
            return boto3.client("ec2", region_name=region)

    tagged = []
    for region, image_id in pairs:
        ec2 = client_for(region)
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
        if not images:
            raise TagImagesError(f"{image_id} not found in {region}")
        snapshots = tuple(
            mapping["Ebs"]["SnapshotId"]
            for mapping in images[0].get("BlockDeviceMappings", [])
            if mapping.get("Ebs", {}).get("SnapshotId")
        )
        ec2.create_tags(
            Resources=[image_id, *snapshots], Tags=[{"Key": key, "Value": value} for key, value in tags.items()]
        )
        tagged.append(TaggedImage(region, image_id, snapshots, tags))
    return tagged
