"""Snippets that point a cluster at catalogued images: Karpenter EC2NodeClass amiSelectorTerms, eksctl ``ami:``.

Pick either one image (all its regions) or, per region, the latest image of a (version, OS, arch, channel).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from nodeforge.catalog.errors import InputError, NotFoundError
from nodeforge.catalog.model import LOCAL_REGION, Image
from nodeforge.catalog.store import Catalog
from nodeforge.catalog.tags import PREFIX, selector_tags

KARPENTER_FAMILIES = {"al2023": "AL2023", "al2": "AL2", "bottlerocket": "Bottlerocket"}
EKSCTL_FAMILIES = {
    "al2023": "AmazonLinux2023",
    "al2": "AmazonLinux2",
    "bottlerocket": "Bottlerocket",
    "ubuntu2004": "Ubuntu2004",
    "ubuntu2204": "Ubuntu2204",
    "ubuntu2404": "Ubuntu2404",
}


@dataclass(frozen=True)
class Pick:
    """One AMI chosen for one region."""

    image: Image
    region: str
    artifact_id: str


@dataclass(frozen=True)
class Selection:
    """What was asked for: one image, or the latest of a channel (for tag selectors)."""

    picks: tuple[Pick, ...]
    kubernetes_version: str
    os: str
    arch: str | None
    channel: str
    image: Image | None = None


Document = tuple[str, dict[str, Any]]


def select_image(image: Image, regions: Sequence[str] | None) -> Selection:
    picks = tuple(
        Pick(image, a.region, a.artifact_id)
        for a in image.artifacts
        if a.state == "available" and a.region != LOCAL_REGION and (not regions or a.region in regions)
    )
    if not picks:
        where = f" in {', '.join(regions)}" if regions else ""
        raise NotFoundError(f"{image.id} has no available AMI{where} to export")
    return Selection(picks, image.kubernetes_version, image.os, image.arch, image.channel, image)


def select_latest(
    catalog: Catalog,
    *,
    kubernetes_version: str,
    os: str,
    channel: str,
    arch: str | None = None,
    regions: Sequence[str] | None = None,
) -> Selection:
    offered = catalog.offered(kubernetes_version=kubernetes_version, os=os, channel=channel, arch=arch)
    picks = []
    for region, image_arch in offered:
        if region == LOCAL_REGION or (regions and region not in regions):
            continue
        found = catalog.latest(
            kubernetes_version=kubernetes_version, os=os, arch=image_arch, region=region, channel=channel
        )
        if found:
            picks.append(Pick(found[0], region, found[1].artifact_id))
    if not picks:
        what = f"kubernetes {kubernetes_version} {os} {arch or 'any arch'} in channel {channel}"
        raise NotFoundError(f"no usable image for {what}{' in ' + ', '.join(regions) if regions else ''}")
    return Selection(tuple(picks), kubernetes_version, os, arch, channel)


def karpenter(selection: Selection, *, by: str = "id", name: str | None = None) -> list[Document]:
    """EC2NodeClass fragments (apiVersion karpenter.k8s.aws/v1): one per region by id, one in all by tags."""
    name = name or f"nodeforge-{selection.channel}"
    family = KARPENTER_FAMILIES.get(selection.os, "Custom")
    if by == "tags":
        if selection.image is not None:
            terms = [{"tags": {PREFIX + "catalog_id": selection.image.id}}]
        else:
            terms = [
                {"tags": selector_tags(selection.kubernetes_version, selection.os, selection.arch, selection.channel)}
            ]
        note = "AMIs selected by their nodeforge tags (run `nodeforge catalog publish` to write them)"
        return [(note, _nodeclass(name, family, terms))]
    if by != "id":
        raise InputError(f"--by {by!r}: use id or tags")
    documents = []
    for region in sorted({pick.region for pick in selection.picks}):
        picks = [pick for pick in selection.picks if pick.region == region]
        terms = [{"id": pick.artifact_id} for pick in picks]
        note = f"region {region}: " + ", ".join(f"{p.image.id} ({p.image.name}, {p.image.arch})" for p in picks)
        documents.append((note, _nodeclass(name, family, terms)))
    return documents


def eksctl(selection: Selection, *, managed: bool = True, name: str | None = None) -> list[Document]:
    """eksctl ClusterConfig nodegroup fragments with ``ami:``, one per region (merge into your ClusterConfig)."""
    key = "managedNodeGroups" if managed else "nodeGroups"
    family = EKSCTL_FAMILIES.get(selection.os)
    documents = []
    for region in sorted({pick.region for pick in selection.picks}):
        groups = []
        for pick in (p for p in selection.picks if p.region == region):
            image = pick.image
            group: dict[str, Any] = {
                "name": name or _nodegroup_name(image),
                "ami": pick.artifact_id,
            }
            if family:
                group["amiFamily"] = family
            groups.append(group)
        note = f"region {region}: " + ", ".join(
            f"{p.image.id} ({p.image.name})" for p in selection.picks if p.region == region
        )
        if not family:
            note += f"; eksctl has no amiFamily for {selection.os}: set amiFamily and overrideBootstrapCommand yourself"
        documents.append((note, {key: groups}))
    return documents


def to_yaml(documents: Sequence[Document]) -> str:
    parts = []
    for note, document in documents:
        parts.append(f"# {note}\n" + yaml.safe_dump(document, sort_keys=False, default_flow_style=False))
    return "---\n".join(parts)


def _nodegroup_name(image: Image) -> str:
    """eksctl nodegroup names: letters, digits and '-' only."""
    raw = f"nodeforge-{image.kubernetes_version}-{image.os}-{image.arch}"
    return re.sub(r"[^A-Za-z0-9-]", "-", raw)


def _nodeclass(name: str, family: str, terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": name},
        "spec": {"amiFamily": family, "amiSelectorTerms": terms},
    }
