"""CIS Amazon EKS worker-node checks on the effective kubelet configuration (config file, drop-in and flags)."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_FALSE = ("false", "0", "f")
_TRUE = ("true", "1", "t", "")


def _flag_values(flags: list[str]) -> dict[str, str]:
    """``--name=value`` / ``--name value`` / ``--name`` (boolean) flags; the last occurrence wins."""
    values: dict[str, str] = {}
    index = 0
    while index < len(flags):
        flag = flags[index]
        name, equals, value = flag.lstrip("-").partition("=")
        if not equals and index + 1 < len(flags) and not flags[index + 1].startswith("-"):
            value = flags[index + 1]
            index += 1
        values[name] = value
        index += 1
    return values


def apply_flags(config: dict[str, Any], flags: list[str]) -> dict[str, Any]:
    """The config as the kubelet sees it once command-line flags (which win) are applied, for CIS settings."""
    effective = dict(config)
    values = _flag_values(flags)

    def nested(*keys: str) -> dict[str, Any]:
        node = effective
        for key in keys:
            node[key] = dict(node.get(key) or {})
            node = node[key]
        return node

    if "anonymous-auth" in values:
        nested("authentication", "anonymous")["enabled"] = values["anonymous-auth"].lower() in _TRUE
    if "authorization-mode" in values:
        nested("authorization")["mode"] = values["authorization-mode"]
    if "client-ca-file" in values:
        nested("authentication", "x509")["clientCAFile"] = values["client-ca-file"]
    if "read-only-port" in values:
        effective["readOnlyPort"] = values["read-only-port"]
    if "streaming-connection-idle-timeout" in values:
        effective["streamingConnectionIdleTimeout"] = values["streaming-connection-idle-timeout"]
    if "make-iptables-util-chains" in values:
        effective["makeIPTablesUtilChains"] = values["make-iptables-util-chains"].lower() not in _FALSE
    if "event-qps" in values:
        effective["eventRecordQPS"] = values["event-qps"]
    if "rotate-certificates" in values:
        effective["rotateCertificates"] = values["rotate-certificates"].lower() not in _FALSE
    if "protect-kernel-defaults" in values:
        effective["protectKernelDefaults"] = values["protect-kernel-defaults"].lower() not in _FALSE
    if "feature-gates" in values:
        gates = nested("featureGates")
        for pair in values["feature-gates"].split(","):
            name, _, enabled = pair.partition("=")
            if name.strip():
                gates[name.strip()] = enabled.strip().lower() not in _FALSE
    return effective


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def violations(config: dict[str, Any]) -> list[str]:
    """Every CIS setting the effective kubelet configuration breaks."""
    found = []
    authentication = config.get("authentication") or {}
    if (authentication.get("anonymous") or {}).get("enabled") is not False:
        found.append("authentication.anonymous.enabled must be false (CIS 3.2.1)")
    if (config.get("authorization") or {}).get("mode") != "Webhook":
        found.append("authorization.mode must be Webhook (CIS 3.2.2)")
    if not (authentication.get("x509") or {}).get("clientCAFile"):
        found.append("authentication.x509.clientCAFile must be set (CIS 3.2.3)")
    if _number(config.get("readOnlyPort", 0)) != 0:
        found.append("readOnlyPort must be 0 (CIS 3.2.4)")
    if str(config.get("streamingConnectionIdleTimeout", "4h0m0s")).strip() in ("0", "0s", "0m0s", "0h0m0s", ""):
        found.append("streamingConnectionIdleTimeout must not be 0 (CIS 3.2.5)")
    if config.get("makeIPTablesUtilChains", True) is not True:
        found.append("makeIPTablesUtilChains must be true (CIS 3.2.6)")
    qps = _number(config.get("eventRecordQPS", 50))
    if qps is None or qps < 0:
        found.append("eventRecordQPS must be a number >= 0 (CIS 3.2.7)")
    if config.get("rotateCertificates") is not True:
        found.append("rotateCertificates must be true (CIS 3.2.8)")
    if (config.get("featureGates") or {}).get("RotateKubeletServerCertificate") is not True:
        found.append("featureGates.RotateKubeletServerCertificate must be true (CIS 3.2.9)")
    if config.get("protectKernelDefaults") is not True:
        found.append("protectKernelDefaults must be true")
    return found
