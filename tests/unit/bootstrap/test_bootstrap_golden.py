"""Golden outputs for each dialect, from user data in the style Karpenter, eksctl, managed node groups and
terraform-aws-eks send. Regenerate with NODEFORGE_UPDATE_GOLDEN=1 after reviewing a change."""

from __future__ import annotations

import base64
import gzip
import os

import pytest
from bootstrap_helpers import GOLDEN, INPUTS, snapshot

CASES = [
    "karpenter-al2023.mime",
    "karpenter-bottlerocket.toml",
    "karpenter-bottlerocket-nodeclass.toml",
    "eksctl-bottlerocket.toml",
    "mng-bottlerocket.toml",
    "terraform-eks-bottlerocket.toml",
    "eksctl-al2.sh",
    "mng-al2.mime",
    "terraform-eks-al2.sh",
    "terraform-eks-al2023.mime",
    "ipv6-legacy.mime",
    "nodeconfig.json",
]


def check_golden(name: str, text: str) -> None:
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("NODEFORGE_UPDATE_GOLDEN") == "1":
        golden.write_text(text, encoding="utf-8")
    assert golden.exists(), f"missing golden file {golden.name}; run with NODEFORGE_UPDATE_GOLDEN=1"
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", CASES)
def test_dialect_golden(agent, name):
    result = agent.run("--kubelet-version", "1.31", user_data=(INPUTS / name).read_bytes())
    assert result.code == 0, result.err
    check_golden(name, snapshot(agent.root))


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda data: base64.b64encode(data), id="base64"),
        pytest.param(lambda data: gzip.compress(data), id="gzip"),
        pytest.param(lambda data: base64.encodebytes(gzip.compress(data)), id="gzip+base64"),
    ],
)
@pytest.mark.parametrize(
    "name", ["karpenter-al2023.mime", "eksctl-al2.sh", "karpenter-bottlerocket.toml", "mng-bottlerocket.toml"]
)
def test_wrapped_user_data_gives_the_same_files(agent, name, wrap):
    result = agent.run("--kubelet-version", "1.31", user_data=wrap((INPUTS / name).read_bytes()))
    assert result.code == 0, result.err
    check_golden(name, snapshot(agent.root))
