"""Bottlerocket-style TOML user data (``[settings.kubernetes]``), mapped onto the same model as NodeConfig."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from nodeforge.bootstrap.errors import Diagnostics
from nodeforge.bootstrap.model import NodeConfig, NodeSettings

# settings.kubernetes.<key> -> KubeletConfiguration field (written to the kubelet drop-in)
KUBELET_FIELDS: dict[str, str] = {
    "allowed-unsafe-sysctls": "allowedUnsafeSysctls",
    "cluster-domain": "clusterDomain",
    "container-log-max-files": "containerLogMaxFiles",
    "container-log-max-size": "containerLogMaxSize",
    "cpu-cfs-quota-enforced": "cpuCFSQuota",
    "cpu-manager-policy": "cpuManagerPolicy",
    "cpu-manager-policy-options": "cpuManagerPolicyOptions",
    "cpu-manager-reconcile-period": "cpuManagerReconcilePeriod",
    "event-burst": "eventBurst",
    "event-qps": "eventRecordQPS",
    "eviction-hard": "evictionHard",
    "eviction-max-pod-grace-period": "evictionMaxPodGracePeriod",
    "eviction-soft": "evictionSoft",
    "eviction-soft-grace-period": "evictionSoftGracePeriod",
    "image-gc-high-threshold-percent": "imageGCHighThresholdPercent",
    "image-gc-low-threshold-percent": "imageGCLowThresholdPercent",
    "kube-api-burst": "kubeAPIBurst",
    "kube-api-qps": "kubeAPIQPS",
    "kube-reserved": "kubeReserved",
    "memory-manager-policy": "memoryManagerPolicy",
    "memory-manager-reserved-memory": "reservedMemory",
    "pod-pids-limit": "podPidsLimit",
    "provider-id": "providerID",
    "registry-burst": "registryBurst",
    "registry-qps": "registryPullQPS",
    "seccomp-default": "seccompDefault",
    "shutdown-grace-period": "shutdownGracePeriod",
    "shutdown-grace-period-for-critical-pods": "shutdownGracePeriodCriticalPods",
    "system-reserved": "systemReserved",
    "topology-manager-policy": "topologyManagerPolicy",
    "topology-manager-scope": "topologyManagerScope",
}
_HANDLED = frozenset(
    {
        "cluster-name",
        "api-server",
        "cluster-certificate",
        "cluster-dns-ip",
        "max-pods",
        "node-labels",
        "node-taints",
        "hostname-override",
        "log-level",
        "service-ipv4-cidr",
        "service-ipv6-cidr",
    }
)
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# TOML values Bottlerocket keeps as strings but the kubelet wants as numbers
_NUMERIC = frozenset(
    {
        "containerLogMaxFiles",
        "eventBurst",
        "eventRecordQPS",
        "evictionMaxPodGracePeriod",
        "imageGCHighThresholdPercent",
        "imageGCLowThresholdPercent",
        "kubeAPIBurst",
        "kubeAPIQPS",
        "podPidsLimit",
        "registryBurst",
        "registryPullQPS",
    }
)


def _taints(raw: object, diagnostics: Diagnostics) -> list[str]:
    """``key = ["value:Effect", ...]`` or ``key = "value:Effect"`` -> ``key=value:Effect`` entries."""
    if not isinstance(raw, dict):
        diagnostics.error('settings.kubernetes.node-taints: must be a table of key = ["value:Effect", ...]')
        return []
    taints = []
    for key, values in raw.items():
        for entry in values if isinstance(values, list) else [values]:
            if not isinstance(entry, str):
                diagnostics.error(f'settings.kubernetes.node-taints.{key}: entries must be strings "value:Effect"')
                continue
            value, _, effect = entry.rpartition(":")
            if effect not in _EFFECTS:
                diagnostics.error(
                    f"settings.kubernetes.node-taints.{key}: {entry!r} must end in :{', :'.join(_EFFECTS)}"
                )
                continue
            taints.append(f"{key}={value}:{effect}" if value else f"{key}:{effect}")
    return taints


def _labels(raw: object, diagnostics: Diagnostics) -> list[str]:
    if not isinstance(raw, dict):
        diagnostics.error('settings.kubernetes.node-labels: must be a table of key = "value"')
        return []
    labels = []
    for key, value in raw.items():
        if not isinstance(value, str | int | bool):
            diagnostics.error(f"settings.kubernetes.node-labels.{key}: must be a string")
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        labels.append(f"{key}={text}")
    return labels


def _kubelet_value(name: str, value: Any) -> Any:
    if name in _NUMERIC and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                return value
    return value


def settings_from_toml(document: dict[str, Any], diagnostics: Diagnostics) -> NodeSettings:
    """NodeSettings from a parsed Bottlerocket settings document."""
    settings = NodeSettings(node_config=NodeConfig(), dialect="toml")
    top = document.get("settings")
    if not isinstance(top, dict):
        diagnostics.error("TOML user data has no [settings] table")
        return settings
    for key in document:
        if key != "settings":
            diagnostics.warn(f"TOML: top-level key {key!r} ignored")
    for key in top:
        if key != "kubernetes":
            diagnostics.warn(f"settings.{key}: not applied by this agent (ignored)")
    kubernetes = top.get("kubernetes")
    if not isinstance(kubernetes, dict):
        diagnostics.error("settings.kubernetes: missing (cluster-name, api-server and cluster-certificate are needed)")
        return settings
    spec = settings.spec
    cluster = spec.cluster

    def string(key: str) -> str:
        value = kubernetes.get(key, "")
        if not isinstance(value, str):
            diagnostics.error(f"settings.kubernetes.{key}: must be a string")
            return ""
        return value

    cluster.name = string("cluster-name")
    cluster.api_server_endpoint = string("api-server")
    certificate = string("cluster-certificate")
    if certificate:
        try:
            cluster.certificate_authority = base64.b64decode("".join(certificate.split()), validate=True)
        except (binascii.Error, ValueError):
            diagnostics.error("settings.kubernetes.cluster-certificate: must be base64 (the cluster CA bundle)")
    cluster.cidr = string("service-ipv6-cidr") or string("service-ipv4-cidr")
    dns = kubernetes.get("cluster-dns-ip")
    if isinstance(dns, str):
        settings.cluster_dns = [dns]
    elif isinstance(dns, list) and all(isinstance(ip, str) for ip in dns):
        settings.cluster_dns = list(dns)
    elif dns is not None:
        diagnostics.error("settings.kubernetes.cluster-dns-ip: must be a string or a list of strings")
    max_pods = kubernetes.get("max-pods")
    if max_pods is not None:
        if isinstance(max_pods, bool) or not isinstance(max_pods, int):
            diagnostics.error("settings.kubernetes.max-pods: must be an integer")
        else:
            settings.max_pods = max_pods
    flags = spec.kubelet.flags
    labels = _labels(kubernetes.get("node-labels", {}), diagnostics)
    if labels:
        flags.append("--node-labels=" + ",".join(labels))
    taints = _taints(kubernetes.get("node-taints", {}), diagnostics)
    if taints:
        flags.append("--register-with-taints=" + ",".join(taints))
    if kubernetes.get("hostname-override"):
        flags.append(f"--hostname-override={string('hostname-override')}")
    if "log-level" in kubernetes:
        level = kubernetes["log-level"]
        if isinstance(level, int) and not isinstance(level, bool):
            spec.kubelet.config["logging"] = {"verbosity": level}
        else:
            diagnostics.error("settings.kubernetes.log-level: must be an integer")
    for key, value in kubernetes.items():
        if key in KUBELET_FIELDS:
            name = KUBELET_FIELDS[key]
            spec.kubelet.config[name] = _kubelet_value(name, value)
        elif key not in _HANDLED:
            diagnostics.warn(f"settings.kubernetes.{key}: not supported by this agent (ignored)")
    return settings
