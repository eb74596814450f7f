"""Discover nodeforge AMIs by their EC2 tags, region by region, and reconcile them into the catalog.

New AMIs become records (their catalog id, channel and status read from the tags); copies of known images
are added to them; catalogued AMIs that AWS no longer has are marked missing (and available again if they
come back). The catalog's channel and status win over tags for images it already holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from nodeforge.catalog import aws as awsapi
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.errors import InputError
from nodeforge.catalog.model import LOCAL_REGION, Image
from nodeforge.catalog.regions import check_region
from nodeforge.catalog.store import Catalog
from nodeforge.catalog.tags import MARKER, image_from_tags


@dataclass
class RegionDiscovery:
    region: str
    found: int = 0
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    reappeared: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_regions(regions: Sequence[str]) -> list[str]:
    """AWS regions botocore knows ('local' is not one: Docker images live on this machine)."""
    for region in regions:
        if region == LOCAL_REGION:
            raise InputError(f"--region {region!r} is not an AWS region (Docker images have no AWS side)")
        check_region(region)
    return list(dict.fromkeys(regions))


def discover_region(
    catalog: Catalog,
    aws: AwsContext,
    region: str,
    *,
    owners: Sequence[str] = ("self",),
    tag_filters: Mapping[str, str] | None = None,
) -> RegionDiscovery:
    report = RegionDiscovery(region)
    filters = {"tag-key": [MARKER], **{f"tag:{k}": [v] for k, v in (tag_filters or {}).items()}}
    described = awsapi.describe_images(aws, region, owners=owners, filters=filters)
    report.found = len(described)
    records: list[Image] = []
    for ami in described:
        try:
            records.append(image_from_tags(ami, region, awsapi.tags_of(ami)))
        except InputError as exc:
            report.skipped.append(str(exc))
    result, skipped = catalog.add_discovered(records)
    report.new, report.updated, report.unchanged = result.new, result.updated, result.unchanged
    report.skipped.extend(skipped)
    _reconcile_presence(catalog, aws, region, {ami["ImageId"] for ami in described}, report)
    return report


def _reconcile_presence(
    catalog: Catalog, aws: AwsContext, region: str, seen: set[str], report: RegionDiscovery
) -> None:
    """Catalogued AMIs of the region AWS no longer has become missing; missing ones that are back, available."""
    recorded = catalog.region_artifacts(region)
    unseen = sorted(
        ami for ami, (_, state) in recorded.items() if state in ("available", "missing") and ami not in seen
    )
    present = seen | set(awsapi.images_by_id(aws, region, unseen)) if unseen else seen
    for ami, (image_id, state) in sorted(recorded.items()):
        if state == "available" and ami not in present:
            catalog.set_artifact_state(image_id, region, "missing", action="missing", detail={"by": "discover"})
            report.missing.append(ami)
        elif state == "missing" and ami in present:
            catalog.set_artifact_state(image_id, region, "available", action="reappeared", detail={"by": "discover"})
            report.reappeared.append(ami)
