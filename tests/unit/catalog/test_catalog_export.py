"""Karpenter and eksctl snippets for one image or a channel's latest per region."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from nodeforge.catalog import synthetic
from nodeforge.catalog.errors import InputError, NotFoundError
from nodeforge.catalog.export import eksctl, karpenter, select_image, select_latest, to_yaml
from nodeforge.catalog.manifest import parse_manifest
from nodeforge.catalog.store import Catalog

E1, E2, E3 = (f"ami-0e{n:015x}" for n in range(1, 4))
W1 = "ami-0f000000000000001"


@pytest.fixture
def stable(catalog: Catalog) -> Catalog:
    builds = [
        synthetic.build(run="old", amis={"us-east-1": E1, "us-west-2": W1}, build_time=1),
        synthetic.build(run="new", amis={"us-east-1": E2}, build_time=2),
        synthetic.build(run="arm", amis={"us-east-1": E3}, arch="arm64", build_time=3),
    ]
    catalog.ingest(parse_manifest(json.dumps(synthetic.manifest(builds)), source="m.json"))
    for image in catalog.list():
        catalog.set_channel(image.id, "stable", action="promoted", reason="test")
    return catalog


def test_karpenter_by_id_one_nodeclass_per_region_with_both_arches(stable: Catalog) -> None:
    selection = select_latest(stable, kubernetes_version="1.31", os="al2023", channel="stable")
    documents = karpenter(selection)
    assert [note.split(":")[0] for note, _ in documents] == ["region us-east-1", "region us-west-2"]
    east = documents[0][1]
    assert east["apiVersion"] == "karpenter.k8s.aws/v1" and east["kind"] == "EC2NodeClass"
    assert east["metadata"]["name"] == "nodeforge-stable-us-east-1"
    assert documents[1][1]["metadata"]["name"] == "nodeforge-stable-us-west-2"  # cluster-scoped: one name each
    assert east["spec"] == {"amiFamily": "AL2023", "amiSelectorTerms": [{"id": E3}, {"id": E2}]}  # arm64, x86_64
    assert documents[1][1]["spec"]["amiSelectorTerms"] == [{"id": W1}]
    parsed = list(yaml.safe_load_all(to_yaml(documents)))
    assert parsed == [doc for _, doc in documents]


def test_karpenter_by_tags(stable: Catalog) -> None:
    selection = select_latest(stable, kubernetes_version="1.31", os="al2023", channel="stable", arch="x86_64")
    [(_, document)] = karpenter(selection, by="tags", name="workers")
    assert document["metadata"]["name"] == "workers"
    assert document["spec"]["amiSelectorTerms"] == [
        {
            "tags": {
                "nodeforge:kubernetes_version": "1.31",
                "nodeforge:os": "al2023",
                "nodeforge:channel": "stable",
                "nodeforge:status": "active",
                "nodeforge:arch": "x86_64",
            }
        }
    ]
    image = stable.resolve(E1)
    [(_, one)] = karpenter(select_image(image, None), by="tags")
    assert one["spec"]["amiSelectorTerms"] == [{"tags": {"nodeforge:catalog_id": image.id}}]


def test_eksctl_ami_snippets(stable: Catalog) -> None:
    selection = select_latest(
        stable, kubernetes_version="1.31", os="al2023", channel="stable", arch="x86_64", regions=["us-east-1"]
    )
    [(note, document)] = eksctl(selection)
    assert note.startswith("region us-east-1")
    assert document == {
        "managedNodeGroups": [{"name": "nodeforge-1-31-al2023-x86-64", "ami": E2, "amiFamily": "AmazonLinux2023"}]
    }
    [(_, unmanaged)] = eksctl(select_image(stable.resolve(W1), ["us-west-2"]), managed=False, name="ng-1")
    assert unmanaged == {"nodeGroups": [{"name": "ng-1", "ami": W1, "amiFamily": "AmazonLinux2023"}]}


# eksctl's checks of a nodegroup with a custom AMI, written down from eksctl-io/eksctl
# pkg/apis/eksctl.io/v1alpha5/validation.go (ValidateNodeGroup, validateManagedNodeGroup, IsInvalidNameArg).
EKSCTL_AL = {"AmazonLinux2023", "AmazonLinux2"}
EKSCTL_BR = {"Bottlerocket", "BottlerocketFips"}
EKSCTL_UBUNTU = {f"Ubuntu{p}{v}" for v in ("2004", "2204", "2404", "2604") for p in ("", "Pro")}


def eksctl_errors(document: dict, *, managed: bool) -> list[str]:
    key = "managedNodeGroups" if managed else "nodeGroups"
    errors = []
    for i, ng in enumerate(document[key]):
        path, family, ami = f"{key}[{i}]", ng.get("amiFamily", ""), ng.get("ami", "")
        override = ng.get("overrideBootstrapCommand")
        if re.search(r"[^a-zA-Z0-9\-]+", ng["name"]):
            errors.append(f"validation for {ng['name']} failed")
        if ami and not ami.startswith("ami-"):
            errors.append(f"invalid AMI {ami!r} ({path}.ami)")
        if ami and not family:
            errors.append("when using a custom AMI, amiFamily needs to be explicitly set")
        if managed and ami and family not in EKSCTL_AL | EKSCTL_BR | EKSCTL_UBUNTU:
            errors.append(f"cannot set amiFamily to {family} when using a custom AMI for managed nodes")
        if ami and override is None and family != "AmazonLinux2023" and family not in EKSCTL_BR:
            errors.append(f"{path}.overrideBootstrapCommand is required when using a custom AMI based on {family}")
        if family in EKSCTL_BR and override is not None:
            errors.append(f"overrideBootstrapCommand is not supported for {family} nodegroups")
        if managed and not ami and override is not None and family != "AmazonLinux2023":
            errors.append(f"{path}.overrideBootstrapCommand can only be set when a custom AMI is specified")
    return errors


def test_our_eksctl_checks_catch_what_eksctl_refuses() -> None:
    bad = {"managedNodeGroups": [{"name": "ng_1", "ami": "ami-1", "amiFamily": "AmazonLinux2"}]}
    assert len(eksctl_errors(bad, managed=True)) == 2  # the name, the missing overrideBootstrapCommand
    br = {"nodeGroups": [{"name": "b", "ami": "ami-1", "amiFamily": "Bottlerocket", "overrideBootstrapCommand": "x"}]}
    assert eksctl_errors(br, managed=False) == ["overrideBootstrapCommand is not supported for Bottlerocket nodegroups"]


@pytest.mark.parametrize("os_family", ["al2", "ubuntu2204", "ubuntu2404", "al2023", "bottlerocket"])
@pytest.mark.parametrize("managed", [True, False])
def test_eksctl_documents_pass_eksctl_validation(catalog: Catalog, os_family: str, managed: bool) -> None:
    builds = [
        synthetic.build(run="x", amis={"us-east-1": E1}, os=os_family),
        synthetic.build(run="a", amis={"us-east-1": E2}, os=os_family, arch="arm64"),
    ]
    catalog.ingest(parse_manifest(json.dumps(synthetic.manifest(builds)), source="m.json"))
    selection = select_latest(catalog, kubernetes_version="1.31", os=os_family, channel="candidate")
    [(_, document)] = eksctl(selection, managed=managed, cluster="prod-1", name="workers")
    assert eksctl_errors(document, managed=managed) == []
    groups = document["managedNodeGroups" if managed else "nodeGroups"]
    assert [g["name"] for g in groups] == ["workers-arm64", "workers-x86_64".replace("_", "-")]
    commands = [g.get("overrideBootstrapCommand") for g in groups]
    if os_family in ("al2023", "bottlerocket"):
        assert commands == [None, None]
    else:
        for command in commands:
            assert command.startswith("#!/bin/bash\n")
            assert "/etc/eks/bootstrap.sh prod-1" in command  # the image's own bootstrap, with the cluster
            assert ("bootstrap.helper.sh" in command) is (not managed)
    assert yaml.safe_load(to_yaml([("n", document)])) == document


def test_eksctl_refusals_name_the_flag(catalog: Catalog) -> None:
    builds = [
        synthetic.build(run="u", amis={"us-east-1": E1}, os="ubuntu2204"),
        synthetic.build(run="d", amis={"us-east-1": E2}, os="debian12"),
    ]
    catalog.ingest(parse_manifest(json.dumps(synthetic.manifest(builds)), source="m.json"))
    ubuntu, debian = select_image(catalog.resolve(E1), None), select_image(catalog.resolve(E2), None)
    with pytest.raises(InputError, match=r"--cluster is required for amiFamily Ubuntu2204"):
        eksctl(ubuntu)
    with pytest.raises(InputError, match="has none for OS 'debian12': pass --ami-family"):
        eksctl(debian, cluster="c")
    [(_, document)] = eksctl(debian, cluster="c", ami_family="amazonlinux2")  # eksctl's normalizeAMIFamily
    assert document["managedNodeGroups"][0]["amiFamily"] == "AmazonLinux2"
    assert eksctl_errors(document, managed=True) == []
    with pytest.raises(InputError, match=r"managed nodegroups take a custom AMI only .*; pass --unmanaged"):
        eksctl(debian, ami_family="WindowsServer2022CoreContainer")
    with pytest.raises(InputError, match="--ami-family 'Plan9'"):
        eksctl(debian, ami_family="Plan9")
    with pytest.raises(InputError, match="--cluster 'bad name'"):
        eksctl(ubuntu, cluster="bad name")
    with pytest.raises(InputError, match="--name 'ng_1'"):
        eksctl(ubuntu, cluster="c", name="ng_1")
    [(_, nodeclass)] = karpenter(debian)
    assert nodeclass["spec"]["amiFamily"] == "Custom"
    with pytest.raises(InputError, match="--name 'Workers-us-east-1': a Kubernetes object name"):
        karpenter(debian, name="Workers")


def test_nothing_to_export(stable: Catalog) -> None:
    with pytest.raises(NotFoundError, match=r"no usable image for kubernetes 1\.30 al2023"):
        select_latest(stable, kubernetes_version="1.30", os="al2023", channel="stable")
    with pytest.raises(NotFoundError, match="no available AMI in eu-west-1"):
        select_image(stable.resolve(E1), ["eu-west-1"])
