"""The few EC2 and SSM calls the catalog makes, one region at a time, with errors that name region and call.

boto3 is imported on first use: commands that never touch AWS start fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nodeforge.catalog.errors import AwsError

# ClientError codes and HTTP statuses meaning "this endpoint does not implement the call" (moto, old partitions).
_UNSUPPORTED_CODES = frozenset({"NotImplemented", "InvalidAction", "UnsupportedOperation", "NotImplementedError"})


# boto3 sessions and clients are slow to build (data files, endpoint resolution) and thread-safe: one per
# (profile, endpoint, service, region, attempts) for the whole process.
_SESSIONS: dict[str | None, Any] = {}
_CLIENTS: dict[tuple[str | None, str | None, str, str, int], Any] = {}


@dataclass(frozen=True)
class AwsContext:
    """How to reach AWS: an optional endpoint (moto, LocalStack) and profile."""

    endpoint_url: str | None = None
    profile: str | None = None

    def client(self, service: str, region: str, *, attempts: int = 3) -> Any:
        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
        key = (self.profile, endpoint, service, region, attempts)
        if key not in _CLIENTS:
            import boto3
            from botocore.config import Config

            if self.profile not in _SESSIONS:
                _SESSIONS[self.profile] = boto3.session.Session(profile_name=self.profile)
            config = Config(
                region_name=region,
                retries={"mode": "standard", "max_attempts": attempts},
                connect_timeout=5,
                read_timeout=30,
            )
            _CLIENTS[key] = _SESSIONS[self.profile].client(service, endpoint_url=endpoint, config=config)
        return _CLIENTS[key]


@contextmanager
def aws_call(region: str, operation: str) -> Iterator[None]:
    """Turn botocore failures into AwsError("<region>: <operation>: <code>: <message>")."""
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.parsers import ResponseParserError

    try:
        yield
    except ResponseParserError as exc:
        raise AwsError(f"{region}: {operation}: the endpoint's answer is not an AWS response ({exc})") from exc
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise AwsError(f"{region}: {operation}: {error.get('Code', '?')}: {error.get('Message', exc)}") from exc
    except BotoCoreError as exc:
        raise AwsError(f"{region}: {operation}: {exc}") from exc


def error_code(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, AwsError) else exc
    response = getattr(cause, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


# -- EC2 ---------------------------------------------------------------------------------------------------


def describe_images(
    aws: AwsContext, region: str, *, owners: Sequence[str] = (), filters: Mapping[str, Sequence[str]] | None = None
) -> list[dict[str, Any]]:
    """describe_images with owners and name/tag filters, all pages."""
    ec2 = aws.client("ec2", region)
    kwargs: dict[str, Any] = {"Filters": [{"Name": k, "Values": list(v)} for k, v in (filters or {}).items()]}
    if owners:
        kwargs["Owners"] = list(owners)
    images: list[dict[str, Any]] = []
    with aws_call(region, "DescribeImages"):
        for page in ec2.get_paginator("describe_images").paginate(**kwargs):
            images.extend(page.get("Images", []))
    return images


def images_by_id(aws: AwsContext, region: str, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The images among ``image_ids`` that exist in ``region`` (an absent id is simply left out)."""
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(image_ids), 100):
        chunk = list(image_ids[start : start + 100])
        for image in describe_images(aws, region, filters={"image-id": chunk}):
            found[image["ImageId"]] = image
    return found


def tags_of(image: Mapping[str, Any]) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in image.get("Tags", []) or []}


def set_tags(aws: AwsContext, region: str, resource: str, tags: Mapping[str, str]) -> None:
    if not tags:
        return
    with aws_call(region, f"CreateTags {resource}"):
        aws.client("ec2", region).create_tags(
            Resources=[resource], Tags=[{"Key": k, "Value": v} for k, v in sorted(tags.items())]
        )


def remove_tags(aws: AwsContext, region: str, resource: str, keys: Sequence[str]) -> None:
    if not keys:
        return
    with aws_call(region, f"DeleteTags {resource}"):
        aws.client("ec2", region).delete_tags(Resources=[resource], Tags=[{"Key": k} for k in sorted(keys)])


def deregister_with_snapshots(aws: AwsContext, region: str, image_id: str) -> tuple[bool, list[str]]:
    """Deregister an AMI, then delete the EBS snapshots behind it. Returns (was it there, snapshots deleted).

    Snapshot ids are read before deregistering: afterwards the image, and its block device mappings, are gone.
    """
    found = images_by_id(aws, region, [image_id]).get(image_id)
    if found is None:
        return False, []
    snapshots = [
        mapping["Ebs"]["SnapshotId"]
        for mapping in found.get("BlockDeviceMappings", [])
        if mapping.get("Ebs", {}).get("SnapshotId")
    ]
    ec2 = aws.client("ec2", region)
    with aws_call(region, f"DeregisterImage {image_id}"):
        ec2.deregister_image(ImageId=image_id)
    deleted = []
    for snapshot in snapshots:
        try:
            with aws_call(region, f"DeleteSnapshot {snapshot}"):
                ec2.delete_snapshot(SnapshotId=snapshot)
        except AwsError as exc:
            if error_code(exc) != "InvalidSnapshot.NotFound":
                raise
        else:
            deleted.append(snapshot)
    return True, deleted


def enable_deprecation(aws: AwsContext, region: str, image_id: str, when: datetime) -> bool:
    """EnableImageDeprecation; False when the endpoint does not implement it (moto answers HTTP 500).

    One attempt only: a "not implemented" answer is not worth retrying.
    """
    from botocore.exceptions import ClientError
    from botocore.parsers import ResponseParserError

    ec2 = aws.client("ec2", region, attempts=1)
    try:
        with aws_call(region, f"EnableImageDeprecation {image_id}"):
            ec2.enable_image_deprecation(ImageId=image_id, DeprecateAt=when)
    except AwsError as exc:
        cause = exc.__cause__
        if isinstance(cause, ResponseParserError):
            return False  # not an AWS error document at all: the endpoint has no such action
        if isinstance(cause, ClientError):
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if error_code(exc) in _UNSUPPORTED_CODES or status == 501:
                return False
        raise
    return True


# -- SSM ---------------------------------------------------------------------------------------------------


def get_parameters(aws: AwsContext, region: str, path: str) -> dict[str, str]:
    ssm = aws.client("ssm", region)
    values: dict[str, str] = {}
    with aws_call(region, f"GetParametersByPath {path}"):
        for page in ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True):
            values.update({p["Name"]: p["Value"] for p in page.get("Parameters", [])})
    return values


def put_parameter(aws: AwsContext, region: str, name: str, value: str, *, data_type: str = "text") -> None:
    with aws_call(region, f"PutParameter {name}"):
        aws.client("ssm", region).put_parameter(
            Name=name, Value=value, Type="String", DataType=data_type, Overwrite=True
        )


def delete_parameters(aws: AwsContext, region: str, names: Sequence[str]) -> None:
    ssm = aws.client("ssm", region)
    for start in range(0, len(names), 10):
        with aws_call(region, "DeleteParameters"):
            ssm.delete_parameters(Names=list(names[start : start + 10]))
