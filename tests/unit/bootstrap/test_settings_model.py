"""The typed settings model of Bottlerocket-style TOML user data, and what the agent does with it: every known
key, real-world documents, unknown keys, types, sysctls (CIS), registry mirrors for containerd 1.x and 2.x,
credentials, and all-or-nothing writes."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from bootstrap_helpers import INPUTS, snapshot

from nodeforge.bootstrap import cli as agent_cli
from nodeforge.bootstrap import containerd, tomlr
from nodeforge.bootstrap.bottlerocket import settings_from_toml
from nodeforge.bootstrap.errors import EXIT_CIS, EXIT_INVALID, EXIT_OK, EXIT_WRITE, Diagnostics
from nodeforge.bootstrap.model import RegistryMirror, validate
from nodeforge.bootstrap.settings import (
    KUBERNETES,
    SECTIONS,
    SYSCTL_PATH,
    Settings,
    parse_settings,
    render_sysctl,
    sysctl_violations,
)

CA = (INPUTS / "ca.b64").read_text().strip()
ENDPOINT = "https://4E2A1F0D8B6C3E5A7B9C.gr7.us-west-2.eks.amazonaws.com"
CLUSTER = f"[settings.kubernetes]\ncluster-name = 'demo'\napi-server = '{ENDPOINT}'\ncluster-certificate = '{CA}'\n"
REAL_WORLD = [
    "karpenter-bottlerocket.toml",
    "karpenter-bottlerocket-nodeclass.toml",
    "eksctl-bottlerocket.toml",
    "mng-bottlerocket.toml",
    "terraform-eks-bottlerocket.toml",
]
CONTAINERD_DROPIN = "etc/containerd/config.d/00-nodeforge.toml"


def parse(text: str) -> tuple[Settings, Diagnostics]:
    diagnostics = Diagnostics()
    return parse_settings(tomlr.loads(text), diagnostics), diagnostics


def errors_of(text: str) -> list[str]:
    return parse(text)[1].errors


# -- every documented key ----------------------------------------------------------------------------------------

# A valid value for every settings.kubernetes key (TOML right-hand sides).
KUBERNETES_EXAMPLES: dict[str, str] = {
    "cluster-name": "'demo'",
    "api-server": f"'{ENDPOINT}'",
    "cluster-certificate": f"'{CA}'",
    "cluster-dns-ip": "['10.100.0.10']",
    "max-pods": "58",
    "node-labels": "{ 'karpenter.sh/nodepool' = 'default', team = 'a' }",
    "node-taints": "{ 'nvidia.com/gpu' = ['true:NoSchedule'], dedicated = 'x:NoExecute' }",
    "hostname-override": "'node-a'",
    "hostname-override-source": "'private-dns-name'",
    "log-level": "4",
    "service-ipv4-cidr": "'10.100.0.0/16'",
    "service-ipv6-cidr": "'fd00::/108'",
    "allowed-unsafe-sysctls": "['net.core.somaxconn']",
    "cluster-domain": "'cluster.local'",
    "container-log-max-files": "5",
    "container-log-max-size": "'10Mi'",
    "container-log-max-workers": "2",
    "container-log-monitor-interval": "'10s'",
    "cpu-cfs-quota-enforced": "true",
    "cpu-manager-policy": "'static'",
    "cpu-manager-policy-options": "['full-pcpus-only']",
    "cpu-manager-reconcile-period": "'10s'",
    "event-burst": "100",
    "event-qps": "50",
    "eviction-hard": "{ 'memory.available' = '5%' }",
    "eviction-max-pod-grace-period": "30",
    "eviction-soft": "{ 'nodefs.available' = '15%' }",
    "eviction-soft-grace-period": "{ 'nodefs.available' = '1m' }",
    "image-gc-high-threshold-percent": "'85'",
    "image-gc-low-threshold-percent": "80",
    "kube-api-burst": "20",
    "kube-api-qps": "'10'",
    "kube-reserved": "{ cpu = '90m', memory = '1Gi', ephemeral-storage = '1Gi' }",
    "memory-manager-policy": "'Static'",
    "memory-manager-reserved-memory": "{ 0 = { enabled = true, memory = '1Gi' }, 1 = { enabled = false } }",
    "pod-pids-limit": "1024",
    "provider-id": "'aws:///us-west-2a/i-0123456789abcdef0'",
    "registry-burst": "20",
    "registry-qps": "10",
    "seccomp-default": "true",
    "shutdown-grace-period": "'30s'",
    "shutdown-grace-period-for-critical-pods": "'10s'",
    "system-reserved": "{ cpu = '100m', pid = '1000' }",
    "topology-manager-policy": "'best-effort'",
    "topology-manager-scope": "'container'",
    "authentication-mode": "'aws'",
    "bootstrap-token": "'abcdef.0123456789abcdef'",
    "cloud-provider": "'external'",
    "credential-providers": "{ ecr-credential-provider = { enabled = true } }",
    "device-ownership-from-security-context": "true",
    "memory-swap-behavior": "'NoSwap'",
    "node-ip": "'10.0.0.1'",
    "pod-infra-container-image": "'localhost/kubernetes/pause'",
    "reserved-cpus": "'0-1'",
    "server-certificate": "'Zm9v'",
    "server-key": "'Zm9v'",
    "server-tls-bootstrap": "true",
    "single-process-oom-kill": "true",
    "standalone-mode": "false",
    "static-pods": "{ web = { enabled = true, manifest = 'Zm9v' } }",
    "static-pods-enabled": "true",
}
# A valid value for every other section (TOML under [settings]).
SECTION_EXAMPLES: dict[str, str] = {
    "container-registry": "mirrors = [{ registry = 'docker.io', endpoint = ['https://m.example.com'] }]\n"
    "credentials = [{ registry = 'docker.io', username = 'u', password = 'p' }]",
    "kernel": "lockdown = 'integrity'\nsysctl = { 'net.core.somaxconn' = '4096' }\n"
    "modules = { sctp = { allowed = false } }\nhugepages = {}\ndrivers = {}",
    "host-containers": "admin = { enabled = false, superpowered = true, source = 'x', user-data = 'Zm9v', "
    "command = [] }",
    "autoscaling": "should-wait = false",
    "aws": "region = 'us-west-2'\nprofile = 'default'\nconfig = 'Zm9v'\ncredentials = 'Zm9v'",
    "boot": "reboot-to-reconcile = true\nkernel-parameters = { console = ['tty0'] }\ninit-parameters = {}",
    "bootstrap-commands": "setup = { commands = [['echo', 'hi']] }",
    "bootstrap-containers": "setup = { source = 'x', mode = 'once' }",
    "cloudformation": "should-signal = false\nstack-name = 's'\nlogical-resource-id = 'r'",
    "container-runtime": "max-concurrent-downloads = 3\nenable-unprivileged-ports = true\nsnapshotter = 'overlayfs'",
    "container-runtime-plugins": "soci-snapshotter = { pull-mode = 'parallel-pull-unpack' }",
    "dns": "name-servers = ['10.0.0.2']\nsearch-list = ['example.com']",
    "kubelet-device-plugins": "nvidia = { pass-device-specs = true }",
    "kubelet-dra-drivers": "nvidia = { enabled = true }",
    "metrics": "send-metrics = false\nmetrics-url = 'https://example.com'\nservice-checks = ['kubelet']",
    "network": "hostname = 'n'\nhttps-proxy = 'http://proxy:3128'\nno-proxy = ['localhost']\ndisable-ipv6 = []",
    "ntp": "time-servers = ['169.254.169.123']\noptions = ['iburst']",
    "nvidia-container-runtime": "visible-devices-as-volume-mounts = true",
    "oci-defaults": "capabilities = { sys-admin = false }\nresource-limits = {}",
    "oci-hooks": "log4j-hotpatch-enabled = false",
    "pki": "corp = { data = 'Zm9v', trusted = true }",
    "updates": "ignore-waves = true\nseed = 123\nversion-lock = 'latest'\nmetadata-base-url = 'https://u'",
}


def test_every_documented_key_is_accepted():
    assert set(KUBERNETES_EXAMPLES) == set(KUBERNETES)
    assert set(SECTION_EXAMPLES) | {"kubernetes", "motd"} == set(SECTIONS)
    kubernetes = "".join(f"{key} = {value}\n" for key, value in KUBERNETES_EXAMPLES.items())
    sections = "".join(f"[settings.{name}]\n{body}\n" for name, body in SECTION_EXAMPLES.items())
    settings, diagnostics = parse(f"[settings]\nmotd = 'hi'\n[settings.kubernetes]\n{kubernetes}{sections}")
    assert diagnostics.errors == []
    unapplied = {key for key, setting in KUBERNETES.items() if not setting.applied}
    for key in unapplied:
        assert f"settings.kubernetes.{key}: accepted, not applied by this image" in diagnostics.warnings
    assert "settings.kernel.lockdown: accepted, not applied by this image" in diagnostics.warnings
    assert "settings.motd: accepted, not applied by this image" in diagnostics.warnings
    assert "settings.bootstrap-containers.setup: accepted, not applied by this image" in diagnostics.warnings
    assert any(w.startswith("settings.host-containers.admin: accepted, not applied") for w in diagnostics.warnings)
    applied_kubelet = {setting.kubelet for setting in KUBERNETES.values() if setting.kubelet}
    assert set(settings.kubernetes.kubelet) == applied_kubelet
    assert settings.sysctl == {"net.core.somaxconn": "4096"}
    assert settings.mirrors == [RegistryMirror("docker.io", ["https://m.example.com"])]
    assert settings.credentials[0].username == "u"


def test_kubelet_fields_take_the_kubelets_shape():
    keys = ["cpu-manager-policy-options", "memory-manager-reserved-memory", "image-gc-high-threshold-percent"]
    settings, diagnostics = parse(CLUSTER + "".join(f"{key} = {KUBERNETES_EXAMPLES[key]}\n" for key in keys))
    assert diagnostics.errors == []
    kubelet = settings.kubernetes.kubelet
    assert kubelet["cpuManagerPolicyOptions"] == {"full-pcpus-only": "true"}
    assert kubelet["reservedMemory"] == [{"numaNode": 0, "limits": {"memory": "1Gi"}}]
    assert kubelet["imageGCHighThresholdPercent"] == 85
    document = tomlr.loads(CLUSTER + "log-level = 4\nkube-api-qps = '10'\nhostname-override-source = 'instance-id'\n")
    node = settings_from_toml(document, Diagnostics())
    assert node.spec.kubelet.config == {"logging": {"verbosity": 4}, "kubeAPIQPS": 10}
    assert node.spec.feature_gates == {"InstanceIdNodeName": True}


# -- real-world documents ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", REAL_WORLD)
def test_real_world_documents_parse_without_errors(name):
    diagnostics = Diagnostics()
    node = settings_from_toml(tomlr.loads((INPUTS / name).read_text()), diagnostics)
    validate(node, diagnostics)
    assert diagnostics.errors == []
    assert node.spec.cluster.api_server_endpoint == ENDPOINT
    assert node.spec.cluster.certificate_authority.startswith(b"-----BEGIN CERTIFICATE-----")


def test_karpenter_shapes():
    settings, diagnostics = parse((INPUTS / "karpenter-bottlerocket-nodeclass.toml").read_text())
    kubernetes = settings.kubernetes
    assert kubernetes.node_labels["karpenter.sh/nodepool"] == "default"
    assert kubernetes.node_taints == {
        "karpenter.sh/unregistered": [":NoExecute"],
        "nvidia.com/gpu": ["true:NoSchedule"],
    }
    assert kubernetes.kubelet["evictionHard"] == {"memory.available": "5%", "nodefs.available": "10%"}
    assert kubernetes.kubelet["kubeReserved"] == {"cpu": "80m", "ephemeral-storage": "1Gi", "memory": "893Mi"}
    assert kubernetes.kubelet["imageGCHighThresholdPercent"] == 85  # Karpenter writes it as a string
    assert kubernetes.cluster_dns_ip == ["10.100.0.10"] and kubernetes.max_pods == 58
    assert [m.registry for m in settings.mirrors] == ["docker.io", "public.ecr.aws"]
    assert settings.sysctl["net.ipv4.tcp_rmem"] == "4096 87380 6291456"
    assert sorted(settings.host_containers) == ["admin", "control"]
    assert settings.host_containers["admin"].enabled is False
    assert "settings.bootstrap-containers.setup-disks" in settings.not_applied
    assert "settings.ntp.time-servers" in settings.not_applied
    assert all("not applied" in warning for warning in diagnostics.warnings)


# -- unknown keys, types, all errors at once -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (CLUSTER + "max-podz = 3\n",
         "settings.kubernetes.max-podz: unknown setting; did you mean settings.kubernetes.max-pods?"),
        ("[settings.kubernetse]\nx = 1\n", "settings.kubernetse: unknown setting; did you mean settings.kubernetes?"),
        ("[settings.frobnicate]\nx = 1\n", "settings.frobnicate: unknown setting"),
        ("[settings.ntp]\ntime-server = []\n",
         "settings.ntp.time-server: unknown setting; did you mean settings.ntp.time-servers?"),
        ("[settings.host-containers.admin]\nenabeld = true\n",
         "settings.host-containers.admin.enabeld: unknown setting; "
         "did you mean settings.host-containers.admin.enabled?"),
        ("[[settings.container-registry.mirrors]]\nregistry = 'docker.io'\nendpoints = ['https://m']\n",
         "settings.container-registry.mirrors[0].endpoints: unknown setting; did you mean "
         "settings.container-registry.mirrors[0].endpoint?"),
        (CLUSTER + "[settings.kubernetes.eviction-hard]\n'memory.availble' = '5%'\n",
         'settings.kubernetes.eviction-hard."memory.availble": unknown key; did you mean '
         'settings.kubernetes.eviction-hard."memory.available"?'),
        (CLUSTER + "[settings.kubernetes.kube-reserved]\ngpu = '1'\n",
         "settings.kubernetes.kube-reserved.gpu: unknown key; known: cpu, ephemeral-storage, memory, pid"),
        ("[setting.kubernetes]\nx = 1\n", "setting: unknown top-level table"),
        ("[settings.ecs]\ncluster = 'x'\n", "settings.ecs: not supported: an Amazon ECS setting"),
    ],
)  # fmt: skip
def test_unknown_keys_are_errors_naming_the_path(toml, message):
    assert any(error.startswith(message) for error in errors_of(toml)), errors_of(toml)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (CLUSTER + "max-pods = 'abc'\n", 'settings.kubernetes.max-pods: must be an integer (got string "abc")'),
        (CLUSTER + "max-pods = true\n", "settings.kubernetes.max-pods: must be an integer (got boolean true)"),
        (CLUSTER + "cluster-dns-ip = 5\n",
         "settings.kubernetes.cluster-dns-ip: must be a string or an array of strings (got integer 5)"),
        (CLUSTER + "node-labels = 'a=b'\n", 'settings.kubernetes.node-labels: must be a table (got string "a=b")'),
        (CLUSTER + "kube-api-qps = 'fast'\n",
         'settings.kubernetes.kube-api-qps: must be an integer (or a string of digits) (got string "fast")'),
        (CLUSTER + "seccomp-default = 'yes'\n", 'settings.kubernetes.seccomp-default: must be a boolean'),
        (CLUSTER + "standalone-mode = 1\n", "settings.kubernetes.standalone-mode: must be a boolean (got integer 1)"),
        (CLUSTER + "image-gc-high-threshold-percent = 150\n",
         "settings.kubernetes.image-gc-high-threshold-percent: must be a percentage"),
        (CLUSTER + "hostname-override-source = 'ip'\n", "settings.kubernetes.hostname-override-source: must be one of"),
        ("[settings.kubernetes]\ncluster-certificate = 'not base64!'\n",
         "settings.kubernetes.cluster-certificate: must be base64"),
        (CLUSTER + "[settings.kubernetes.node-labels]\n'bad key!' = 'x'\n",
         "settings.kubernetes.node-labels.\"bad key!\": key 'bad key!'"),
        (CLUSTER + "[settings.kubernetes.node-labels]\nteam = ['a']\n",
         "settings.kubernetes.node-labels.team: must be a string (got an array)"),
        ("[settings.host-containers.admin]\nenabled = 'yes'\n",
         'settings.host-containers.admin.enabled: must be a boolean (got string "yes")'),
        ("[settings.kernel]\nlockdown = 1\n", "settings.kernel.lockdown: must be a string (got integer 1)"),
        ("[settings]\nmotd = ['x']\n", "settings.motd: must be a string (got an array)"),
        ("[settings.updates]\nseed = 'x'\n", 'settings.updates.seed: must be an integer (got string "x")'),
        ("[[settings.container-registry.mirrors]]\nregistry = 'docker.io'\nendpoint = 'https://m'\n",
         'settings.container-registry.mirrors[0].endpoint: must be an array of strings (got string "https://m")'),
        ("[[settings.container-registry.mirrors]]\nregistry = 'docker.io'\nendpoint = ['ftp://m']\n",
         "settings.container-registry.mirrors[0].endpoint[0]: 'ftp://m' is not an http(s) URL"),
        ("[[settings.container-registry.mirrors]]\nregistry = '../etc'\nendpoint = ['https://m']\n",
         "settings.container-registry.mirrors[0].registry: '../etc' is not a registry host name"),
        ("[[settings.container-registry.mirrors]]\nendpoint = ['https://m']\n",
         "settings.container-registry.mirrors[0].registry: required"),
        ("[[settings.container-registry.credentials]]\nregistry = 'docker.io'\nusername = 'u'\n",
         "settings.container-registry.credentials[0]: username and password go together"),
        ("[[settings.container-registry.credentials]]\nregistry = 'docker.io'\nauth = '%%%'\n",
         "settings.container-registry.credentials[0].auth: must be base64"),
        ("[settings.kernel.sysctl]\n'net.core.somaxconn' = 4096\n",
         'settings.kernel.sysctl."net.core.somaxconn": must be a string (got integer 4096; write "4096")'),
    ],
)  # fmt: skip
def test_wrong_types_and_values_name_the_path(toml, message):
    errors = errors_of(toml)
    assert any(error.startswith(message) for error in errors), errors


def test_every_error_is_collected_not_just_the_first():
    errors = errors_of(
        CLUSTER + "max-pods = 'abc'\nmax-podz = 1\nkube-api-qps = 'x'\n"
        "[settings.kernel.sysctl]\n'../x' = '1'\n[settings.host-containers.admin]\nenabled = 'no'\n"
        "[settings.nope]\n"
    )
    prefixes = [
        "settings.kubernetes.max-pods:",
        "settings.kubernetes.max-podz:",
        "settings.kubernetes.kube-api-qps:",
        'settings.kernel.sysctl."../x":',
        "settings.host-containers.admin.enabled:",
        "settings.nope:",
    ]
    assert sorted(error.split(" ")[0] for error in errors) == sorted(prefixes)


def test_cluster_fields_are_named_as_settings_by_validation():
    diagnostics = Diagnostics()
    node = settings_from_toml(
        tomlr.loads("[settings.kubernetes]\napi-server = 'ftp://x'\ncluster-dns-ip = ['10.0.0.300']\n"), diagnostics
    )
    validate(node, diagnostics)
    assert "settings.kubernetes.cluster-name: required (the EKS cluster name)" in diagnostics.errors
    assert any(e.startswith("settings.kubernetes.api-server: must be an http(s) URL") for e in diagnostics.errors)
    assert any(e.startswith("settings.kubernetes.cluster-certificate: required") for e in diagnostics.errors)
    assert any(e.startswith("settings.kubernetes.cluster-dns-ip[0]: '10.0.0.300'") for e in diagnostics.errors)


def test_missing_kubernetes_table():
    diagnostics = Diagnostics()
    validate(settings_from_toml(tomlr.loads("[settings.ntp]\ntime-servers = []\n"), diagnostics), diagnostics)
    assert [error.split(":")[0] for error in diagnostics.errors] == [
        "settings.kubernetes.cluster-name",
        "settings.kubernetes.api-server",
        "settings.kubernetes.cluster-certificate",
    ]
    assert errors_of("[other]\n") == [
        "other: unknown top-level table (Bottlerocket user data holds only [settings])",
        "settings: missing (the user data needs a [settings.kubernetes] table)",
    ]


# -- sysctls -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "/proc/sys/vm/x", "net..ipv4.x", ".net.x", "-kernel.x", "net.ipv4.", "a b", "net.*", "x" * 200,
     "vm//x"],
)  # fmt: skip
def test_bad_sysctl_names_are_refused(key):
    errors = errors_of(f"[settings.kernel.sysctl]\n{json.dumps(key)} = '1'\n")
    assert len(errors) == 1 and errors[0].startswith("settings.kernel.sysctl.") and "not a sysctl name" in errors[0]


def test_sysctl_values_are_one_line():
    errors = errors_of("[settings.kernel.sysctl]\n'kernel.x' = \"1\\nkernel.y = 2\"\n'kernel.z' = ' '\n")
    assert len(errors) == 2 and all("must be one non-empty line" in e for e in errors)


def test_sysctl_rendering_and_protect_kernel_defaults():
    settings, _ = parse(
        "[settings.kernel.sysctl]\n'net.ipv4.tcp_keepalive_time' = '600'\n'vm/overcommit_memory' = '0'\n"
        "'kernel.panic' = '10'\n'vm.panic_on_oom' = ' 0 '\n"
    )
    assert render_sysctl(settings.sysctl).splitlines()[1:] == [
        "net.ipv4.tcp_keepalive_time = 600",
        "vm/overcommit_memory = 0",
        "kernel.panic = 10",
        "vm.panic_on_oom = 0",
    ]
    assert sysctl_violations(settings.sysctl) == [
        'settings.kernel.sysctl."vm/overcommit_memory": must be 1 while the kubelet\'s protectKernelDefaults is on '
        '(got string "0")'
    ]
    assert render_sysctl({}) is None


SYSCTL_CIS = CLUSTER + "[settings.kernel.sysctl]\n'vm.overcommit_memory' = '0'\n'kernel.panic_on_oops' = '0'\n"


def test_cis_violating_sysctl_is_refused_in_enforce_mode(agent):
    result = agent.run(user_data=SYSCTL_CIS)
    assert result.code == EXIT_CIS, result.err
    assert 'settings.kernel.sysctl."vm.overcommit_memory": must be 1' in result.err
    assert 'settings.kernel.sysctl."kernel.panic_on_oops": must be 1' in result.err
    assert list(agent.root.iterdir()) == []


def test_cis_violating_sysctl_is_applied_with_a_warning_in_warn_mode(agent):
    result = agent.run("--cis-mode", "warn", user_data=SYSCTL_CIS)
    assert result.code == EXIT_OK, result.err
    assert 'warning: CIS: settings.kernel.sysctl."vm.overcommit_memory": must be 1' in result.err
    assert "(applied anyway: --cis-mode=warn)" in result.err
    assert "vm.overcommit_memory = 0\n" in (agent.root / SYSCTL_PATH.lstrip("/")).read_text()


def test_sysctl_file_is_removed_when_the_settings_drop_it(agent):
    assert agent.run(user_data=CLUSTER + "[settings.kernel.sysctl]\n'net.core.somaxconn' = '4096'\n").code == EXIT_OK
    path = agent.root / SYSCTL_PATH.lstrip("/")
    assert path.read_text().endswith("net.core.somaxconn = 4096\n") and path.stat().st_mode & 0o777 == 0o644
    result = agent.run(user_data=CLUSTER)
    assert f"removed: {SYSCTL_PATH}" in result.out and not path.exists()


def test_sysctls_are_reloaded_before_the_kubelet_starts(monkeypatch):
    commands: list[list[str]] = []
    monkeypatch.setattr(agent_cli.services, "_run", lambda args: commands.append(list(args)))
    assert agent_cli._reload_sysctls() == ["systemctl restart systemd-sysctl.service"]
    assert commands == [["restart", "systemd-sysctl.service"]]


# -- registry mirrors and credentials --------------------------------------------------------------------------------

MIRRORS = CLUSTER + (
    "[[settings.container-registry.mirrors]]\nregistry = 'docker.io'\nendpoint = ['https://m1.example.com']\n"
    "[[settings.container-registry.mirrors]]\nregistry = 'docker.io'\nendpoint = ['https://m2.example.com:8443']\n"
    "[[settings.container-registry.mirrors]]\nregistry = '*'\nendpoint = ['http://cache.local:5000']\n"
)


def write_base_config(root: Path, text: str) -> None:
    path = root / "etc/containerd/config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def dropin(root: Path) -> dict[str, Any]:
    return tomlr.loads((root / CONTAINERD_DROPIN).read_text())


def test_mirrors_render_hosts_toml(agent):
    assert agent.run(user_data=MIRRORS).code == EXIT_OK
    docker = tomlr.loads((agent.root / "etc/containerd/certs.d/docker.io/hosts.toml").read_text())
    assert docker == {
        "server": "https://registry-1.docker.io",
        "host": {
            "https://m1.example.com": {"capabilities": ["pull", "resolve"]},
            "https://m2.example.com:8443": {"capabilities": ["pull", "resolve"]},
        },
    }
    assert list(docker["host"]) == ["https://m1.example.com", "https://m2.example.com:8443"]  # order kept
    default = tomlr.loads((agent.root / "etc/containerd/certs.d/_default/hosts.toml").read_text())
    assert default == {"host": {"http://cache.local:5000": {"capabilities": ["pull", "resolve"]}}}


@pytest.mark.parametrize(
    ("base", "plugin", "version"),
    [
        (None, "io.containerd.grpc.v1.cri", 2),
        ('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/etc/docker/certs.d"\n',
         "io.containerd.grpc.v1.cri", 2),
        ("version = 3\n[plugins.'io.containerd.cri.v1.images'.pinned_images]\nsandbox = 'x'\n",
         "io.containerd.cri.v1.images", 3),
    ],
    ids=["no-base-config", "containerd-1.x", "containerd-2.x"],
)  # fmt: skip
def test_mirrors_point_containerd_at_certs_d(agent, base, plugin, version):
    if base is not None:
        write_base_config(agent.root, base)
    assert agent.run(user_data=MIRRORS).code == EXIT_OK
    document = dropin(agent.root)
    assert document["version"] == version
    expected = (
        "/etc/containerd/certs.d:/etc/docker/certs.d" if "docker/certs.d" in (base or "") else "/etc/containerd/certs.d"
    )
    # besides the registry, the drop-in carries nodeadm's runtime settings (the CRI runtime plugin in version 3)
    assert set(document["plugins"]) == {plugin} | ({"io.containerd.cri.v1.runtime"} if version == 3 else set())
    assert document["plugins"][plugin]["registry"]["config_path"] == expected
    # the rest of the image's section is carried along (containerd 1.x replaces imported sections whole)
    base_section = tomlr.loads(base or "").get("plugins", {}).get(plugin, {})
    for key, value in base_section.items():
        if key != "registry":
            assert document["plugins"][plugin][key] == value


@pytest.mark.parametrize(
    "base",
    [
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n'
        'config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"\n',
        "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/etc/containerd/certs.d'\n",
    ],
    ids=["containerd-1.x", "containerd-2.x"],
)  # fmt: skip
def test_no_config_path_when_the_image_already_reads_certs_d(agent, base):
    write_base_config(agent.root, base)
    assert agent.run(user_data=MIRRORS).code == EXIT_OK
    plugins = dropin(agent.root)["plugins"]
    assert all("registry" not in section or section["registry"] == tomlr.loads(base)["plugins"][name]["registry"]
               for name, section in plugins.items())  # fmt: skip
    assert (agent.root / "etc/containerd/certs.d/docker.io/hosts.toml").exists()


def test_mirrors_are_refused_next_to_legacy_registry_mirrors(agent):
    write_base_config(
        agent.root,
        'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://x"]\n',
    )
    result = agent.run(user_data=MIRRORS)
    assert result.code == EXIT_INVALID
    assert "sets registry.mirrors, which containerd refuses next to config_path" in result.err
    assert sorted(str(p.relative_to(agent.root)) for p in agent.root.rglob("*") if p.is_file()) == [
        "etc/containerd/config.toml"
    ]


def test_older_mirrors_table_form():
    settings, diagnostics = parse("[settings.container-registry.mirrors]\n'docker.io' = ['https://m']\n")
    assert diagnostics.errors == [] and settings.mirrors == [RegistryMirror("docker.io", ["https://m"])]


@pytest.mark.parametrize("version", [2, 3])
def test_credentials_go_to_the_drop_in_readable_by_root_only(agent, version):
    write_base_config(agent.root, f"version = {version}\n")
    auth = base64.b64encode(b"user:secret").decode()
    user_data = CLUSTER + (
        f"[[settings.container-registry.credentials]]\nregistry = 'docker.io'\nauth = '{auth}'\n"
        "[[settings.container-registry.creds]]\nregistry = 'registry.example.com:5000'\nidentitytoken = 'tok'\n"
    )
    assert agent.run(user_data=user_data).code == EXIT_OK
    path = agent.root / CONTAINERD_DROPIN
    assert path.stat().st_mode & 0o777 == 0o600
    plugin = containerd.registry_plugin(version)
    assert dropin(agent.root)["plugins"][plugin]["registry"] == {
        "configs": {
            "registry-1.docker.io": {"auth": {"auth": auth}},
            "registry.example.com:5000": {"auth": {"identitytoken": "tok"}},
        }
    }


def test_stale_hosts_files_are_removed_and_the_images_own_are_reported(agent):
    own = agent.root / "etc/containerd/certs.d/docker.io/hosts.toml"
    own.parent.mkdir(parents=True)
    own.write_text('# Ansible managed\nserver = "https://registry-1.docker.io"\n')
    result = agent.run(user_data=MIRRORS)
    assert "/etc/containerd/certs.d/docker.io/hosts.toml: the image's file is replaced" in result.err
    result = agent.run(user_data=CLUSTER)
    assert "removed: /etc/containerd/certs.d/docker.io/hosts.toml" in result.out
    assert "removed: /etc/containerd/certs.d/_default/hosts.toml" in result.out
    assert list((agent.root / "etc/containerd/certs.d").glob("*/hosts.toml")) == []


# -- host containers, idempotence, atomicity --------------------------------------------------------------------------


def test_host_containers_are_typed_placeholders():
    settings, diagnostics = parse(
        "[settings.host-containers.admin]\nenabled = true\nsuperpowered = true\nuser-data = 'Zm9v'\n"
        "[settings.host-containers.'bad name']\nenabled = true\n"
    )
    assert settings.host_containers["admin"].superpowered is True
    assert diagnostics.warnings == [
        "settings.host-containers.admin: accepted, not applied by this image (this image runs no host containers)"
    ]
    assert any(e.startswith('settings.host-containers."bad name":') for e in diagnostics.errors)


def test_rerun_changes_nothing(agent):
    user_data = (INPUTS / "karpenter-bottlerocket-nodeclass.toml").read_bytes()
    assert agent.run(user_data=user_data).code == EXIT_OK
    again = agent.run(user_data=user_data)
    assert "0 file(s) changed, 10 unchanged" in again.out


def test_a_failed_write_leaves_the_previous_files(agent):
    first = CLUSTER + "[settings.kubernetes.node-labels]\nteam = 'a'\n"
    assert agent.run(user_data=first).code == EXIT_OK
    before = snapshot(agent.root)
    blocker = agent.root / "etc/sysctl.d"
    blocker.write_text("not a directory")  # the sysctl file, planned last, cannot be written
    second = MIRRORS.replace("cluster-name = 'demo'", "cluster-name = 'other'") + (
        "[settings.kernel.sysctl]\n'net.core.somaxconn' = '1024'\n"
    )
    result = agent.run(user_data=second)
    assert result.code == EXIT_WRITE, result.err
    assert f"cannot write {SYSCTL_PATH}" in result.err
    blocker.unlink()
    assert snapshot(agent.root) == before
    assert not (agent.root / "etc/containerd/certs.d").exists()
    assert not [p for p in agent.root.rglob("*.tmp")]


def test_containerd_dropin_merges_sections_user_config_last():
    text = containerd.render_dropin(
        '[plugins."io.containerd.grpc.v1.cri".registry]\nconfig_path = "/mine"\n',
        containerd.sandbox_section("pause:1", 2),
        containerd.registry_section(2, "/etc/containerd/certs.d", []),
    )
    assert text is not None
    assert tomlr.loads(text)["plugins"]["io.containerd.grpc.v1.cri"] == {
        "sandbox_image": "pause:1",
        "registry": {"config_path": "/mine"},
    }
    assert containerd.render_dropin("", None, None) is None


def test_dropin_carries_the_whole_cri_section_for_containerd_1x(agent):
    """containerd 1.x replaces an imported plugin section whole: the drop-in must keep the image's CRI settings."""
    write_base_config(
        agent.root,
        'version = 2\n[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "old/pause:3.9"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\nruntime_type = "io.containerd.runc.v2"\n'
        '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\nSystemdCgroup = true\n'
        '[plugins."io.containerd.grpc.v1.cri".cni]\nbin_dir = "/opt/cni/bin"\n',
    )
    assert agent.run(user_data=MIRRORS).code == EXIT_OK
    cri = dropin(agent.root)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    assert cri["cni"]["bin_dir"] == "/opt/cni/bin"
    assert cri["registry"]["config_path"] == "/etc/containerd/certs.d"
