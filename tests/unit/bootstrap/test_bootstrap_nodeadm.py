"""Parity with nodeadm: the values its e2e cases expect for the same input and the same mock instance
(m4.xlarge in us-west-2f, i-1234567890abcdef0, 2 CPUs), written in our own words."""

from __future__ import annotations

import json

CA = "Y2VydGlmaWNhdGVBdXRob3JpdHk="  # base64 of a placeholder, not PEM: accepted with a warning
CLUSTER = f"""apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: my-cluster
    apiServerEndpoint: https://example.com
    certificateAuthority: {CA}
    cidr: 10.100.0.0/16
"""

MERGE_MIME = f"""MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="//"

--//
Content-Type: application/node.eks.aws

---
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


def read_json(agent, path):
    return json.loads((agent.root / path.lstrip("/")).read_text())


def test_mime_merge_matches_nodeadm(agent):
    result = agent.run("--kubelet-version", "1.35.0", user_data=MERGE_MIME)
    assert result.code == 0, result.err
    config = read_json(agent, "/etc/kubernetes/kubelet/config.json")
    expected_subset = {
        "clusterDNS": ["10.100.0.10"],
        "maxPods": 58,
        "kubeReserved": {"cpu": "70m", "ephemeral-storage": "1Gi", "memory": "893Mi"},
        "providerID": "aws:///us-west-2f/i-1234567890abcdef0",
        "systemReservedCgroup": "/system",
        "kubeReservedCgroup": "/runtime",
        "shutdownGracePeriod": "2m30s",
        "shutdownGracePeriodCriticalPods": "30s",
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%"},
        "logging": {"verbosity": 2},
        "address": "0.0.0.0",
        "cgroupDriver": "systemd",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "hairpinMode": "hairpin-veth",
        "readOnlyPort": 0,
        "serverTLSBootstrap": True,
        "serializeImagePulls": False,
    }
    for key, value in expected_subset.items():
        assert config[key] == value, key
    assert config["featureGates"] == {
        "RotateKubeletServerCertificate": True,
        "DynamicResourceAllocation": True,
        "MutableCSINodeAllocatableCount": True,
    }
    assert read_json(agent, "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf") == {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "clusterDNS": ["1.1.1.1"],
        "maxPods": 58,
        "systemReserved": {"cpu": "150m"},
    }
    assert "certificateAuthority: does not decode to a PEM certificate" in result.err


def test_version_toggles_absent_before_1_33(agent):
    assert agent.run("--kubelet-version", "1.29.0", user_data=CLUSTER).code == 0
    config = read_json(agent, "/etc/kubernetes/kubelet/config.json")
    assert config["featureGates"] == {"RotateKubeletServerCertificate": True}
    assert "shutdownGracePeriod" not in config


def test_kubelet_config_json_and_yaml_drop_in(agent):
    as_json = (
        CLUSTER
        + '  kubelet:\n    config: {\n      "logging": {"verbosity": 5},\n'
        + '      "clusterDNS": ["0.0.0.0", "1.1.1.1"]\n    }\n'
    )
    as_yaml = (
        CLUSTER
        + "  kubelet:\n    config:\n      logging:\n        verbosity: 5\n"
        + "      clusterDNS:\n        - 0.0.0.0\n        - 1.1.1.1\n"
    )
    expected = {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "logging": {"verbosity": 5},
        "clusterDNS": ["0.0.0.0", "1.1.1.1"],
    }
    for user_data in (as_json, as_yaml):
        assert agent.run(user_data=user_data).code == 0
        assert read_json(agent, "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf") == expected
        assert read_json(agent, "/etc/kubernetes/kubelet/config.json")["logging"] == {"verbosity": 2}


def test_empty_values_are_kept_in_the_drop_in(agent):
    user_data = CLUSTER + '  kubelet:\n    config:\n      kubeReservedCgroup: ""\n      systemReservedCgroup: ""\n'
    assert agent.run(user_data=user_data).code == 0
    assert read_json(agent, "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf") == {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kubeReservedCgroup": "",
        "systemReservedCgroup": "",
    }


def test_max_pods_expression(agent):
    custom_networking = CLUSTER + "  kubelet:\n    maxPodsExpression: ((default_enis -1) * (ips_per_eni - 1)) + 2\n"
    assert agent.run(user_data=custom_networking).code == 0
    config = read_json(agent, "/etc/kubernetes/kubelet/config.json")
    assert config["maxPods"] == 44

    over_config = CLUSTER + "  kubelet:\n    maxPodsExpression: max_pods + 2\n    config:\n      maxPods: 1\n"
    assert agent.run(user_data=over_config).code == 0
    config = read_json(agent, "/etc/kubernetes/kubelet/config.json")
    assert config["maxPods"] == 60
    assert config["kubeReserved"]["memory"] == "915Mi"
    assert read_json(agent, "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf")["maxPods"] == 1


def test_flags_follow_ours_and_instance_id_node_name(agent):
    user_data = (
        CLUSTER
        + "  featureGates:\n    InstanceIdNodeName: true\n"
        + "  kubelet:\n    flags:\n      - --v=5\n      - --node-labels=foo=bar,foo2=baz\n"
        + "      - --register-with-taints=foo=bar:NoSchedule\n"
    )
    assert agent.run(user_data=user_data).code == 0
    environment = (agent.root / "etc/eks/kubelet/environment").read_text()
    assert '--v=5 --node-labels=foo=bar,foo2=baz --register-with-taints=foo=bar:NoSchedule"\n' in environment
    assert "--hostname-override=i-1234567890abcdef0" in environment
    assert "--cloud-provider=external" in environment
    assert "--node-ip=172.16.34.43" in environment


def test_kubeconfig_like_nodeadm_with_aws_cli(agent):
    assert agent.run("--kubeconfig-auth", "aws-cli", user_data=CLUSTER).code == 0
    import yaml

    kubeconfig = yaml.safe_load((agent.root / "var/lib/kubelet/kubeconfig").read_text())
    assert kubeconfig["clusters"] == [
        {
            "name": "kubernetes",
            "cluster": {"certificate-authority": "/etc/kubernetes/pki/ca.crt", "server": "https://example.com"},
        }
    ]
    assert kubeconfig["current-context"] == "kubelet"
    assert kubeconfig["users"][0]["user"]["exec"] == {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "command": "aws",
        "args": ["eks", "get-token", "--cluster-name", "my-cluster", "--region", "us-west-2"],
    }


def test_kubeconfig_auth_auto_prefers_the_installed_authenticator(agent):
    (agent.root / "usr/local/bin").mkdir(parents=True)
    (agent.root / "usr/local/bin/aws").write_text("")
    assert agent.run(user_data=CLUSTER).code == 0
    assert "command: aws\n" in (agent.root / "var/lib/kubelet/kubeconfig").read_text()
    (agent.root / "usr/bin").mkdir(parents=True)
    (agent.root / "usr/bin/aws-iam-authenticator").write_text("")
    assert agent.run(user_data=CLUSTER).code == 0
    assert "command: /usr/bin/aws-iam-authenticator\n" in (agent.root / "var/lib/kubelet/kubeconfig").read_text()


def test_ca_written_as_decoded(agent):
    assert agent.run(user_data=CLUSTER).code == 0
    assert (agent.root / "etc/kubernetes/pki/ca.crt").read_bytes() == b"certificateAuthority"
