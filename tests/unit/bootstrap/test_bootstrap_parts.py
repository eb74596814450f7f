"""Unit tests of the agent's pieces: MIME splitting, encodings, max-pods, the CEL subset, TOML, merging."""

from __future__ import annotations

import base64
import gzip

import pytest
from bootstrap_helpers import TOOLING_ONLY

from nodeforge.bootstrap import maxpods, tomlr
from nodeforge.bootstrap.celexpr import evaluate
from nodeforge.bootstrap.encoding import unwrap
from nodeforge.bootstrap.kubelet import derive_cluster_dns, legacy_cluster_dns, parse_kubelet_version
from nodeforge.bootstrap.merge import merge_node_configs, merge_toml
from nodeforge.bootstrap.mime import boundary_of, split_multipart
from nodeforge.bootstrap.tomlw import dumps


@pytest.mark.parametrize(
    ("header", "boundary"),
    [
        ('multipart/mixed; boundary="//"', "//"),
        ("multipart/mixed; boundary=//", "//"),
        ("multipart/mixed; boundary===MYBOUNDARY==", "==MYBOUNDARY=="),
        ('multipart/mixed; boundary="==MYBOUNDARY=="; charset=us-ascii', "==MYBOUNDARY=="),
        ("multipart/mixed; charset=x; boundary='b1'", "b1"),
    ],
)
def test_boundaries(header, boundary):
    assert boundary_of(header) == boundary


def test_parts_with_and_without_blank_line_after_headers():
    text = (
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="//"\n\npreamble\n--//\n'
        "Content-Type: text/x-shellscript\n#!/bin/bash\necho a\n--//  \n"
        "Content-Type: application/node.eks.aws\nContent-Transfer-Encoding: base64\nMIME-Version: 1.0\n\n"
        + base64.encodebytes(b"apiVersion: node.eks.aws/v1alpha1\n").decode()
        + "--//--\nepilogue\n"
    )
    first, second = split_multipart(text)
    assert first.content_type == "text/x-shellscript" and first.body == b"#!/bin/bash\necho a"
    assert second.content_type == "application/node.eks.aws"
    assert second.body == b"apiVersion: node.eks.aws/v1alpha1\n"


def test_unwrap_orders():
    data = b"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n"
    assert unwrap(data) == data
    assert unwrap(base64.b64encode(data)) == data
    assert unwrap(gzip.compress(data)) == data
    assert unwrap(base64.b64encode(gzip.compress(data))) == data
    assert unwrap(b"abcd") == b"abcd" or unwrap(b"abcd") == base64.b64decode(b"abcd")


def test_max_pods_standard_and_calculator():
    m5_large = maxpods.lookup("m5.large")
    assert m5_large is not None and maxpods.standard_max_pods(m5_large) == 29
    m5_24xl = maxpods.lookup("m5.24xlarge")
    assert maxpods.standard_max_pods(m5_24xl) == 737
    assert maxpods.calculator_max_pods(m5_24xl) == 250
    assert maxpods.calculator_max_pods(maxpods.lookup("m5.4xlarge")) == 110
    assert maxpods.calculator_max_pods(m5_large, prefix_delegation=True) == 110
    assert maxpods.calculator_max_pods(m5_large, custom_networking=True) == 20
    assert maxpods.calculator_max_pods(maxpods.lookup("t3.small"), prefix_delegation=True) == 110
    assert maxpods.lookup("no.such-type") is None
    assert maxpods.table_source()["package"] == "moto"


@pytest.mark.parametrize(("cpus", "millicores"), [(1, 60), (2, 70), (4, 80), (8, 90), (96, 310)])
def test_cpu_reservation_tiers(cpus, millicores):
    assert maxpods.cpu_millicores_to_reserve(cpus) == millicores


def test_memory_reservation():
    assert maxpods.kube_reserved(29, 2) == {"cpu": "70m", "ephemeral-storage": "1Gi", "memory": "574Mi"}


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("max_pods", 58),
        ("max_pods + 2", 60),
        ("((default_enis - 1) * (ips_per_eni - 1)) + 2", 44),
        ("max_pods > 50 ? 50 : max_pods", 50),
        ("default_enis == 4 && ips_per_eni >= 15 ? 100 : 1", 100),
        ("max_pods / 4 * -1 * -1", 14),
    ],
)
def test_cel_subset(expression, value):
    assert evaluate(expression, {"max_pods": 58, "default_enis": 4, "ips_per_eni": 15}) == value


@pytest.mark.parametrize("expression", ["max_pods - 100", "foo + 1", "max_pods +", "1 / 0", "max_pods > 1", "'a'"])
def test_cel_subset_errors(expression):
    with pytest.raises(ValueError):
        evaluate(expression, {"max_pods": 58, "default_enis": 4, "ips_per_eni": 15})


def test_max_pods_expression_falls_back_with_a_warning(agent):
    from bootstrap_helpers import INPUTS

    ca = (INPUTS / "ca.b64").read_text().strip()
    user_data = (
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: a\n"
        f"    apiServerEndpoint: https://x\n    certificateAuthority: {ca}\n    cidr: 10.100.0.0/16\n"
        "  kubelet:\n    maxPodsExpression: max_pods * unknown\n"
    )
    result = agent.run(user_data=user_data)
    assert result.code == 0
    assert "maxPodsExpression: unknown identifier 'unknown'; using the standard max-pods value" in result.err
    assert "maxPods 58" in result.out


def test_cluster_dns_derivation():
    assert derive_cluster_dns("10.100.0.0/16") == "10.100.0.10"
    assert derive_cluster_dns("172.20.0.0/16") == "172.20.0.10"
    assert derive_cluster_dns("fd00::/108") == "fd00::a"
    assert derive_cluster_dns("fd12:3456:789a::/108") == "fd12:3456:789a::a"
    assert legacy_cluster_dns(["10.0.0.0/16"]) == "172.20.0.10"
    assert legacy_cluster_dns(["192.168.0.0/16"]) == "10.100.0.10"
    assert parse_kubelet_version("Kubernetes v1.31.3-eks-1234") == (1, 31)


def test_toml_writer_round_trips():
    document = {
        "version": 2,
        "plugins": {
            "io.containerd.grpc.v1.cri": {"sandbox_image": "x", "containerd": {"runtimes": {"nvidia": {"a": 1}}}}
        },
        "list": [1, 2],
        "tables": [{"a": True}, {"b": "c"}],
    }
    assert tomlr.loads(dumps(document)) == document


def test_nodeconfig_merge_rules():
    first = {
        "spec": {
            "cluster": {"name": "a", "cidr": "10.100.0.0/16"},
            "kubelet": {"flags": ["--v=2"], "config": {"maxPods": 10, "evictionHard": {"memory.available": "1Mi"}}},
            "containerd": {"config": '[plugins."x"]\na = 1\n'},
        }
    }
    second = {
        "spec": {
            "cluster": {"name": "b"},
            "kubelet": {"flags": ["--v=5"], "config": {"evictionHard": {"nodefs.available": "5%"}}},
            "containerd": {"config": '[plugins."x"]\nb = 2\n'},
        }
    }
    merged = merge_node_configs([first, second])
    assert merged["spec"]["cluster"] == {"name": "b", "cidr": "10.100.0.0/16"}
    assert merged["spec"]["kubelet"]["flags"] == ["--v=2", "--v=5"]
    assert merged["spec"]["kubelet"]["config"] == {
        "maxPods": 10,
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "5%"},
    }
    assert tomlr.loads(merged["spec"]["containerd"]["config"]) == {"plugins": {"x": {"a": 1, "b": 2}}}
    assert merge_toml("", "a = 1\n") == "a = 1\n"


@TOOLING_ONLY
def test_instance_table_is_generated_from_the_pinned_moto():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[3] / "scripts" / "gen_instance_limits.py"
    completed = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
