"""Bottlerocket-style TOML user data (``[settings.*]``) mapped onto the same model as NodeConfig.

The document is read by :mod:`nodeforge.bootstrap.settings` (the typed model, shared with ``nodeforge settings``);
this module only maps what it holds onto :class:`NodeSettings`.
"""

from __future__ import annotations

from nodeforge.bootstrap.errors import Diagnostics
from nodeforge.bootstrap.model import HostSettings, NodeConfig, NodeSettings
from nodeforge.bootstrap.settings import KUBERNETES, KubernetesSettings, Settings, parse_settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# settings.kubernetes.<key> -> KubeletConfiguration field (written to the kubelet drop-in)
KUBELET_FIELDS: dict[str, str] = {key: setting.kubelet for key, setting in KUBERNETES.items() if setting.kubelet}

# The model's field paths, as validation names them, -> the settings keys they come from.
FIELD_NAMES: dict[str, str] = {
    "spec.cluster.name": "settings.kubernetes.cluster-name",
    "spec.cluster.apiServerEndpoint": "settings.kubernetes.api-server",
    "spec.cluster.certificateAuthority": "settings.kubernetes.cluster-certificate",
    "spec.cluster.cidr": "settings.kubernetes.service-ipv4-cidr (or service-ipv6-cidr)",
    "clusterDNS": "settings.kubernetes.cluster-dns-ip",
    "max-pods": "settings.kubernetes.max-pods",
}


def settings_from_toml(document: dict[str, Any], diagnostics: Diagnostics) -> NodeSettings:
    """NodeSettings from a parsed Bottlerocket settings document."""
    return node_settings(parse_settings(document, diagnostics))


def node_settings(settings: Settings) -> NodeSettings:
    """What the typed settings mean for the node: cluster, kubelet config and flags, registries, sysctls."""
    node = NodeSettings(node_config=NodeConfig(), dialect="toml", field_names=dict(FIELD_NAMES))
    kubernetes = settings.kubernetes
    cluster = node.spec.cluster
    cluster.name = kubernetes.cluster_name
    cluster.api_server_endpoint = kubernetes.api_server
    cluster.certificate_authority = kubernetes.cluster_certificate
    cluster.cidr = kubernetes.service_cidr
    node.cluster_dns = list(kubernetes.cluster_dns_ip)
    node.max_pods = kubernetes.max_pods
    node.spec.kubelet.flags = kubelet_flags(kubernetes)
    node.spec.kubelet.config = kubelet_config(kubernetes)
    if kubernetes.hostname_override_source == "instance-id":
        node.spec.feature_gates["InstanceIdNodeName"] = True
    node.host = HostSettings(
        mirrors=list(settings.mirrors), credentials=list(settings.credentials), sysctls=dict(settings.sysctl)
    )
    return node


def kubelet_flags(kubernetes: KubernetesSettings) -> list[str]:
    """``--node-labels``, ``--register-with-taints`` and ``--hostname-override``, as Bottlerocket passes them."""
    flags = []
    if kubernetes.node_labels:
        flags.append("--node-labels=" + ",".join(f"{key}={value}" for key, value in kubernetes.node_labels.items()))
    taints = [
        f"{key}={value}:{effect}" if value else f"{key}:{effect}"
        for key, entries in kubernetes.node_taints.items()
        for value, _, effect in (entry.rpartition(":") for entry in entries)
    ]
    if taints:
        flags.append("--register-with-taints=" + ",".join(taints))
    if kubernetes.hostname_override:
        flags.append(f"--hostname-override={kubernetes.hostname_override}")
    return flags


def kubelet_config(kubernetes: KubernetesSettings) -> dict[str, Any]:
    """The KubeletConfiguration fields the settings set (the kubelet drop-in), ``log-level`` included."""
    config: dict[str, Any] = {}
    if kubernetes.log_level is not None:
        config["logging"] = {"verbosity": kubernetes.log_level}
    config.update(kubernetes.kubelet)
    return config
