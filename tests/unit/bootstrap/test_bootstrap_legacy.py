"""The bootstrap.sh entry point (``legacy -- CLUSTER flags``) and the shell user-data reader."""

from __future__ import annotations

import json

from bootstrap_helpers import INPUTS

from nodeforge.bootstrap.errors import EXIT_INVALID, EXIT_OK, Diagnostics
from nodeforge.bootstrap.legacy import settings_from_args
from nodeforge.bootstrap.shell import find_bootstrap_calls

CA = (INPUTS / "ca.b64").read_text().strip()
ENDPOINT = "https://4E2A1F0D8B6C3E5A7B9C.gr7.us-west-2.eks.amazonaws.com"


def test_legacy_entry_point_configures_the_node(agent):
    result = agent.run(
        "legacy", "--", "demo", "--b64-cluster-ca", CA, "--apiserver-endpoint", ENDPOINT,
        "--kubelet-extra-args", "--node-labels=a=b --max-pods=20", "--use-max-pods", "false",
        "--service-ipv4-cidr", "172.20.0.0/16", "--aws-api-retry-attempts", "5", "--mount-bpf-fs", "false",
    )  # fmt: skip
    assert result.code == EXIT_OK, result.err
    config = json.loads((agent.root / "etc/kubernetes/kubelet/config.json").read_text())
    assert config["clusterDNS"] == ["172.20.0.10"]
    assert "maxPods" not in config
    assert config["kubeReserved"]["memory"] == "893Mi"
    assert "--node-labels=a=b --max-pods=20" in (agent.root / "etc/eks/kubelet/environment").read_text()
    assert "--aws-api-retry-attempts: ignored" in result.err and "--mount-bpf-fs: ignored" in result.err


def test_legacy_reads_exported_environment(agent, monkeypatch):
    monkeypatch.setenv("APISERVER_ENDPOINT", ENDPOINT)
    monkeypatch.setenv("B64_CLUSTER_CA", CA)
    monkeypatch.setenv("DNS_CLUSTER_IP", "10.0.0.10,10.0.0.11")
    assert agent.run("legacy", "--", "demo").code == EXIT_OK
    config = json.loads((agent.root / "etc/kubernetes/kubelet/config.json").read_text())
    assert config["clusterDNS"] == ["10.0.0.10", "10.0.0.11"]


def test_legacy_without_cluster_name(agent):
    result = agent.run("legacy", "--", "--b64-cluster-ca", CA, "--apiserver-endpoint", ENDPOINT)
    assert result.code == EXIT_INVALID
    assert "cluster name (first positional argument) is missing" in result.err


def test_legacy_dns_fallback_from_vpc_cidr(agent):
    agent.imds.metadata["network/interfaces/macs/0e:49:61:0f:c3:11/vpc-ipv4-cidr-blocks"] = "10.0.0.0/16\n100.64.0.0/16"
    assert agent.run("legacy", "--", "demo", "--b64-cluster-ca", CA, "--apiserver-endpoint", ENDPOINT).code == 0
    assert json.loads((agent.root / "etc/kubernetes/kubelet/config.json").read_text())["clusterDNS"] == ["172.20.0.10"]


def test_pause_container_and_containerd_config_file(agent):
    (agent.root / "etc/containerd").mkdir(parents=True)
    (agent.root / "etc/containerd/config.toml").write_text('version = 3\nroot = "/var/lib/containerd"\n')
    (agent.root / "etc/eks").mkdir(parents=True)
    (agent.root / "etc/eks/custom.toml").write_text(
        '[plugins."io.containerd.grpc.v1.cri".containerd]\nsnapshotter = "overlayfs"\n'
    )
    result = agent.run(
        "legacy", "--", "demo", "--b64-cluster-ca", CA, "--apiserver-endpoint", ENDPOINT,
        "--pause-container-account", "900889452093", "--pause-container-version", "3.9",
        "--containerd-config-file", "/etc/eks/custom.toml", "--local-disks", "raid0",
    )  # fmt: skip
    assert result.code == EXIT_OK, result.err
    dropin = (agent.root / "etc/containerd/config.d/00-nodeforge.toml").read_text()
    assert 'sandbox = "900889452093.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.9"' in dropin
    assert 'snapshotter = "overlayfs"' in dropin
    assert "localStorage (RAID0): not set up" in result.err


def test_real_world_call_shapes():
    script = r"""#!/bin/bash -xe
exec > >(tee /var/log/user-data.log|logger -t user-data -s 2>/dev/console) 2>&1
export B64_CLUSTER_CA='abc='
API_SERVER_URL="https://example.com"
cat <<'EOF' > /etc/motd
/etc/eks/bootstrap.sh not-a-call --inside-heredoc
EOF
sudo -E /etc/eks/bootstrap.sh 'my-cluster' --apiserver-endpoint "${API_SERVER_URL}" \
  --b64-cluster-ca "$B64_CLUSTER_CA" \
  --kubelet-extra-args "--node-labels=\"team=a,env=prod\" --register-with-taints=x=y:NoSchedule" \
  --dns-cluster-ip ${DNS:-10.100.0.10} 2>&1 | tee /var/log/bootstrap.log
"""
    calls = find_bootstrap_calls(script)
    assert len(calls) == 1
    call = calls[0]
    assert call.args == [
        "my-cluster", "--apiserver-endpoint", "https://example.com", "--b64-cluster-ca", "abc=",
        "--kubelet-extra-args", '--node-labels="team=a,env=prod" --register-with-taints=x=y:NoSchedule',
        "--dns-cluster-ip", "10.100.0.10",
    ]  # fmt: skip
    assert call.environment == {"B64_CLUSTER_CA": "abc="}
    diagnostics = Diagnostics()
    settings = settings_from_args(call.args, call.environment, diagnostics)
    assert settings.spec.kubelet.flags == ["--node-labels=team=a,env=prod", "--register-with-taints=x=y:NoSchedule"]


def test_unset_variable_is_reported(agent):
    script = f"#!/bin/bash\n/etc/eks/bootstrap.sh demo --b64-cluster-ca {CA} --apiserver-endpoint $API_SERVER_URL\n"
    result = agent.run(user_data=script)
    assert result.code == EXIT_INVALID
    assert "$API_SERVER_URL is not set in the script" in result.err
    assert "--apiserver-endpoint missing" in result.err


def test_flag_equals_form_and_unknown_flags():
    diagnostics = Diagnostics()
    settings = settings_from_args(
        ["demo", f"--b64-cluster-ca={CA}", f"--apiserver-endpoint={ENDPOINT}", "--no-such-flag", "--ip-family", "IPv6",
         "--service-ipv6-cidr", "fd00::/108"],
        {}, diagnostics,
    )  # fmt: skip
    assert settings.spec.cluster.api_server_endpoint == ENDPOINT
    assert settings.ip_family == "ipv6" and settings.spec.cluster.cidr == "fd00::/108"
    assert any("--no-such-flag" in warning for warning in diagnostics.warnings)
    assert diagnostics.errors == []


def test_script_without_shebang_and_nodeconfig_mentioning_bootstrap(agent):
    script = f"/etc/eks/bootstrap.sh demo --b64-cluster-ca {CA} --apiserver-endpoint {ENDPOINT}\n"
    result = agent.run(user_data=script)
    assert result.code == EXIT_OK, result.err
    assert "bootstrap.sh user data" in result.out
    nodeconfig = (
        "# replaces /etc/eks/bootstrap.sh on AL2023\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n"
        f"  cluster:\n    name: demo\n    apiServerEndpoint: {ENDPOINT}\n    certificateAuthority: {CA}\n"
        "    cidr: 10.100.0.0/16\n"
    )
    result = agent.run(user_data=nodeconfig)
    assert result.code == EXIT_OK, result.err
    assert "nodeconfig user data" in result.out
