"""The kubelet's files: config.json (baked defaults + node values), the user drop-in, the environment file,
the kubeconfig and the cluster CA."""

from __future__ import annotations

import json
import re

from nodeforge.bootstrap.merge import deep_merge
from nodeforge.bootstrap.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CONFIG_PATH = "/etc/kubernetes/kubelet/config.json"
DROPIN_PATH = "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf"
KUBECONFIG_PATH = "/var/lib/kubelet/kubeconfig"
BOOTSTRAP_KUBECONFIG_PATH = "/var/lib/kubelet/bootstrap-kubeconfig"
CA_PATH = "/etc/kubernetes/pki/ca.crt"
ENVIRONMENT_PATH = "/etc/eks/kubelet/environment"
IAM_AUTHENTICATOR = "/usr/bin/aws-iam-authenticator"
TYPE_META = {"kind": "KubeletConfiguration", "apiVersion": "kubelet.config.k8s.io/v1beta1"}

# The EKS defaults (as nodeadm generates them) plus the CIS settings the image bakes. The baked
# /etc/kubernetes/kubelet/config.json wins over these; they fill in what it lacks.
DEFAULT_CONFIG: dict[str, Any] = {
    **TYPE_META,
    "address": "0.0.0.0",  # noqa: S104 - the kubelet serves on every interface, as on EKS AMIs
    "authentication": {
        "anonymous": {"enabled": False},
        "webhook": {"enabled": True, "cacheTTL": "2m0s"},
        "x509": {"clientCAFile": CA_PATH},
    },
    "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"}},
    "cgroupDriver": "systemd",
    "cgroupRoot": "/",
    "clusterDomain": "cluster.local",
    "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
    "evictionHard": {"memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%"},
    "featureGates": {"RotateKubeletServerCertificate": True},
    "hairpinMode": "hairpin-veth",
    "logging": {"verbosity": 2},
    "makeIPTablesUtilChains": True,
    "protectKernelDefaults": True,
    "readOnlyPort": 0,
    "rotateCertificates": True,
    "serializeImagePulls": False,
    "serverTLSBootstrap": True,
    "streamingConnectionIdleTimeout": "4h0m0s",
    "tlsCipherSuites": [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
    ],
}


@dataclass
class NodeValues:
    """The node-specific values the agent sets in config.json on every run."""

    cluster_dns: list[str]
    max_pods: int | None
    kube_reserved: dict[str, str]
    provider_id: str
    reserved_cgroups: bool
    kubelet_version: tuple[int, int] | None


def derive_cluster_dns(cidr: str) -> str:
    """The kube-dns service address EKS uses: .10 of an IPv4 service CIDR, ::a of an IPv6 one."""
    address = cidr.split("/")[0]
    if ":" in address:
        return f"{address}a"
    return f"{address[: address.rindex('.')]}.10"


def legacy_cluster_dns(vpc_ipv4_cidrs: list[str]) -> str:
    """AL2 bootstrap.sh without a service CIDR: 172.20.0.10 when the VPC uses 10.0.0.0/8, else 10.100.0.10."""
    return "172.20.0.10" if any(block.startswith("10.") for block in vpc_ipv4_cidrs) else "10.100.0.10"


def provider_id(availability_zone: str, instance_id: str) -> str:
    return f"aws:///{availability_zone}/{instance_id}"


def parse_kubelet_version(text: str) -> tuple[int, int] | None:
    match = re.search(r"v?(\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def render_config(baked: dict[str, Any] | None, values: NodeValues) -> dict[str, Any]:
    """config.json: defaults, then the baked file, then the node values (always recomputed, so re-runs match)."""
    config = deep_merge(DEFAULT_CONFIG, baked or {})
    config["clusterDNS"] = list(values.cluster_dns)
    if values.max_pods is None:
        config.pop("maxPods", None)
    else:
        config["maxPods"] = values.max_pods
    config["kubeReserved"] = dict(values.kube_reserved)
    config["providerID"] = values.provider_id
    if values.reserved_cgroups:
        config["systemReservedCgroup"] = "/system"
        config["kubeReservedCgroup"] = "/runtime"
    version = values.kubelet_version
    if version is not None:
        gates = dict(config.get("featureGates") or {})
        if version >= (1, 33):
            gates.setdefault("DynamicResourceAllocation", True)
        if version >= (1, 34):
            gates.setdefault("MutableCSINodeAllocatableCount", True)
            config.setdefault("shutdownGracePeriod", "2m30s")
            config.setdefault("shutdownGracePeriodCriticalPods", "30s")
        config["featureGates"] = gates
    return config


def render_dropin(user_config: dict[str, Any]) -> dict[str, Any] | None:
    """The user's KubeletConfiguration fields as a drop-in (kind and apiVersion added), or None when empty."""
    if not user_config:
        return None
    return {**TYPE_META, **{k: v for k, v in user_config.items() if k not in TYPE_META}}


def to_json(document: dict[str, Any], *, sort: bool) -> str:
    return json.dumps(document, indent=4, sort_keys=sort) + "\n"


def render_environment(flags: list[str], dialect: str) -> str:
    """/etc/eks/kubelet/environment for the unit's ``$KUBELET_EXTRA_ARGS`` (systemd EnvironmentFile syntax)."""
    value = " ".join(flags).replace("\\", "\\\\").replace('"', '\\"')
    return (
        f"# Written by the nodeforge bootstrap agent from {dialect} user data; re-run the agent to change it.\n"
        f'KUBELET_EXTRA_ARGS="{value}"\n'
    )


def render_kubeconfig(*, server: str, cluster: str, region: str, auth_helper: str) -> str:
    """The kubelet kubeconfig: exec credentials from aws-iam-authenticator (AL2 style) or ``aws eks get-token``
    (nodeadm style)."""
    if auth_helper == "aws-cli":
        command = "aws"
        args = ["eks", "get-token", "--cluster-name", cluster, "--region", region]
    else:
        command = IAM_AUTHENTICATOR
        args = ["token", "-i", cluster, "--region", region]
    arg_lines = "".join(f"          - {json.dumps(arg)}\n" for arg in args)
    return (
        "---\n"
        "apiVersion: v1\n"
        "kind: Config\n"
        "clusters:\n"
        "  - name: kubernetes\n"
        "    cluster:\n"
        f"      certificate-authority: {CA_PATH}\n"
        f"      server: {json.dumps(server)}\n"
        "current-context: kubelet\n"
        "contexts:\n"
        "  - name: kubelet\n"
        "    context:\n"
        "      cluster: kubernetes\n"
        "      user: kubelet\n"
        "users:\n"
        "  - name: kubelet\n"
        "    user:\n"
        "      exec:\n"
        "        apiVersion: client.authentication.k8s.io/v1beta1\n"
        f"        command: {command}\n"
        "        args:\n"
        f"{arg_lines}"
    )
