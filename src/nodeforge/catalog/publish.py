"""Publish the catalog to AWS, per region: SSM parameters naming each channel's latest image, and AMI tags.

Parameters mirror the public EKS ones (``/aws/service/eks/optimized-ami/1.31/amazon-linux-2023/x86_64/standard/
recommended/image_id``) under the user's prefix, channel included::

    /nodeforge/<prefix>/<kubernetes_version>/<os>/<arch>/<channel>/image_id    (and image_name, catalog_id)

Publishing reconciles: changed values are overwritten, parameters of combinations that no longer have an image
are deleted, the rest is left alone. Parameters under the prefix that do not follow this layout are never touched.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeforge.catalog import aws as awsapi
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.errors import InputError
from nodeforge.catalog.model import LOCAL_REGION, Image
from nodeforge.catalog.store import Catalog, ImageFilter
from nodeforge.catalog.tags import PREFIX, image_tags

ROOT = "/nodeforge"
LEAVES = ("image_id", "image_name", "catalog_id")
PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_OURS_RE = re.compile(r"^1\.\d+/[a-z0-9._-]+/(x86_64|arm64)/[a-z0-9-]+/(" + "|".join(LEAVES) + ")$")


def check_prefix(prefix: str) -> str:
    prefix = prefix.strip().strip("/")
    if not PREFIX_RE.match(prefix):
        raise InputError(f"--prefix {prefix!r}: use letters, digits, '.', '_', '-' and '/' between parts (e.g. team-a)")
    return prefix


def parameter_name(prefix: str, image: Image, leaf: str) -> str:
    return f"{ROOT}/{prefix}/{image.kubernetes_version}/{image.os}/{image.arch}/{image.channel}/{leaf}"


@dataclass
class RegionPublish:
    region: str
    put: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    unchanged: int = 0
    tagged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "put": self.put,
            "deleted": self.deleted,
            "unchanged": self.unchanged,
            "tagged": self.tagged,
        }


def desired_parameters(catalog: Catalog, prefix: str, region: str) -> dict[str, str]:
    """Name -> value of every parameter the region should hold: one set per channel's latest image."""
    wanted: dict[str, str] = {}
    for version, os_family, arch, channel in catalog.conn.execute(
        "SELECT DISTINCT i.kubernetes_version, i.os, i.arch, i.channel FROM images AS i"
        " JOIN artifacts AS a ON a.image_id = i.id"
        " WHERE a.region = ? AND a.state = 'available' AND i.status != 'retired'",
        (region,),
    ):
        found = catalog.latest(kubernetes_version=version, os=os_family, arch=arch, region=region, channel=channel)
        if found is None:
            continue
        image, artifact = found
        values = {"image_id": artifact.artifact_id, "image_name": image.name, "catalog_id": image.id}
        for leaf in LEAVES:
            wanted[parameter_name(prefix, image, leaf)] = values[leaf]
    return wanted


def publish_regions(catalog: Catalog, regions: Sequence[str] | None) -> list[str]:
    """The regions to publish: those asked for, else every region with an available AMI."""
    if regions:
        bad = [r for r in regions if r == LOCAL_REGION]
        if bad:
            raise InputError("--region local: Docker images have no SSM parameters to publish")
        return list(dict.fromkeys(regions))
    rows = catalog.conn.execute(
        "SELECT DISTINCT region FROM artifacts WHERE state = 'available' AND region != ? ORDER BY region",
        (LOCAL_REGION,),
    )
    return [row[0] for row in rows]


def publish_region(
    catalog: Catalog, aws: AwsContext, prefix: str, region: str, *, tags: bool = True, dry_run: bool = False
) -> RegionPublish:
    report = RegionPublish(region)
    root = f"{ROOT}/{prefix}"
    wanted = desired_parameters(catalog, prefix, region)
    current = awsapi.get_parameters(aws, region, root)
    for name, value in sorted(wanted.items()):
        if current.get(name) == value:
            report.unchanged += 1
            continue
        report.put.append(name)
        if not dry_run:
            data_type = "aws:ec2:image" if name.endswith("/image_id") else "text"
            awsapi.put_parameter(aws, region, name, value, data_type=data_type)
    stale = [name for name in current if name not in wanted and _OURS_RE.match(name[len(root) + 1 :])]
    report.deleted = sorted(stale)
    if stale and not dry_run:
        awsapi.delete_parameters(aws, region, report.deleted)
    if tags:
        report.tagged = _tag_region(catalog, aws, region, dry_run=dry_run)
    if (report.put or report.deleted or report.tagged) and not dry_run:
        catalog.record(None, "published", {"prefix": prefix, **report.to_dict()}, region=region)
    return report


def publish(
    catalog: Catalog,
    aws: AwsContext,
    prefix: str,
    regions: Sequence[str],
    *,
    tags: bool = True,
    dry_run: bool = False,
    on_region: Callable[[str], None] | None = None,
) -> list[RegionPublish]:
    prefix = check_prefix(prefix)
    reports = []
    for region in regions:
        reports.append(publish_region(catalog, aws, prefix, region, tags=tags, dry_run=dry_run))
        if on_region:
            on_region(region)
    return reports


def _tag_region(catalog: Catalog, aws: AwsContext, region: str, *, dry_run: bool) -> list[str]:
    """Bring the nodeforge tags of every available AMI in the region in line with the catalog."""
    by_ami = {
        artifact.artifact_id: image
        for image in catalog.list(ImageFilter(region=region))
        if (artifact := image.artifact(region)) is not None and artifact.state == "available"
    }
    described = awsapi.images_by_id(aws, region, sorted(by_ami))
    changed = []
    for ami, image in sorted(by_ami.items()):
        if ami not in described:
            continue  # gone from AWS: `discover` records that
        have = awsapi.tags_of(described[ami])
        want = image_tags(image)
        update = {k: v for k, v in want.items() if have.get(k) != v}
        stale = [k for k in have if k.startswith(PREFIX) and k not in want]
        if update or stale:
            changed.append(ami)
            if not dry_run:
                awsapi.set_tags(aws, region, ami, update)
                awsapi.remove_tags(aws, region, ami, stale)
    return changed
