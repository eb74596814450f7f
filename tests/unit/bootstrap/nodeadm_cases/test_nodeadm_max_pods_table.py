"""Section 4 of issue 12: every instance type of amazon-eks-ami's max-pods tables has a value in ours.

The expected values below are the max pods amazon-eks-ami lists (AL2 eni-max-pods.txt, nodeadm
instance-info.jsonl) for the types moto does not describe, written down by us; the default-card formula
ENIs x (IPv4 per ENI - 1) + 2 must give them from our table.
"""

from __future__ import annotations

import pytest

from nodeforge.bootstrap import maxpods

AMAZON_EKS_AMI_ONLY = {
    "bmn-sf1.metal": 737,
    "c5a.metal": 737,
    "c5ad.metal": 737,
    "cr1.8xlarge": 234,
    "dl1.24xlarge": 737,
    "f1.2xlarge": 58,
    "f1.4xlarge": 234,
    "f1.16xlarge": 394,
    "g4ad.xlarge": 8,
    "g4ad.2xlarge": 8,
    "g4ad.4xlarge": 29,
    "g4ad.8xlarge": 58,
    "g4ad.16xlarge": 234,
    "hs1.8xlarge": 234,
    "p3.2xlarge": 58,
    "p3.8xlarge": 234,
    "p3.16xlarge": 234,
    "u-6tb1.metal": 147,
    "u-9tb1.metal": 147,
    "u-12tb1.metal": 147,
    "u-18tb1.metal": 737,
    "u-24tb1.metal": 737,
}

# Types both tables have, spot-checked against amazon-eks-ami's value (moto's DescribeInstanceTypes copy).
SHARED = {"m5.large": 29, "m4.xlarge": 58, "p3dn.24xlarge": 737, "p4d.24xlarge": 737, "t3.nano": 4, "c5.4xlarge": 234}


@pytest.mark.parametrize(("instance_type", "expected"), sorted({**AMAZON_EKS_AMI_ONLY, **SHARED}.items()))
def test_every_amazon_eks_ami_type_has_its_max_pods(instance_type, expected):
    limits = maxpods.lookup(instance_type)
    assert limits is not None, instance_type
    assert maxpods.standard_max_pods(limits) == expected


def test_two_card_storage_types_count_the_default_card_only():
    # amazon-eks-ami lists 737 and 1178 (the ENIs of both network cards); the default card has 8 and 12 ENIs.
    assert maxpods.standard_max_pods(maxpods.lookup("i7ie.48xlarge")) == 8 * 49 + 2 == 394
    assert maxpods.standard_max_pods(maxpods.lookup("i8ge.48xlarge")) == 12 * 49 + 2 == 590
    # the one-card sizes below them agree with amazon-eks-ami
    assert maxpods.standard_max_pods(maxpods.lookup("i7ie.24xlarge")) == 737


def test_the_table_names_its_sources():
    source = maxpods.table_source()
    assert source["package"] == "moto"
    assert "amazon-eks-ami" in source["supplement"]


def test_one_line_lookup_agrees_with_the_whole_table():
    """lookup() parses the type's own line only: for every type it finds what the whole table holds."""
    rows = maxpods._table()["types"]
    assert len(rows) > 500
    for name, row in rows.items():
        assert maxpods._row(name) == row, name
    assert maxpods.lookup("x9.nonexistent") is None
    assert maxpods.lookup('m5.large"') is None
