"""Deprecate an image in AWS: tag every regional AMI, then ask EC2 to deprecate it at the same date.

The catalog and the ``nodeforge:deprecate_at`` / ``nodeforge:status`` tags are the record. EnableImageDeprecation
is tried as well; where the endpoint does not implement it (moto answers HTTP 500) the region reports
"tagged-only" and the caller warns: the AMI then stays visible in describe_images until it is retired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from nodeforge.catalog import aws as awsapi
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.errors import AwsError, InputError
from nodeforge.catalog.model import LOCAL_REGION, Image, iso, utc_now
from nodeforge.catalog.tags import PREFIX


@dataclass
class RegionDeprecation:
    region: str
    image_id: str
    outcome: str  # deprecated | tagged-only | failed
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"region": self.region, "image_id": self.image_id, "outcome": self.outcome, "error": self.error}


def parse_date(value: str | None) -> datetime:
    """--at: YYYY-MM-DD (midnight UTC) or an ISO 8601 time; none means now."""
    if value is None:
        return utc_now()
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"--at {value!r}: not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


def deprecate_in_aws(
    aws: AwsContext, image: Image, when: datetime, *, on_region: Callable[[str], None] | None = None
) -> list[RegionDeprecation]:
    # EC2 refuses a date in the past; "now" becomes the next whole minute.
    api_when = max(when, (utc_now() + timedelta(minutes=1)).replace(second=0))
    results = []
    for artifact in image.artifacts:
        if artifact.region == LOCAL_REGION or artifact.state != "available":
            continue
        region, ami = artifact.region, artifact.artifact_id
        try:
            awsapi.set_tags(aws, region, ami, {PREFIX + "status": "deprecated", PREFIX + "deprecate_at": iso(when)})
            applied = awsapi.enable_deprecation(aws, region, ami, api_when)
            results.append(RegionDeprecation(region, ami, "deprecated" if applied else "tagged-only"))
        except AwsError as exc:
            results.append(RegionDeprecation(region, ami, "failed", str(exc)))
        if on_region:
            on_region(region)
    return results
