"""bootstrap_agent: installed and wired into boot; run inside the instance against a fake IMDS for each user-data
dialect, the files it writes pass the CIS EKS worker-node checks."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from conftest import REPO

from nodeforge.bootstrap import cis
from nodeforge.vm.imds import DEFAULT_METADATA, FakeImdsServer

pytestmark = pytest.mark.bootstrap_agent

INPUTS = REPO / "tests" / "unit" / "bootstrap" / "inputs"
DIALECTS = ["karpenter-al2023.mime", "mng-al2.mime", "eksctl-al2.sh", "karpenter-bottlerocket.toml"]


def test_agent_installed(host):
    # byte-compiled at install (the role's handler), before anything ran the agent: no compiling at each boot
    assert host.run("ls /usr/lib/nodeforge/nodeforge/bootstrap/__pycache__/cli.cpython-*.pyc").rc == 0
    agent = host.file("/usr/bin/nodeforge-bootstrap")
    assert agent.mode == 0o755 and agent.user == "root"
    assert host.run("/usr/bin/nodeforge-bootstrap --help").rc == 0
    assert host.file("/etc/eks/bootstrap.sh").mode == 0o755


def test_unit_enabled_and_valid(host):
    assert host.service("nodeforge-bootstrap").is_enabled
    result = host.run("systemd-analyze verify /etc/systemd/system/nodeforge-bootstrap.service")
    assert result.rc == 0, result.stderr
    unit = host.file("/etc/systemd/system/nodeforge-bootstrap.service").content_string
    assert "Before=containerd.service kubelet.service" in unit


def seed_root(host) -> str:
    """A scratch root holding the baked kubelet configuration the agent merges over."""
    root = f"/var/tmp/nodeforge-bootstrap-{uuid.uuid4().hex[:8]}"
    kubelet_dir = f"{root}/etc/kubernetes/kubelet"
    host.check_output(f"mkdir -p {kubelet_dir} && cp /etc/kubernetes/kubelet/config.json {kubelet_dir}/")
    return root


@pytest.fixture(scope="module")
def imds(booted_node):
    if booted_node:
        # These runs need this test's fake IMDS on the host's loopback, which a VM does not share. On a booted node
        # the agent ran at boot against the instance's IMDS; tests/e2e/test_first_boot.py compares its files.
        pytest.skip("runs the agent against a fake IMDS on the host's 127.0.0.1: not reachable from a booted VM")
    with FakeImdsServer() as state:
        yield state


@pytest.fixture(params=DIALECTS)
def bootstrapped(request, host, imds):
    """Run the agent in the instance under a scratch root seeded with the baked kubelet configuration."""
    imds.user_data = (INPUTS / request.param).read_bytes()
    root = seed_root(host)
    result = host.run(
        f"/usr/bin/nodeforge-bootstrap --root {root} --imds-endpoint {imds.endpoint} --no-start --cpus 2 --json"
    )
    try:
        assert result.rc == 0, result.stdout + result.stderr
        yield root, json.loads(result.stdout)
    finally:
        host.run(f"rm -rf {root}")


def test_agent_output_passes_cis(host, bootstrapped):
    root, _report = bootstrapped
    config_file = host.file(f"{root}/etc/kubernetes/kubelet/config.json")
    kubeconfig = host.file(f"{root}/var/lib/kubelet/kubeconfig")
    # 3.1.1 / 3.1.2 kubeconfig, 3.1.3 / 3.1.4 kubelet config: mode 644 or stricter, root:root
    for f in (kubeconfig, config_file):
        assert f.exists and f.mode & 0o133 == 0 and f.user == "root" and f.group == "root"
    config = json.loads(config_file.content_string)
    environment = host.file(f"{root}/etc/eks/kubelet/environment").content_string
    flags = re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*(?:=[^\s\"']*)?", environment)
    # 3.2.1-3.2.9, protectKernelDefaults, node identity: the one rule set (data/cis_kubelet.json), flags applied
    assert cis.violations(config, flags) == []
    # node identity, per instance from IMDS (what replaces the old "no --hostname-override" check)
    zone, instance_id = DEFAULT_METADATA["placement/availability-zone"], DEFAULT_METADATA["instance-id"]
    assert config["providerID"] == f"aws:///{zone}/{instance_id}"
    node_names = {DEFAULT_METADATA["local-hostname"], instance_id}
    assert [flag.split("=", 1)[1] for flag in flags if flag.startswith("--hostname-override=")][-1] in node_names
    assert f"--node-ip={DEFAULT_METADATA['local-ipv4']}" in flags
    assert "--cloud-provider=external" in flags
    # max pods from the computed table, or (bootstrap.sh --use-max-pods false) from the user's kubelet flags
    assert config.get("maxPods", 0) > 0 or "--max-pods=" in environment
    assert host.file(f"{root}/etc/kubernetes/pki/ca.crt").content_string.startswith("-----BEGIN CERTIFICATE-----")


def test_agent_rerun_changes_nothing(host, imds):
    imds.user_data = (INPUTS / "karpenter-al2023.mime").read_bytes()
    root = seed_root(host)
    cmd = f"/usr/bin/nodeforge-bootstrap --root {root} --imds-endpoint {imds.endpoint} --no-start --cpus 2 --json"
    try:
        host.check_output(cmd)
        second = json.loads(host.check_output(cmd))
        assert json.dumps(second).count("unchanged") >= 4, second
    finally:
        host.run(f"rm -rf {root}")


def test_containerd_reads_agent_dropin_without_losing_image_settings(host, imds):
    """The real containerd merges the agent's drop-in over the image's config.toml: the pause image changes, and
    the image's CRI settings (systemd cgroups, CNI dirs) survive (containerd 1.x replaces imported sections)."""
    if not host.file("/etc/containerd/config.toml").exists:
        pytest.skip("no containerd on this instance (the agent's own scenario); checked on the whole node and images")
    ca = (INPUTS / "ca.b64").read_text().strip()
    imds.user_data = (
        "#!/bin/bash\nset -ex\n/etc/eks/bootstrap.sh dropin-test --apiserver-endpoint https://example.com "
        f"--b64-cluster-ca {ca} --pause-container-account 123456789012 --pause-container-version 3.9\n"
    ).encode()
    root = seed_root(host)
    try:
        host.check_output(f"mkdir -p {root}/etc/containerd && cp /etc/containerd/config.toml {root}/etc/containerd/")
        host.check_output(
            f"/usr/bin/nodeforge-bootstrap --root {root} --imds-endpoint {imds.endpoint} --no-start --cpus 2"
        )
        # the same config, with its imports pointed into the scratch root
        host.check_output(f"sed -i 's#\"/etc/containerd/config.d#\"{root}/etc/containerd/config.d#' "
                          f"{root}/etc/containerd/config.toml")  # fmt: skip
        dump = host.check_output(f"containerd --config {root}/etc/containerd/config.toml config dump")
    finally:
        host.run(f"rm -rf {root}")
    assert "123456789012.dkr.ecr." in dump and "/eks/pause:3.9" in dump, dump
    assert "SystemdCgroup = true" in dump, dump
    assert 'bin_dir = "/opt/cni/bin"' in dump, dump
