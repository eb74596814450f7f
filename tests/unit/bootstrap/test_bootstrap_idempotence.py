"""Re-runs change nothing; --dry-run writes nothing; writes are atomic with the planned modes."""

from __future__ import annotations

import json

from bootstrap_helpers import INPUTS, snapshot

from nodeforge.bootstrap.errors import EXIT_OK


def mtimes(root):
    return {str(path): path.stat().st_mtime_ns for path in root.rglob("*") if path.is_file()}


def test_second_run_reports_unchanged_and_touches_nothing(agent):
    user_data = (INPUTS / "karpenter-al2023.mime").read_bytes()
    first = agent.run(user_data=user_data)
    assert first.code == EXIT_OK
    assert "created: /etc/kubernetes/kubelet/config.json" in first.out
    before, content = mtimes(agent.root), snapshot(agent.root)
    second = agent.run(user_data=user_data)
    assert second.code == EXIT_OK
    assert "created" not in second.out and "updated" not in second.out
    assert "0 file(s) changed, 7 unchanged" in second.out
    assert mtimes(agent.root) == before
    assert snapshot(agent.root) == content
    assert not [path for path in agent.root.rglob(".*.tmp")]


def test_changed_input_updates_and_removes(agent):
    assert agent.run(user_data=(INPUTS / "terraform-eks-al2023.mime").read_bytes()).code == EXIT_OK
    assert (agent.root / "etc/containerd/config.d/00-nodeforge.toml").exists()
    result = agent.run(user_data=(INPUTS / "eksctl-al2.sh").read_bytes())
    # the drop-in stays for nodeadm's runtime settings, without the first input's containerd TOML
    assert "updated: /etc/containerd/config.d/00-nodeforge.toml" in result.out
    assert "removed: /etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf" in result.out
    assert "updated: /etc/kubernetes/kubelet/config.json" in result.out
    assert "discard_unpacked_layers" not in (agent.root / "etc/containerd/config.d/00-nodeforge.toml").read_text()


def test_dry_run_prints_and_writes_nothing(agent):
    result = agent.run("--dry-run", user_data=(INPUTS / "eksctl-al2.sh").read_bytes())
    assert result.code == EXIT_OK
    assert list(agent.root.iterdir()) == []
    assert "would be created: /etc/kubernetes/kubelet/config.json" in result.out
    assert '+  "providerID": "aws:///us-west-2f/i-1234567890abcdef0",' in result.out


def test_dry_run_after_a_run_shows_a_diff(agent):
    assert agent.run(user_data=(INPUTS / "eksctl-al2.sh").read_bytes()).code == EXIT_OK
    agent.imds.metadata["instance-type"] = "m5.large"
    result = agent.run("--dry-run")
    assert "would be updated: /etc/kubernetes/kubelet/config.json" in result.out
    assert '-  "maxPods": 58,' in result.out and '+  "maxPods": 29,' in result.out
    assert json.loads((agent.root / "etc/kubernetes/kubelet/config.json").read_text())["maxPods"] == 58


def test_modes_and_directories(agent):
    assert agent.run(user_data=(INPUTS / "eksctl-al2.sh").read_bytes()).code == EXIT_OK
    mode = lambda path: (agent.root / path).stat().st_mode & 0o777  # noqa: E731
    assert mode("var/lib/kubelet/kubeconfig") == 0o600
    assert mode("var/lib/kubelet") == 0o700
    assert mode("etc/kubernetes/kubelet/config.json") == 0o644
    assert mode("etc/kubernetes/pki/ca.crt") == 0o644
    assert mode("etc/eks/kubelet/environment") == 0o644


def test_baked_config_is_the_base_and_its_settings_survive(agent):
    baked = {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "authentication": {"anonymous": {"enabled": False}, "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"}},
        "authorization": {"mode": "Webhook"},
        "eventRecordQPS": 50,
        "featureGates": {"RotateKubeletServerCertificate": True},
        "makeIPTablesUtilChains": True,
        "protectKernelDefaults": True,
        "readOnlyPort": 0,
        "rotateCertificates": True,
        "streamingConnectionIdleTimeout": "4h0m0s",
        "tlsCipherSuites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
        "imageGCHighThresholdPercent": 80,
    }
    path = agent.root / "etc/kubernetes/kubelet/config.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(baked))
    assert agent.run(user_data=(INPUTS / "eksctl-al2.sh").read_bytes()).code == EXIT_OK
    config = json.loads(path.read_text())
    assert config["eventRecordQPS"] == 50
    assert config["imageGCHighThresholdPercent"] == 80
    assert config["tlsCipherSuites"] == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    assert config["maxPods"] == 58 and config["clusterDNS"] == ["10.100.0.10"]
    assert config["authentication"]["webhook"] == {"enabled": True, "cacheTTL": "2m0s"}
    again = agent.run()
    assert "0 file(s) changed" in again.out


def test_user_data_from_a_file_and_json_report(agent, tmp_path):
    path = tmp_path / "user-data"
    path.write_bytes((INPUTS / "karpenter-bottlerocket.toml").read_bytes())
    result = agent.run("--user-data", str(path), "--json")
    assert result.code == EXIT_OK, result.err
    report = json.loads(result.out)
    assert report["facts"]["dialect"] == "toml"
    assert report["facts"]["maxPods"] == 110
    assert report["dryRun"] is False
    assert not [request for request in agent.imds.requests if request[1] == "/latest/user-data"]
