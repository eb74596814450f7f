"""Retire an image: deregister each regional AMI and delete its snapshots, recording every region as it goes.

AWS changes cannot be rolled back, so the catalog records each region in its own transaction right after AWS
confirmed it: a failure part way leaves the finished regions retired and the rest available, ready for a retry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nodeforge.catalog import aws as awsapi
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.errors import AwsError, InputError, RefusedError
from nodeforge.catalog.model import LOCAL_REGION, PROTECTED_CHANNELS, Image
from nodeforge.catalog.store import Catalog


@dataclass
class RegionRetire:
    region: str
    image_id: str
    outcome: str  # deregistered | already-gone | local-only | planned | failed
    snapshots: list[str] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "image_id": self.image_id,
            "outcome": self.outcome,
            "snapshots": self.snapshots,
            "error": self.error,
        }


def retire_targets(image: Image, regions: Sequence[str] | None, *, force: bool) -> list[tuple[str, str]]:
    """(region, artifact id) pairs to retire; refuses a protected channel without ``force``."""
    live = {a.region: a.artifact_id for a in image.artifacts if a.state in ("available", "missing")}
    if regions:
        unknown = [r for r in regions if image.artifact(r) is None]
        if unknown:
            raise InputError(
                f"--region {', '.join(unknown)}: {image.id} has no copy there ({', '.join(image.regions)})"
            )
        targets = [(r, live[r]) for r in dict.fromkeys(regions) if r in live]
    else:
        targets = sorted(live.items())
    if targets and image.channel in PROTECTED_CHANNELS and not force:
        raise RefusedError(
            f"{image.id} is still in channel {image.channel}: promote a successor and demote it first, or pass --force"
        )
    return targets


def retire(
    catalog: Catalog,
    aws: AwsContext,
    image: Image,
    targets: Sequence[tuple[str, str]],
    *,
    reason: str,
    forced: bool = False,
    on_region: Callable[[str], None] | None = None,
) -> list[RegionRetire]:
    results = []
    for region, artifact_id in targets:
        result = _retire_region(catalog, aws, image, region, artifact_id, reason=reason, forced=forced)
        results.append(result)
        if on_region:
            on_region(region)
    return results


def _retire_region(
    catalog: Catalog, aws: AwsContext, image: Image, region: str, artifact_id: str, *, reason: str, forced: bool
) -> RegionRetire:
    if region == LOCAL_REGION:
        result = RegionRetire(region, artifact_id, "local-only")
    else:
        try:
            existed, snapshots = awsapi.deregister_with_snapshots(aws, region, artifact_id)
        except AwsError as exc:
            return RegionRetire(region, artifact_id, "failed", error=str(exc))
        result = RegionRetire(region, artifact_id, "deregistered" if existed else "already-gone", snapshots)
    detail = {"reason": reason, "outcome": result.outcome, "snapshots": result.snapshots, "forced": forced}
    catalog.set_artifact_state(image.id, region, "retired", action="region-retired", detail=detail)
    return result
