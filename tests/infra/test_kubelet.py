"""kubelet: verified binaries, unit, and the CIS EKS worker-node settings of its configuration files."""

import json

import pytest

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


def test_not_started_at_bake_time(host):
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


@pytest.mark.cis
def test_cis_3_2_1_anonymous_auth_disabled(kubelet_config):
    assert kubelet_config["authentication"]["anonymous"]["enabled"] is False


@pytest.mark.cis
def test_cis_3_2_2_authorization_not_always_allow(kubelet_config):
    assert kubelet_config["authorization"]["mode"] == "Webhook"


@pytest.mark.cis
def test_cis_3_2_3_client_ca_file(kubelet_config):
    assert kubelet_config["authentication"]["x509"]["clientCAFile"] == "/etc/kubernetes/pki/ca.crt"


@pytest.mark.cis
def test_cis_3_2_4_read_only_port_disabled(kubelet_config):
    assert kubelet_config["readOnlyPort"] == 0


@pytest.mark.cis
def test_cis_3_2_5_streaming_idle_timeout_not_zero(kubelet_config):
    assert kubelet_config["streamingConnectionIdleTimeout"] not in ("0", "0s", 0)


@pytest.mark.cis
def test_cis_3_2_6_make_iptables_util_chains(kubelet_config):
    assert kubelet_config["makeIPTablesUtilChains"] is True


@pytest.mark.cis
def test_cis_3_2_7_event_record_qps(kubelet_config):
    assert isinstance(kubelet_config["eventRecordQPS"], int) and kubelet_config["eventRecordQPS"] >= 0


@pytest.mark.cis
def test_cis_3_2_8_rotate_certificates(kubelet_config):
    assert kubelet_config["rotateCertificates"] is True


@pytest.mark.cis
def test_cis_3_2_9_rotate_server_certificates(kubelet_config):
    assert kubelet_config["featureGates"]["RotateKubeletServerCertificate"] is True


@pytest.mark.cis
def test_cis_protect_kernel_defaults(host, kubelet_config):
    """protectKernelDefaults is on, and the kernel holds the values kubelet then demands."""
    assert kubelet_config["protectKernelDefaults"] is True
    assert host.sysctl("vm.overcommit_memory") == 1
    assert host.sysctl("kernel.panic") == 10
    assert host.sysctl("kernel.panic_on_oops") == 1


@pytest.mark.cis
def test_cis_hostname_override_not_set(host):
    """Older CIS EKS benchmark: kubelet does not get --hostname-override (the node name is the EC2 one)."""
    for path in ("/etc/systemd/system/kubelet.service", "/etc/systemd/system/kubelet.service.d/10-kubelet-args.conf"):
        assert "--hostname-override" not in host.file(path).content_string, path
    environment = host.file("/etc/eks/kubelet/environment")
    if environment.exists:
        assert "--hostname-override" not in environment.content_string


def test_cgroup_driver_matches_containerd(kubelet_config):
    assert kubelet_config["cgroupDriver"] == "systemd"
