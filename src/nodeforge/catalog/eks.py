"""Import amazon-eks-ami's public AMIs (the EKS optimized AMIs) into the catalog, beside ours.

AWS publishes them as SSM parameters, per region (docs.aws.amazon.com/eks/latest/userguide/retrieve-ami-id.html)::

    /aws/service/eks/optimized-ami/<minor>/<ami type>/recommended/image_id     (and image_name, release_version)
    ami types: amazon-linux-2023/<x86_64|arm64>/<standard|nvidia|neuron>, amazon-linux-2, amazon-linux-2-arm64,
               amazon-linux-2-gpu

Each recommended AMI becomes a record in its own channel (default ``eks-optimized``): build key
``eks-optimized:<image name>`` (the same release in several regions is one record), components from the AMI's
tags (amazon-eks-ami's ``kubernetes``, ``containerd_version``, ``source_ami_id``; see ``facts``). Then ``latest
--channel eks-optimized`` answers with AWS's image and ``diff`` compares ours with it. Accelerated variants
(nvidia, neuron, gpu) are skipped with a note: the catalog keys images by version, OS and arch only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from nodeforge.catalog import aws as awsapi
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.errors import InputError
from nodeforge.catalog.facts import from_image
from nodeforge.catalog.model import ACCOUNT_RE, CHANNEL_RE, KUBERNETES_VERSION_RE, Artifact, Image
from nodeforge.catalog.store import Catalog

SSM_ROOT = "/aws/service/eks/optimized-ami"
DEFAULT_CHANNEL = "eks-optimized"
# <ami type> of the standard images -> (os, arch)
AMI_TYPES = {
    "amazon-linux-2023/x86_64/standard": ("al2023", "x86_64"),
    "amazon-linux-2023/arm64/standard": ("al2023", "arm64"),
    "amazon-linux-2": ("al2", "x86_64"),
    "amazon-linux-2-arm64": ("al2", "arm64"),
}
_RELEASE_DATE_RE = re.compile(r"-v(\d{8})$")


@dataclass
class RegionImport:
    region: str
    found: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommended(parameters: dict[str, str], version: str) -> dict[str, dict[str, str]]:
    """<ami type> -> {"image_id", "image_name", "release_version"} from the parameters under the version."""
    base = f"{SSM_ROOT}/{version}/"
    found: dict[str, dict[str, str]] = {}
    for name, value in parameters.items():
        if not name.startswith(base) or "/recommended/" not in name:
            continue
        ami_type, _, leaf = name[len(base) :].partition("/recommended/")
        if leaf in ("image_id", "image_name", "release_version"):
            found.setdefault(ami_type, {})[leaf] = value
    return found


def import_region(
    catalog: Catalog, aws: AwsContext, region: str, versions: Sequence[str], *, channel: str = DEFAULT_CHANNEL
) -> RegionImport:
    if not CHANNEL_RE.match(channel):
        raise InputError(f"--channel {channel!r}: use lower-case letters, digits and '-'")
    report = RegionImport(region)
    picks: list[tuple[str, str, str, str, dict[str, str]]] = []
    for version in versions:
        if not KUBERNETES_VERSION_RE.match(version):
            raise InputError(f"--kubernetes-version {version!r}: give a minor version like 1.31")
        for ami_type, leaves in sorted(
            recommended(awsapi.get_parameters(aws, region, f"{SSM_ROOT}/{version}"), version).items()
        ):
            where = f"{SSM_ROOT}/{version}/{ami_type}/recommended"
            if ami_type not in AMI_TYPES:
                report.skipped.append(f"{where}: accelerated or unknown AMI type {ami_type!r} (not imported)")
                continue
            if "image_id" not in leaves:
                report.skipped.append(f"{where}: no image_id parameter")
                continue
            picks.append((version, ami_type, leaves["image_id"], where, leaves))
    described = awsapi.images_by_id(aws, region, sorted({pick[2] for pick in picks}))
    records = []
    for version, ami_type, ami, where, leaves in picks:
        report.found.append(ami)
        image = described.get(ami)
        if image is None:
            report.skipped.append(f"{where}/image_id: {ami} is not visible to DescribeImages in {region}")
            continue
        records.append(_record(version, ami_type, ami, region, image, leaves, channel))
    result, skipped = catalog.add_discovered(records, action="imported", source=f"ssm:{region}")
    report.new, report.updated, report.unchanged = result.new, result.updated, result.unchanged
    report.skipped.extend(skipped)
    return report


def _record(
    version: str, ami_type: str, ami: str, region: str, image: dict[str, Any], leaves: dict[str, str], channel: str
) -> Image:
    os_family, arch = AMI_TYPES[ami_type]
    facts = from_image(image)
    name = leaves.get("image_name") or image.get("Name") or ami
    build_time = int(facts["build_time"]) if facts.get("build_time", "").isdigit() else _release_time(name)
    owner = str(image.get("OwnerId") or "")
    extra = {"release_version": leaves["release_version"]} if leaves.get("release_version") else {}
    return Image(
        build_key=f"eks-optimized:{name}",
        name=name,
        builder_type="amazon-eks-ami",
        kubernetes_version=version,
        os=os_family,
        arch=facts.get("arch") or arch,
        build_time=build_time,
        artifacts=(Artifact(region, ami, owner if ACCOUNT_RE.match(owner) else None),),
        kubelet_version=facts.get("kubelet_version"),
        containerd_version=facts.get("containerd_version"),
        source_image=facts.get("source_image"),
        extra=extra,
        origin=f"ssm:{region}",
        channel=channel,
    )


def _release_time(name: str) -> int:
    found = _RELEASE_DATE_RE.search(name)
    if not found:
        return 0
    return int(datetime.strptime(found[1], "%Y%m%d").replace(tzinfo=UTC).timestamp())
