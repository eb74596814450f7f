"""nodeadm e2e cases about the kubelet: kubelet-config-dir, kubelet-config-new-instance-type,
kubelet-config-set-empty, kubelet-flags, kubelet-version, mime-userdata-merge, pod-infra-container and
custom-max-pods-expression (both scenarios): config.json (less the CIS keys we add), the 40-nodeadm.conf drop-in
and the environment file."""

from __future__ import annotations

import pytest
from nodeadm_case_helpers import CLUSTER, assert_kubelet_config, kubelet_config, nodeconfig, read_json

from nodeforge.bootstrap.errors import EXIT_OK

DROPIN = "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf"
TYPE_META = {"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1"}
LOGGING_DNS_JSON = """  kubelet:
    config: {
      "logging": {
        "verbosity": 5
      },
      "clusterDNS": [
        "0.0.0.0",
        "1.1.1.1"
      ]
    }
"""
LOGGING_DNS_YAML = """  kubelet:
    config:
      logging:
        verbosity: 5
      clusterDNS:
        - 0.0.0.0
        - 1.1.1.1
"""
LOGGING_DNS_JSON_WITH_TYPE = """  kubelet:
    config: {
      "kind": "KubeletConfiguration",
      "apiVersion": "kubelet.config.k8s.io/v1beta1",
      "logging": {
        "verbosity": 5
      },
      "clusterDNS": [
        "0.0.0.0",
        "1.1.1.1"
      ]
    }
"""
LOGGING_DNS_DROPIN = {**TYPE_META, "logging": {"verbosity": 5}, "clusterDNS": ["0.0.0.0", "1.1.1.1"]}


def run(agent, kubelet, user_data, *args):
    result = agent.run("--kubelet-version", kubelet, *args, user_data=user_data)
    assert result.code == EXIT_OK, result.err
    return result


@pytest.mark.parametrize("config", [LOGGING_DNS_JSON, LOGGING_DNS_YAML], ids=["json", "yaml"])
def test_kubelet_config_dir(agent, config):
    run(agent, "1.29.0", nodeconfig(config))
    assert_kubelet_config(agent.root, kubelet_config(max_pods=58, reserved_memory="893Mi", kubelet=(1, 29)))
    assert read_json(agent.root, DROPIN) == LOGGING_DNS_DROPIN


def test_kubelet_config_new_instance_type(agent):
    agent.imds.metadata["instance-type"] = "mock-type.large"
    result = run(agent, "1.35.0", nodeconfig(LOGGING_DNS_JSON_WITH_TYPE))
    assert_kubelet_config(agent.root, kubelet_config(max_pods=110, reserved_memory="1465Mi", kubelet=(1, 35)))
    assert read_json(agent.root, DROPIN) == LOGGING_DNS_DROPIN
    assert "'mock-type.large' is not in the bundled table" in result.err


def test_kubelet_config_set_empty(agent):
    run(
        agent,
        "1.35.0",
        nodeconfig('  kubelet:\n    config:\n      kubeReservedCgroup:   ""\n      systemReservedCgroup: ""\n'),
    )
    assert_kubelet_config(agent.root, kubelet_config(max_pods=58, reserved_memory="893Mi", kubelet=(1, 35)))
    assert read_json(agent.root, DROPIN) == {**TYPE_META, "kubeReservedCgroup": "", "systemReservedCgroup": ""}
    environment = (agent.root / "etc/eks/kubelet/environment").read_text()
    assert "--hostname-override=ip-172-16-34-43.ec2.internal" in environment  # EC2 private name by default


def test_kubelet_flags(agent):
    user_data = nodeconfig(
        "  featureGates:\n    InstanceIdNodeName: true\n  kubelet:\n    flags:\n      - --v=5\n"
        "      - --node-labels=foo=bar,foo2=baz\n      - --register-with-taints=foo=bar:NoSchedule\n"
    )
    run(agent, "1.35.0", user_data)
    environment = (agent.root / "etc/eks/kubelet/environment").read_text()
    value = environment.split('KUBELET_EXTRA_ARGS="', 1)[1].rsplit('"', 1)[0]
    assert value.endswith("--v=5 --node-labels=foo=bar,foo2=baz --register-with-taints=foo=bar:NoSchedule")
    assert "--hostname-override=i-1234567890abcdef0" in value.split()


def test_kubelet_version_with_a_build_suffix(agent):
    run(agent, "1.35.0-eks-5e0fdde", CLUSTER)
    config = read_json(agent.root, "/etc/kubernetes/kubelet/config.json")
    assert "kubeAPIQPS" not in config and "kubeAPIBurst" not in config
    assert config["shutdownGracePeriod"] == "2m30s"  # the version was understood as 1.35


def test_pod_infra_container(agent):
    run(agent, "1.35.0", CLUSTER)
    assert "pod-infra-container-image" not in (agent.root / "etc/eks/kubelet/environment").read_text()


def test_mime_userdata_merge(agent):
    mime = f"""MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="//"

--//
Content-Type: application/node.eks.aws

{CLUSTER}  kubelet:
    config:
      maxPods: 58
      clusterDNS:
      - 1.1.1.1

--//
Content-Type: application/node.eks.aws

---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  kubelet:
    config:
      systemReserved:
        cpu: 150m

--//
Content-Type: text/x-shellscript; charset="us-ascii"

#!/bin/bash

echo "hello!"

--//--
"""
    run(agent, "1.35.0", mime)
    assert_kubelet_config(agent.root, kubelet_config(max_pods=58, reserved_memory="893Mi", kubelet=(1, 35)))
    assert read_json(agent.root, DROPIN) == {
        **TYPE_META,
        "clusterDNS": ["1.1.1.1"],
        "maxPods": 58,
        "systemReserved": {"cpu": "150m"},
    }


HTTP_CLUSTER = CLUSTER.replace("https://example.com", "http://localhost")


def test_custom_max_pods_expression_custom_networking(agent):
    user_data = nodeconfig(
        "  kubelet:\n    maxPodsExpression: ((default_enis -1) * (ips_per_eni - 1)) + 2\n", HTTP_CLUSTER
    )
    run(agent, "1.32.0", user_data)
    assert_kubelet_config(agent.root, kubelet_config(max_pods=44, reserved_memory="739Mi", kubelet=(1, 32)))


def test_custom_max_pods_expression_over_kubelet_config_max_pods(agent):
    user_data = nodeconfig(
        "  kubelet:\n    maxPodsExpression: max_pods + 2\n    config:\n      maxPods: 1\n", HTTP_CLUSTER
    )
    run(agent, "1.32.0", user_data)
    assert_kubelet_config(agent.root, kubelet_config(max_pods=60, reserved_memory="915Mi", kubelet=(1, 32)))
    assert read_json(agent.root, DROPIN) == {**TYPE_META, "maxPods": 1}
