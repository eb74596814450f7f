"""Snippets that point a cluster at catalogued images: Karpenter EC2NodeClass amiSelectorTerms, eksctl ``ami:``.

Pick either one image (all its regions) or, per region, the latest image of a (version, OS, arch, channel).

The documents follow the rules their consumers enforce; each rule below names where it comes from:

* eksctl ``pkg/apis/eksctl.io/v1alpha5/validation.go`` (ValidateNodeGroup, validateManagedNodeGroup): a custom
  ``ami`` starts with ``ami-`` and needs ``amiFamily``; managed nodegroups take a custom AMI only for the Amazon
  Linux, Bottlerocket and Ubuntu families; ``overrideBootstrapCommand`` is required for a custom AMI of any family
  but AmazonLinux2023, Bottlerocket (and Windows, self-managed) and is refused for Bottlerocket; nodegroup names
  match ``[a-zA-Z][-a-zA-Z0-9]*``. The command eksctl's docs and examples give calls the image's own bootstrap,
  ``/etc/eks/bootstrap.sh CLUSTER`` (nodeforge images install it, role bootstrap_agent); self-managed groups
  first source eksctl's ``bootstrap.helper.sh`` for the node labels.
* Karpenter's EC2NodeClass CRD (karpenter.k8s.aws/v1): ``amiFamily`` is required without an alias term (one of
  AL2, AL2023, Bottlerocket, Custom, Windows*); ``amiSelectorTerms`` holds 1 to 30 terms, an ``id`` term alone
  (pattern ``ami-[0-9a-z]+``), ``tags`` at most 20; ``metadata.name`` is a Kubernetes object name (DNS-1123
  subdomain), and cluster-scoped: one document per region needs its own name.
"""

from __future__ import annotations

import re

from nodeforge.catalog import render
from nodeforge.catalog.errors import InputError, NotFoundError
from nodeforge.catalog.model import LOCAL_REGION, Image
from nodeforge.catalog.record import Record
from nodeforge.catalog.store import Catalog
from nodeforge.catalog.tags import PREFIX, selector_tags

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing at run time: export is a read command
    from collections.abc import Sequence
    from typing import Any

    Document = tuple[str, dict[str, Any]]

KARPENTER_FAMILIES = {"al2023": "AL2023", "al2": "AL2", "bottlerocket": "Bottlerocket"}
EKSCTL_FAMILIES = {
    "al2023": "AmazonLinux2023",
    "al2": "AmazonLinux2",
    "bottlerocket": "Bottlerocket",
    "ubuntu2004": "Ubuntu2004",
    "ubuntu2204": "Ubuntu2204",
    "ubuntu2404": "Ubuntu2404",
    "ubuntu2604": "Ubuntu2604",
}
# eksctl's SupportedAMIFamilies (types.go), grouped as its IsAmazonLinuxImage / IsUbuntuImage / ... helpers do.
EKSCTL_AMAZON_LINUX = ("AmazonLinux2023", "AmazonLinux2")
EKSCTL_UBUNTU = tuple(f"Ubuntu{pro}{v}" for v in ("2604", "2404", "2204", "2004") for pro in ("Pro", ""))
EKSCTL_BOTTLEROCKET = ("Bottlerocket", "BottlerocketFips")
EKSCTL_WINDOWS = tuple(
    f"WindowsServer{v}{kind}Container" for v in ("2019", "2022", "2025") for kind in ("Core", "Full")
)
EKSCTL_SUPPORTED = (*EKSCTL_AMAZON_LINUX, *EKSCTL_UBUNTU, *EKSCTL_BOTTLEROCKET, *EKSCTL_WINDOWS)
EKSCTL_NAME_RE = re.compile(r"^[a-zA-Z][-a-zA-Z0-9]*$")
EKSCTL_AMI_RE = re.compile(r"^ami-")
# The image's bootstrap entry point that eksctl's custom-AMI docs call (AL2 and Ubuntu EKS images, and ours).
BOOTSTRAP = "/etc/eks/bootstrap.sh"
EKSCTL_HELPER = "/var/lib/cloud/scripts/eksctl/bootstrap.helper.sh"
KARPENTER_MAX_TERMS = 30
KARPENTER_ID_RE = re.compile(r"^ami-[0-9a-z]+$")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Pick(Record):
    """One AMI chosen for one region."""

    image: Image
    region: str
    artifact_id: str


class Selection(Record):
    """What was asked for: one image, or the latest of a channel (for tag selectors)."""

    picks: tuple[Pick, ...]
    kubernetes_version: str
    os: str
    arch: str | None
    channel: str
    image: Image | None = None


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
    base = name or f"nodeforge-{selection.channel}"
    family = KARPENTER_FAMILIES.get(selection.os, "Custom")
    if by == "tags":
        if selection.image is not None:
            terms = [{"tags": {PREFIX + "catalog_id": selection.image.id}}]
        else:
            terms = [
                {"tags": selector_tags(selection.kubernetes_version, selection.os, selection.arch, selection.channel)}
            ]
        note = "AMIs selected by their nodeforge tags (run `nodeforge catalog publish` to write them)"
        return [(note, _nodeclass(_object_name(base, "--name"), family, terms))]
    if by != "id":
        raise InputError(f"--by {by!r}: use id or tags")
    documents = []
    for region in sorted({pick.region for pick in selection.picks}):
        picks = [pick for pick in selection.picks if pick.region == region]
        terms = [{"id": pick.artifact_id} for pick in picks]
        for term in terms:
            if not KARPENTER_ID_RE.match(term["id"]):
                raise InputError(f"{term['id']}: Karpenter's amiSelectorTerms id must match ami-[0-9a-z]+")
        if len(terms) > KARPENTER_MAX_TERMS:
            raise InputError(f"region {region}: {len(terms)} AMIs, Karpenter takes {KARPENTER_MAX_TERMS}; pass --arch")
        note = f"region {region}: " + ", ".join(f"{p.image.id} ({p.image.name}, {p.image.arch})" for p in picks)
        # EC2NodeClass is cluster-scoped: per-region documents with one name would overwrite each other.
        documents.append((note, _nodeclass(_object_name(f"{base}-{region}", "--name"), family, terms)))
    return documents


def eksctl(
    selection: Selection,
    *,
    managed: bool = True,
    name: str | None = None,
    cluster: str | None = None,
    ami_family: str | None = None,
) -> list[Document]:
    """eksctl ClusterConfig nodegroup fragments with ``ami:``, one per region (merge into your ClusterConfig).

    Each group passes eksctl's own validation of a custom AMI (see the module docstring); what cannot is refused
    with the option that fixes it.
    """
    key = "managedNodeGroups" if managed else "nodeGroups"
    path = key
    family = _eksctl_family(selection.os, ami_family, managed=managed)
    if name is not None and not EKSCTL_NAME_RE.match(name):
        raise InputError(f"--name {name!r}: eksctl nodegroup names match [a-zA-Z][-a-zA-Z0-9]*")
    override = _override_command(family, cluster, managed=managed)
    documents = []
    for region in sorted({pick.region for pick in selection.picks}):
        picks = [p for p in selection.picks if p.region == region]
        groups = []
        for index, pick in enumerate(picks):
            if not EKSCTL_AMI_RE.match(pick.artifact_id):
                raise InputError(f"{pick.artifact_id}: eksctl's {path}[{index}].ami must be an AMI id (ami-...)")
            group: dict[str, Any] = {
                "name": _nodegroup_name(pick.image, name, several=len(picks) > 1),
                "ami": pick.artifact_id,
                "amiFamily": family,
            }
            if override:
                group["overrideBootstrapCommand"] = override
            groups.append(group)
        names = [group["name"] for group in groups]
        if len(set(names)) != len(names):
            raise InputError(f"region {region}: nodegroup names repeat ({', '.join(names)}); pass --arch or --name")
        note = f"region {region}: " + ", ".join(f"{p.image.id} ({p.image.name})" for p in picks)
        documents.append((note, {key: groups}))
    return documents


def _eksctl_family(os_family: str, given: str | None, *, managed: bool) -> str:
    if given is not None:
        family = next((f for f in EKSCTL_SUPPORTED if f.lower() == given.strip().lower()), None)  # normalizeAMIFamily
        if family is None:
            raise InputError(f"--ami-family {given!r}: eksctl knows {', '.join(EKSCTL_SUPPORTED)}")
    else:
        known = EKSCTL_FAMILIES.get(os_family)
        if known is None:
            raise InputError(
                f"eksctl needs amiFamily for a custom AMI and has none for OS {os_family!r}: pass --ami-family "
                f"(e.g. AmazonLinux2 for an image with {BOOTSTRAP}, as nodeforge's debian images have)"
            )
        family = known
    if managed and family not in (*EKSCTL_AMAZON_LINUX, *EKSCTL_BOTTLEROCKET, *EKSCTL_UBUNTU):
        raise InputError(
            f"amiFamily {family}: eksctl managed nodegroups take a custom AMI only for Amazon Linux, Bottlerocket "
            "and Ubuntu; pass --unmanaged"
        )
    return family


def _override_command(family: str, cluster: str | None, *, managed: bool) -> str | None:
    """The overrideBootstrapCommand eksctl requires for this family, or None where it takes none."""
    if family == "AmazonLinux2023" or family in EKSCTL_BOTTLEROCKET or family in EKSCTL_WINDOWS:
        return None
    if not cluster:
        raise InputError(
            f"--cluster is required for amiFamily {family}: eksctl requires overrideBootstrapCommand for a custom "
            f"AMI of that family, and the command calls {BOOTSTRAP} CLUSTER"
        )
    if not EKSCTL_NAME_RE.match(cluster) or len(cluster) > 100:
        raise InputError(f"--cluster {cluster!r}: an EKS cluster name ([a-zA-Z][-a-zA-Z0-9]*, at most 100)")
    if managed:
        return f"#!/bin/bash\n{BOOTSTRAP} {cluster}\n"
    return (
        f"#!/bin/bash\nsource {EKSCTL_HELPER}\n"
        f'{BOOTSTRAP} {cluster} --kubelet-extra-args "--node-labels=${{NODE_LABELS}}"\n'
    )


def to_yaml(documents: Sequence[Document]) -> str:
    return "---\n".join(f"# {note}\n" + render.to_yaml(document) for note, document in documents)


def _nodegroup_name(image: Image, name: str | None, *, several: bool) -> str:
    """eksctl nodegroup names: letters, digits and '-' only (IsInvalidNameArg)."""
    if name:
        raw = f"{name}-{image.arch}" if several else name
    else:
        raw = f"nodeforge-{image.kubernetes_version}-{image.os}-{image.arch}"
    return re.sub(r"[^A-Za-z0-9-]", "-", raw)


def _object_name(name: str, option: str) -> str:
    """A Kubernetes object name (DNS-1123 subdomain: lower-case letters, digits, '-', '.'; at most 253)."""
    if len(name) > 253 or not DNS_SUBDOMAIN_RE.match(name):
        raise InputError(f"{option} {name!r}: a Kubernetes object name (lower-case letters, digits, '-', '.')")
    return name


def _nodeclass(name: str, family: str, terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "karpenter.k8s.aws/v1",
        "kind": "EC2NodeClass",
        "metadata": {"name": name},
        "spec": {"amiFamily": family, "amiSelectorTerms": terms},
    }
