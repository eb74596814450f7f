"""kubelet: verified binaries, unit, and the CIS EKS worker-node settings of its configuration files."""

import json
import re

import pytest

from nodeforge.bootstrap import cis

pytestmark = pytest.mark.kubelet

CONFIG = "/etc/kubernetes/kubelet/config.json"


@pytest.fixture(scope="module")
def kubelet_config(host):
    return json.loads(host.file(CONFIG).content_string)


def test_kubelet_binary_verified(host, expected_sha256, kubernetes_release):
    binary = host.file("/usr/bin/kubelet")
    assert binary.user == "root" and binary.mode == 0o755
    assert binary.sha256sum == expected_sha256("kubelet")
    assert host.check_output("/usr/bin/kubelet --version") == f"Kubernetes v{kubernetes_release['version']}"


def test_credential_provider_verified(host, expected_sha256):
    binary = host.file("/etc/eks/image-credential-provider/ecr-credential-provider")
    assert binary.mode == 0o755
    assert binary.sha256sum == expected_sha256("ecr-credential-provider")
    config = json.loads(host.file("/etc/eks/image-credential-provider/config.json").content_string)
    assert config["kind"] == "CredentialProviderConfig"
    assert config["providers"][0]["name"] == "ecr-credential-provider"


def test_no_partial_downloads_left(host):
    out = host.run("find /usr/bin /etc/eks -name '*.tmp' -o -name 'tmp*' -newer /etc/hostname")
    assert out.stdout.strip() == ""


def test_unit_valid_and_enabled(host):
    assert host.service("kubelet").is_enabled
    result = host.run("systemd-analyze verify /etc/systemd/system/kubelet.service")
    assert result.rc == 0, result.stderr


def test_not_started_at_bake_time(host, image_state_only):
    """kubelet starts at boot once bootstrap wrote its kubeconfig, never in the image build."""
    assert not host.file("/var/lib/kubelet/kubeconfig").exists
    assert not host.service("kubelet").is_running


def test_unit_flags(host):
    dropin = host.file("/etc/systemd/system/kubelet.service.d/10-kubelet-args.conf").content_string
    assert "--image-credential-provider-config=/etc/eks/image-credential-provider/config.json" in dropin
    assert "--config-dir=/etc/kubernetes/kubelet/config.json.d" in dropin


# CIS Amazon EKS Benchmark, worker node section (kube-bench ids), config-file checks.
# The kubeconfig is written at boot by the bootstrap agent (its output is checked per dialect in
# test_bootstrap_agent.py); in an image, the directory that will hold it must already be closed.
KUBECONFIG = "/var/lib/kubelet/kubeconfig"


@pytest.mark.cis
def test_cis_3_1_1_kubeconfig_permissions(host):
    directory = host.file(KUBECONFIG.rsplit("/", 1)[0])
    assert directory.is_directory and directory.mode & 0o077 == 0
    if host.file(KUBECONFIG).exists:
        assert host.file(KUBECONFIG).mode & 0o133 == 0  # 644 or more restrictive


@pytest.mark.cis
def test_cis_3_1_2_kubeconfig_ownership(host):
    directory = host.file(KUBECONFIG.rsplit("/", 1)[0])
    assert directory.user == "root" and directory.group == "root"
    if host.file(KUBECONFIG).exists:
        assert host.file(KUBECONFIG).user == "root" and host.file(KUBECONFIG).group == "root"


@pytest.mark.cis
def test_cis_3_1_3_config_permissions(host):
    assert host.file(CONFIG).mode & 0o133 == 0  # 644 or more restrictive


@pytest.mark.cis
def test_cis_3_1_4_config_ownership(host):
    assert host.file(CONFIG).user == "root" and host.file(CONFIG).group == "root"


# 3.2.x and this project's own kubelet rules: generated from the one rule set the kubelet role's assert and the
# bootstrap agent also read (src/nodeforge/bootstrap/data/cis_kubelet.json), evaluated by the same code
# (nodeforge.bootstrap.cis) over the baked config.json with the flags baked into the unit and environment file.
UNIT_FILES = (
    "/etc/systemd/system/kubelet.service",
    "/etc/systemd/system/kubelet.service.d/10-kubelet-args.conf",
    "/etc/eks/kubelet/environment",
)
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?:=[^\s\"']*)?")


@pytest.fixture(scope="module")
def baked_flags(host):
    """Every --flag[=value] word in the kubelet's unit, drop-in and environment file, in that order."""
    flags = []
    for path in UNIT_FILES:
        if host.file(path).exists:
            flags += _FLAG.findall(host.file(path).content_string)
    return flags


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _rule_test(rule: dict):
    @pytest.mark.cis
    def test(host, kubelet_config, baked_flags):
        problem = cis.check_rule(rule, cis.apply_flags(kubelet_config, baked_flags))
        assert problem is None, problem
        if rule["id"] == "protect-kernel-defaults":  # and the kernel holds the values the kubelet then demands
            assert host.sysctl("vm.overcommit_memory") == 1
            assert host.sysctl("kernel.panic") == 10
            assert host.sysctl("kernel.panic_on_oops") == 1

    test.__doc__ = f"{rule['id']}: {rule['title']}" + (f" ({rule['reason']})" if rule.get("reason") else "")
    return test


for _rule in cis.rules():
    _number = _rule["id"].replace(".", "_") + "_" if _rule["id"][0].isdigit() else ""
    _name = f"test_cis_{_number}{_slug(_rule['title'] if _number else _rule['id'])}"
    globals()[_name] = _rule_test(_rule)
    globals()[_name].__name__ = _name


@pytest.mark.cis
def test_cis_node_identity_set_at_boot_only(host, kubelet_config, baked_flags, image_state_only):
    """What replaces the old "no --hostname-override" check (CIS EKS <= 1.2.0 3.2.8, dropped since): the node's
    identity -- providerID, --hostname-override, --node-ip -- is per instance, so the bootstrap agent sets it at
    boot from IMDS (tests/infra/test_bootstrap_agent.py checks its values); nothing of it is baked into the image."""
    assert "providerID" not in kubelet_config
    baked = {flag.split("=", 1)[0] for flag in baked_flags}
    assert not baked & {"--hostname-override", "--node-ip", "--provider-id"}, baked
