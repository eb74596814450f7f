"""Karpenter and eksctl snippets for one image or a channel's latest per region."""

from __future__ import annotations

import json

import pytest
import yaml

from nodeforge.catalog import synthetic
from nodeforge.catalog.errors import NotFoundError
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
    assert east["metadata"]["name"] == "nodeforge-stable"
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


def test_eksctl_unknown_family_is_said(catalog: Catalog) -> None:
    build = synthetic.build(run="deb", amis={"us-east-1": E1}, os="debian12")
    catalog.ingest(parse_manifest(json.dumps(synthetic.manifest([build])), source="m.json"))
    [(note, document)] = eksctl(select_image(catalog.resolve(E1), None))
    assert "no amiFamily for debian12" in note
    assert "amiFamily" not in document["managedNodeGroups"][0]
    [(_, nodeclass)] = karpenter(select_image(catalog.resolve(E1), None))
    assert nodeclass["spec"]["amiFamily"] == "Custom"


def test_nothing_to_export(stable: Catalog) -> None:
    with pytest.raises(NotFoundError, match=r"no usable image for kubernetes 1\.30 al2023"):
        select_latest(stable, kubernetes_version="1.30", os="al2023", channel="stable")
    with pytest.raises(NotFoundError, match="no available AMI in eu-west-1"):
        select_image(stable.resolve(E1), ["eu-west-1"])
