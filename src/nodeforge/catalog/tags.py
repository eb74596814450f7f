"""The EC2 tags a catalogued AMI carries (``nodeforge:<field>``), and a record rebuilt from them.

``publish`` writes them (register_image ignores TagSpecifications and copy_image copies no tags, so every copy
is tagged after the fact); ``discover`` reads them back; Karpenter can select AMIs by them.
"""

from __future__ import annotations

from datetime import datetime

from nodeforge.catalog.errors import InputError
from nodeforge.catalog.model import (
    ACCOUNT_RE,
    CATALOG_ID_RE,
    CHANNEL_RE,
    DEFAULT_CHANNEL,
    KNOWN_KEYS,
    KUBERNETES_VERSION_RE,
    OS_RE,
    STATUSES,
    Artifact,
    Image,
    normalise_arch,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

PREFIX = "nodeforge:"
# The tag discover looks for: an AMI without it is not one of ours.
MARKER = PREFIX + "kubernetes_version"
MAX_TAGS = 50
MAX_KEY = 128
MAX_VALUE = 256


def image_tags(image: Image) -> dict[str, str]:
    """Every tag of the image's AMIs: identity, lifecycle and component manifest."""
    tags = {
        "catalog_id": image.id,
        "build_key": image.build_key,
        "name": image.name,
        "channel": image.channel,
        "status": image.status,
        "digest": image.digest,
        "build_time": str(image.build_time),
        **({"build_id": image.build_id} if image.build_id else {}),
        **({"deprecate_at": image.deprecate_at} if image.deprecate_at else {}),
        **image.components(),
    }
    tagged = {PREFIX + key: value for key, value in tags.items()}
    if len(tagged) > MAX_TAGS:
        raise InputError(f"{image.id}: {len(tagged)} tags needed, EC2 allows {MAX_TAGS}; drop some custom_data keys")
    for key, value in tagged.items():
        if len(key) > MAX_KEY or len(value) > MAX_VALUE:
            raise InputError(f"{image.id}: tag {key} is longer than EC2 allows ({MAX_KEY}/{MAX_VALUE} characters)")
    return tagged


def selector_tags(kubernetes_version: str, os: str, arch: str | None, channel: str) -> dict[str, str]:
    """Tags that pick the active images of one channel (Karpenter then takes the newest)."""
    tags = {
        PREFIX + "kubernetes_version": kubernetes_version,
        PREFIX + "os": os,
        PREFIX + "channel": channel,
        PREFIX + "status": "active",
    }
    if arch:
        tags[PREFIX + "arch"] = arch
    return tags


def image_from_tags(ami: Mapping[str, Any], region: str, tags: Mapping[str, str]) -> Image:
    """A record from a described AMI and its nodeforge tags; InputError names the tag that is wrong."""
    where = f"{region}:{ami['ImageId']}"
    fields = {key[len(PREFIX) :]: value for key, value in tags.items() if key.startswith(PREFIX)}
    for required in ("kubernetes_version", "os", "arch"):
        if not fields.get(required):
            raise InputError(f"{where}: tag {PREFIX}{required} missing")
    if not KUBERNETES_VERSION_RE.match(fields["kubernetes_version"]):
        raise InputError(f"{where}: tag {PREFIX}kubernetes_version={fields['kubernetes_version']!r} is not like 1.31")
    if not OS_RE.match(fields["os"]):
        raise InputError(f"{where}: tag {PREFIX}os={fields['os']!r} is not an OS name like al2023")
    arch = normalise_arch(fields["arch"])
    if arch is None:
        raise InputError(f"{where}: tag {PREFIX}arch={fields['arch']!r} is not x86_64 or arm64")
    catalog_id = fields.get("catalog_id", "")
    if catalog_id and not CATALOG_ID_RE.match(catalog_id):
        raise InputError(f"{where}: tag {PREFIX}catalog_id={catalog_id!r} is not a catalog id (nf-<12 hex>)")
    channel = fields.get("channel") or DEFAULT_CHANNEL
    if not CHANNEL_RE.match(channel):
        raise InputError(f"{where}: tag {PREFIX}channel={channel!r} is not a channel name")
    status = fields.get("status") or "active"
    if status not in STATUSES or status == "retired":
        status = "active"
    owner = ami.get("OwnerId")
    lifecycle = {"catalog_id", "build_key", "name", "channel", "status", "digest", "build_time", "deprecate_at"}
    extra = {k: v for k, v in fields.items() if k not in KNOWN_KEYS and k not in lifecycle}
    return Image(
        build_key=fields.get("build_key") or f"ec2:{region}:{ami['ImageId']}",
        name=fields.get("name") or ami.get("Name") or ami["ImageId"],
        builder_type="amazon-ebs",
        kubernetes_version=fields["kubernetes_version"],
        os=fields["os"],
        arch=arch,
        build_time=_build_time(fields.get("build_time"), ami.get("CreationDate")),
        artifacts=(
            Artifact(region, ami["ImageId"], owner if owner and ACCOUNT_RE.match(str(owner)) else None, "available"),
        ),
        os_version=fields.get("os_version"),
        kubelet_version=fields.get("kubelet_version"),
        containerd_version=fields.get("containerd_version"),
        runc_version=fields.get("runc_version"),
        kernel_version=fields.get("kernel_version"),
        source_image=fields.get("source_image"),
        git_commit=fields.get("git_commit"),
        template=fields.get("template"),
        build_id=fields.get("build_id"),
        extra=extra,
        origin=f"ec2:{region}",
        id=catalog_id,
        channel=channel,
        status=status,
        deprecate_at=fields.get("deprecate_at") if status == "deprecated" else None,
    )


def _build_time(tag: str | None, creation_date: str | None) -> int:
    if tag and tag.isdigit():
        return int(tag)
    if creation_date:
        try:
            return int(datetime.fromisoformat(creation_date.replace("Z", "+00:00")).timestamp())
        except ValueError:
            pass
    return 0
