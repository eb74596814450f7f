"""What EC2 says about an AMI, in the catalog's terms: the facts a Packer manifest build may lack.

From one ``DescribeImages`` entry: ``Architecture``, ``Name``, ``CreationDate`` and the tags. Tags are read in
three vocabularies:

* the catalog's own ``nodeforge:<field>`` tags (``publish`` writes them);
* the plain tags nodeforge's Packer template writes (``os``, ``arch``, ``kubernetes_version``, ``kubelet_version``,
  ``containerd_version``, ``source_ami``, ``build_id``, ``git_commit``, ``template``; packer/eks-node/locals.pkr.hcl);
* amazon-eks-ami's (templates/al2023/template.json and the former templates/al2): ``kubernetes`` =
  ``<kubelet version>/<build date>/bin/linux/<arch>``, ``containerd_version``, ``source_ami_id``,
  ``source_ami_name``, ``docker_version``, ``cni_plugin_version``, ``ssm_agent_version``.

AMI names are read the way those projects write them:

* amazon-eks-ami's Makefile: ``amazon-eks[-al2023][-arm64][-fips][-<accelerator>]-node-<minor>-v<YYYYMMDD>``;
* AWS's published EKS optimized AMIs: ``amazon-eks-node-al2023-<arch>-<standard|nvidia|neuron>-<minor>-v<date>``,
  ``amazon-eks[-arm64|-gpu]-node-<minor>-v<date>`` (AL2);
* nodeforge's: ``<prefix>-<minor>-<os>-<arch>-<build_id>``.
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime

from nodeforge.catalog.model import (
    CORE_COMPONENTS,
    KUBERNETES_VERSION_RE,
    PROVENANCE,
    VERSION_COMPONENTS,
    normalise_arch,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

    from nodeforge.catalog.aws import AwsContext

# The keys a fact may fill (the custom_data contract's, plus the image name and build time).
FACT_KEYS = (*CORE_COMPONENTS, *VERSION_COMPONENTS, *PROVENANCE, "build_id", "image_name", "build_time")

_EKS_AMI_MAKEFILE_RE = re.compile(
    r"^amazon-eks(?P<al2023>-al2023)?(?P<arm64>-arm64)?(?P<fips>-fips)?(?:-(?P<accelerator>[a-z0-9]+))?"
    r"-node-(?P<minor>\d+\.\d+)-v(?P<date>\d{8})$"
)
_EKS_PUBLISHED_AL2023_RE = re.compile(
    r"^amazon-eks-node-al2023-(?P<arch>x86_64|arm64)-(?P<variant>[a-z0-9]+)-(?P<minor>\d+\.\d+)-v(?P<date>\d{8})$"
)
_NODEFORGE_RE = re.compile(
    r"^(?P<prefix>[A-Za-z0-9()./_-]+?)-(?P<minor>1\.\d+)-(?P<os>[a-z][a-z0-9._]*)-(?P<arch>x86_64|arm64)-(?P<build>.+)$"
)
_KUBERNETES_TAG_RE = re.compile(r"^(?P<version>\d+\.\d+(?:\.\d+)?)/[^/]*/bin/linux/(?P<arch>[a-z0-9_]+)$")

# Plain tag -> fact (nodeforge's Packer template and amazon-eks-ami's).
_PLAIN_TAGS = {
    "kubernetes_version": "kubernetes_version",
    "os": "os",
    "os_version": "os_version",
    "arch": "arch",
    "kubelet_version": "kubelet_version",
    "containerd_version": "containerd_version",
    "runc_version": "runc_version",
    "kernel_version": "kernel_version",
    "source_ami": "source_image",
    "source_ami_id": "source_image",
    "git_commit": "git_commit",
    "template": "template",
    "build_id": "build_id",
}
_PREFIX = "nodeforge:"


def from_name(name: str) -> dict[str, str]:
    """Facts an AMI name gives, by the naming conventions above ({} for a name that follows none)."""
    found = _EKS_PUBLISHED_AL2023_RE.match(name)
    if found:
        facts = {"kubernetes_version": found["minor"], "os": "al2023", "arch": found["arch"]}
        if found["variant"] != "standard":
            facts["variant"] = found["variant"]
        return facts
    found = _EKS_AMI_MAKEFILE_RE.match(name)
    if found:
        facts = {
            "kubernetes_version": found["minor"],
            "os": "al2023" if found["al2023"] else "al2",
            "arch": "arm64" if found["arm64"] else "x86_64",
        }
        if found["accelerator"]:
            facts["variant"] = found["accelerator"]
        if found["fips"]:
            facts["fips"] = "true"
        return facts
    found = _NODEFORGE_RE.match(name)
    if found:
        return {"kubernetes_version": found["minor"], "os": found["os"], "arch": found["arch"]}
    return {}


def from_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """Facts from an AMI's tags: nodeforge:* first, then the plain and amazon-eks-ami tags."""
    facts: dict[str, str] = {}
    for key, value in tags.items():
        if key.startswith(_PREFIX) and key[len(_PREFIX) :] in FACT_KEYS and value:
            facts[key[len(_PREFIX) :]] = value
    if tags.get(_PREFIX + "name") and "image_name" not in facts:
        facts["image_name"] = tags[_PREFIX + "name"]
    for tag, key in _PLAIN_TAGS.items():
        if tags.get(tag):
            facts.setdefault(key, tags[tag])
    kubernetes = _KUBERNETES_TAG_RE.match(tags.get("kubernetes", ""))
    if kubernetes:  # amazon-eks-ami: "1.31.2/2024-11-08/bin/linux/x86_64"
        version = kubernetes["version"]
        facts.setdefault("kubelet_version", version)
        facts.setdefault("kubernetes_version", ".".join(version.split(".")[:2]))
        facts.setdefault("arch", kubernetes["arch"])
    return facts


def from_image(image: Mapping[str, Any]) -> dict[str, str]:
    """Facts from one DescribeImages entry: tags win over the name, Architecture over both for the arch."""
    tags = {tag["Key"]: tag["Value"] for tag in image.get("Tags", []) or []}
    facts = from_tags(tags)
    name = image.get("Name") or ""
    for key, value in from_name(name).items():
        facts.setdefault(key, value)
    if name:
        facts.setdefault("image_name", name)
    arch = normalise_arch(str(image.get("Architecture") or ""))
    if arch:
        facts["arch"] = arch
    created = image.get("CreationDate")
    if created and "build_time" not in facts:
        with contextlib.suppress(ValueError):  # not ISO 8601: no build time from EC2
            facts["build_time"] = str(int(datetime.fromisoformat(str(created).replace("Z", "+00:00")).timestamp()))
    if "kubernetes_version" in facts and not KUBERNETES_VERSION_RE.match(facts["kubernetes_version"]):
        parts = facts["kubernetes_version"].split(".")
        if len(parts) == 3 and KUBERNETES_VERSION_RE.match(".".join(parts[:2])):
            facts.setdefault("kubelet_version", facts["kubernetes_version"])
            facts["kubernetes_version"] = ".".join(parts[:2])
    return facts


def ec2_facts(aws: AwsContext, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """(region, AMI id) -> facts, from DescribeImages (one call per region and 100 ids); absent AMIs left out."""
    from nodeforge.catalog import aws as awsapi

    by_region: dict[str, list[str]] = {}
    for region, ami in pairs:
        by_region.setdefault(region, []).append(ami)
    found: dict[tuple[str, str], dict[str, str]] = {}
    for region, amis in sorted(by_region.items()):
        for ami, image in awsapi.images_by_id(aws, region, sorted(set(amis))).items():
            found[(region, ami)] = from_image(image)
    return found
