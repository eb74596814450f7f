"""Typed model of Bottlerocket-style TOML user data (``[settings.*]``), shared by the agent and ``nodeforge settings``.

Bottlerocket refuses settings it does not know, and so does this model: an unknown key is an error naming its
full path (``settings.kubernetes.max-podz: unknown setting; did you mean settings.kubernetes.max-pods?``).
Settings Bottlerocket knows but this image does not apply (``settings.ntp``, ``settings.kubernetes.standalone-mode``
...) are accepted with a warning, because Karpenter, eksctl, managed node groups and terraform-aws-eks put
them in real user data. Values are type-checked whether applied or not. Every problem is collected in a
:class:`Diagnostics`, not just the first.

The tables of known settings (:data:`SECTIONS`, :data:`KUBERNETES`) follow Bottlerocket's settings models
(its ``settings-extensions``); docs/settings.md lists them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import date, datetime, time
from urllib.parse import urlsplit

from nodeforge.bootstrap.errors import Diagnostics
from nodeforge.bootstrap.model import RegistryCredential, RegistryMirror
from nodeforge.bootstrap.record import dataclass, field

# re-exported: the file this model's settings.kernel.sysctl goes to
from nodeforge.bootstrap.sysctl import SYSCTL_HEADER as SYSCTL_HEADER
from nodeforge.bootstrap.sysctl import SYSCTL_PATH as SYSCTL_PATH
from nodeforge.bootstrap.sysctl import render_sysctl as render_sysctl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

NOT_APPLIED = "accepted, not applied by this image"

# What the kubelet's protectKernelDefaults (on: a CIS setting) requires of the kernel; it refuses to start otherwise.
PROTECTED_KERNEL_DEFAULTS: dict[str, int] = {
    "vm.overcommit_memory": 1,
    "vm.panic_on_oom": 0,
    "kernel.panic": 10,
    "kernel.panic_on_oops": 1,
    "kernel.keys.root_maxkeys": 1000000,
    "kernel.keys.root_maxbytes": 25000000,
}
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
EVICTION_SIGNALS = frozenset(
    {
        "memory.available",
        "nodefs.available",
        "nodefs.inodesFree",
        "imagefs.available",
        "imagefs.inodesFree",
        "containerfs.available",
        "containerfs.inodesFree",
        "pid.available",
    }
)
RESERVED_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage", "pid"})
HOSTNAME_OVERRIDE_SOURCES = ("private-dns-name", "instance-id")

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SYSCTL_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9./_-]{0,127}$")
_REGISTRY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$")
_IDENTIFIER = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DIGITS = re.compile(r"^-?[0-9]+$")
_INVALID = object()  # a value that failed its check (already reported)


@dataclass(frozen=True)
class Setting:
    """A known key: the type of its value, whether this image applies it, and the KubeletConfiguration field
    it maps to (for the keys that go to the kubelet drop-in)."""

    kind: str
    applied: bool = True
    kubelet: str = ""


@dataclass(frozen=True)
class Section:
    """A known ``settings.<name>``: a table (with known ``keys``, or named entries when None) or a string."""

    keys: Mapping[str, Setting] | None = None
    kind: str = "table"


# What each kind accepts, as error messages say it.
KINDS: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "integer-text": "an integer (or a string of digits)",
    "boolean": "a boolean",
    "strings": "an array of strings",
    "string-or-strings": "a string or an array of strings",
    "table": "a table",
    "tables": "an array of tables",
    "any": "any value",
}


def _kubelet(kind: str, name: str) -> Setting:
    return Setting(kind, applied=True, kubelet=name)


def _unapplied(kind: str) -> Setting:
    return Setting(kind, applied=False)


# settings.kubernetes.* -- Bottlerocket's KubernetesSettingsV1 (plus two nodeforge extensions, service-ipv*-cidr).
KUBERNETES: dict[str, Setting] = {
    # the cluster and the node's identity (applied)
    "cluster-name": Setting("string"),
    "api-server": Setting("string"),
    "cluster-certificate": Setting("string"),
    "cluster-dns-ip": Setting("string-or-strings"),
    "max-pods": Setting("integer"),
    "node-labels": Setting("table"),
    "node-taints": Setting("table"),
    "hostname-override": Setting("string"),
    "hostname-override-source": Setting("string"),
    "log-level": Setting("integer"),
    "service-ipv4-cidr": Setting("string"),  # nodeforge extension: derives clusterDNS as nodeadm does
    "service-ipv6-cidr": Setting("string"),  # nodeforge extension
    # KubeletConfiguration fields (applied: the kubelet drop-in)
    "allowed-unsafe-sysctls": _kubelet("strings", "allowedUnsafeSysctls"),
    "cluster-domain": _kubelet("string", "clusterDomain"),
    "container-log-max-files": _kubelet("integer-text", "containerLogMaxFiles"),
    "container-log-max-size": _kubelet("string", "containerLogMaxSize"),
    "container-log-max-workers": _kubelet("integer-text", "containerLogMaxWorkers"),
    "container-log-monitor-interval": _kubelet("string", "containerLogMonitorInterval"),
    "cpu-cfs-quota-enforced": _kubelet("boolean", "cpuCFSQuota"),
    "cpu-manager-policy": _kubelet("string", "cpuManagerPolicy"),
    "cpu-manager-policy-options": _kubelet("strings", "cpuManagerPolicyOptions"),
    "cpu-manager-reconcile-period": _kubelet("string", "cpuManagerReconcilePeriod"),
    "event-burst": _kubelet("integer-text", "eventBurst"),
    "event-qps": _kubelet("integer-text", "eventRecordQPS"),
    "eviction-hard": _kubelet("table", "evictionHard"),
    "eviction-max-pod-grace-period": _kubelet("integer-text", "evictionMaxPodGracePeriod"),
    "eviction-soft": _kubelet("table", "evictionSoft"),
    "eviction-soft-grace-period": _kubelet("table", "evictionSoftGracePeriod"),
    "image-gc-high-threshold-percent": _kubelet("integer-text", "imageGCHighThresholdPercent"),
    "image-gc-low-threshold-percent": _kubelet("integer-text", "imageGCLowThresholdPercent"),
    "kube-api-burst": _kubelet("integer-text", "kubeAPIBurst"),
    "kube-api-qps": _kubelet("integer-text", "kubeAPIQPS"),
    "kube-reserved": _kubelet("table", "kubeReserved"),
    "memory-manager-policy": _kubelet("string", "memoryManagerPolicy"),
    "memory-manager-reserved-memory": _kubelet("table", "reservedMemory"),
    "pod-pids-limit": _kubelet("integer-text", "podPidsLimit"),
    "provider-id": _kubelet("string", "providerID"),
    "registry-burst": _kubelet("integer-text", "registryBurst"),
    "registry-qps": _kubelet("integer-text", "registryPullQPS"),
    "seccomp-default": _kubelet("boolean", "seccompDefault"),
    "shutdown-grace-period": _kubelet("string", "shutdownGracePeriod"),
    "shutdown-grace-period-for-critical-pods": _kubelet("string", "shutdownGracePeriodCriticalPods"),
    "system-reserved": _kubelet("table", "systemReserved"),
    "topology-manager-policy": _kubelet("string", "topologyManagerPolicy"),
    "topology-manager-scope": _kubelet("string", "topologyManagerScope"),
    # known to Bottlerocket, not applied by this image
    "authentication-mode": _unapplied("string"),
    "bootstrap-token": _unapplied("string"),
    "cloud-provider": _unapplied("string"),
    "credential-providers": _unapplied("table"),
    "device-ownership-from-security-context": _unapplied("boolean"),
    "memory-swap-behavior": _unapplied("string"),
    "node-ip": _unapplied("string"),
    "pod-infra-container-image": _unapplied("string"),
    "reserved-cpus": _unapplied("string"),
    "server-certificate": _unapplied("string"),
    "server-key": _unapplied("string"),
    "server-tls-bootstrap": _unapplied("boolean"),
    "single-process-oom-kill": _unapplied("boolean"),
    "standalone-mode": _unapplied("boolean"),
    "static-pods": _unapplied("table"),
    "static-pods-enabled": _unapplied("boolean"),
}
CONTAINER_REGISTRY: dict[str, Setting] = {
    "mirrors": Setting("any"),  # [[mirrors]] registry/endpoint, or the older table registry = [endpoints]
    "credentials": Setting("tables"),
    "creds": Setting("tables"),  # Bottlerocket's alias of credentials
}
MIRROR_KEYS: dict[str, Setting] = {"registry": Setting("string"), "endpoint": Setting("strings")}
CREDENTIAL_KEYS: dict[str, Setting] = {
    "registry": Setting("string"),
    "username": Setting("string"),
    "password": Setting("string"),
    "auth": Setting("string"),
    "identitytoken": Setting("string"),
}
KERNEL: dict[str, Setting] = {
    "sysctl": Setting("table"),
    "lockdown": _unapplied("string"),
    "modules": _unapplied("table"),
    "hugepages": _unapplied("table"),
    "drivers": _unapplied("table"),
}
HOST_CONTAINER_KEYS: dict[str, Setting] = {
    "enabled": _unapplied("boolean"),
    "superpowered": _unapplied("boolean"),
    "source": _unapplied("string"),
    "user-data": _unapplied("string"),
    "command": _unapplied("strings"),
}
# settings.<name>: every section Bottlerocket's Kubernetes variants know. kubernetes, container-registry and
# kernel.sysctl are applied; host-containers is typed but not applied; the rest is accepted with a warning.
SECTIONS: dict[str, Section] = {
    "kubernetes": Section(KUBERNETES),
    "container-registry": Section(CONTAINER_REGISTRY),
    "kernel": Section(KERNEL),
    "host-containers": Section(),
    "autoscaling": Section({"should-wait": _unapplied("boolean")}),
    "aws": Section({key: _unapplied("string") for key in ("config", "credentials", "profile", "region")}),
    "boot": Section(
        {
            "reboot-to-reconcile": _unapplied("boolean"),
            "kernel-parameters": _unapplied("table"),
            "init-parameters": _unapplied("table"),
        }
    ),
    "bootstrap-commands": Section(),
    "bootstrap-containers": Section(),
    "cloudformation": Section(
        {
            "logical-resource-id": _unapplied("string"),
            "should-signal": _unapplied("boolean"),
            "stack-name": _unapplied("string"),
        }
    ),
    "container-runtime": Section(
        {
            "log-level": _unapplied("string"),
            "max-container-log-line-size": _unapplied("integer"),
            "max-concurrent-downloads": _unapplied("integer"),
            "max-concurrent-unpacks": _unapplied("integer"),
            "concurrent-download-chunk-size": _unapplied("any"),
            "concurrent-layer-fetch-buffer": _unapplied("any"),
            "enable-unprivileged-ports": _unapplied("boolean"),
            "enable-unprivileged-icmp": _unapplied("boolean"),
            "snapshotter": _unapplied("string"),
        }
    ),
    "container-runtime-plugins": Section(),
    "dns": Section({"name-servers": _unapplied("strings"), "search-list": _unapplied("strings")}),
    "kubelet-device-plugins": Section(),
    "kubelet-dra-drivers": Section(),
    "metrics": Section(
        {
            "metrics-url": _unapplied("string"),
            "send-metrics": _unapplied("boolean"),
            "service-checks": _unapplied("strings"),
        }
    ),
    "motd": Section(kind="string"),
    "network": Section(
        {
            "hostname": _unapplied("string"),
            "hosts": _unapplied("any"),
            "https-proxy": _unapplied("string"),
            "no-proxy": _unapplied("strings"),
            "disable-ipv6": _unapplied("strings"),
        }
    ),
    "ntp": Section(
        {"time-servers": _unapplied("any"), "options": _unapplied("strings"), "logging": _unapplied("strings")}
    ),
    "nvidia-container-runtime": Section(),
    "oci-defaults": Section({"capabilities": _unapplied("table"), "resource-limits": _unapplied("table")}),
    "oci-hooks": Section({"log4j-hotpatch-enabled": _unapplied("boolean")}),
    "pki": Section(),
    "updates": Section(
        {
            "metadata-base-url": _unapplied("string"),
            "targets-base-url": _unapplied("string"),
            "seed": _unapplied("integer"),
            "version-lock": _unapplied("string"),
            "ignore-waves": _unapplied("boolean"),
        }
    ),
}
# Known to Bottlerocket, but not in its Kubernetes variants: an error, with the reason.
OTHER_VARIANTS: dict[str, str] = {"ecs": "an Amazon ECS setting; this image runs Kubernetes nodes"}


@dataclass
class KubernetesSettings:
    """``[settings.kubernetes]``, typed; ``kubelet`` holds the KubeletConfiguration fields, converted."""

    cluster_name: str = ""
    api_server: str = ""
    cluster_certificate: bytes = b""
    cluster_dns_ip: list[str] = field(default_factory=list)
    max_pods: int | None = None
    node_labels: dict[str, str] = field(default_factory=dict)
    node_taints: dict[str, list[str]] = field(default_factory=dict)  # key -> ["value:Effect", ...]
    hostname_override: str = ""
    hostname_override_source: str = ""
    log_level: int | None = None
    service_cidr: str = ""
    kubelet: dict[str, Any] = field(default_factory=dict)


@dataclass
class HostContainer:
    """``[settings.host-containers.<name>]``: accepted and typed; this image runs no host containers."""

    name: str
    enabled: bool | None = None
    superpowered: bool | None = None
    source: str = ""
    user_data: str = ""
    command: list[str] = field(default_factory=list)


@dataclass
class Settings:
    """A whole settings document: what is applied, typed, plus the key paths accepted but not applied."""

    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    mirrors: list[RegistryMirror] = field(default_factory=list)
    credentials: list[RegistryCredential] = field(default_factory=list)
    sysctl: dict[str, str] = field(default_factory=dict)
    host_containers: dict[str, HostContainer] = field(default_factory=dict)
    not_applied: list[str] = field(default_factory=list)


def key_path(parent: str, key: str) -> str:
    """``parent.key``, with ``key`` quoted as TOML would when it is not a bare key (``"karpenter.sh/nodepool"``)."""
    name = key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)
    return f"{parent}.{name}" if parent else name


def describe(value: object) -> str:
    """How a bad value is named in errors: ``string "abc"``, ``integer 5``, ``a table`` ..."""
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"string {json.dumps(text, ensure_ascii=False)}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (datetime, date, time)):
        return f"date-time {value.isoformat()}"
    return type(value).__name__


def closest(key: str, known: list[str] | Mapping[str, object]) -> str | None:
    """The known key ``key`` is most likely a typo of, if any."""
    import difflib  # only for an unknown key

    matches = difflib.get_close_matches(key, list(known), n=1, cutoff=0.75)
    return matches[0] if matches else None


def sysctl_name(key: str) -> str:
    """A sysctl key as a dotted name (sysctl.d(5) reads ``vm/overcommit_memory`` as ``vm.overcommit_memory``)."""
    return key.replace("/", ".")


def sysctl_violations(sysctls: Mapping[str, str]) -> list[str]:
    """Sysctls that contradict the kubelet's protectKernelDefaults (it would refuse to start): CIS problems."""
    found = []
    for key, value in sysctls.items():
        expected = PROTECTED_KERNEL_DEFAULTS.get(sysctl_name(key))
        if expected is not None and value.strip() != str(expected):
            found.append(
                f"{key_path('settings.kernel.sysctl', key)}: must be {expected} while the kubelet's "
                f"protectKernelDefaults is on (got {describe(value)})"
            )
    return found


def parse_settings(document: Mapping[str, Any], diagnostics: Diagnostics) -> Settings:
    """The typed settings of a parsed TOML document; every problem goes to ``diagnostics``."""
    return _Parser(diagnostics).document(document)


class _Parser:
    """Walks the document, checking keys against the tables and values against their kinds."""

    def __init__(self, diagnostics: Diagnostics) -> None:
        self.diagnostics = diagnostics
        self.settings = Settings()

    # -- reporting ---------------------------------------------------------------------------------------------

    def error(self, path: str, message: str) -> None:
        self.diagnostics.error(f"{path}: {message}")

    def unknown(self, parent: str, key: str, known: Mapping[str, object]) -> None:
        hint = closest(key, known)
        suffix = f"; did you mean {key_path(parent, hint)}?" if hint else ""
        self.error(key_path(parent, key), f"unknown setting{suffix}")

    def not_applied(self, path: str, why: str = "") -> None:
        self.settings.not_applied.append(path)
        self.diagnostics.warn(f"{path}: {NOT_APPLIED}{f' ({why})' if why else ''}")

    # -- values ------------------------------------------------------------------------------------------------

    def typed(self, path: str, value: object, kind: str) -> Any:
        """``value`` checked (and for integer-text, converted) against ``kind``; _INVALID once reported."""
        good = _convert(value, kind)
        if good is _INVALID:
            self.error(path, f"must be {KINDS[kind]} (got {describe(value)})")
        return good

    def string_table(self, path: str, raw: Mapping[str, Any], known: frozenset[str] | None = None) -> dict[str, str]:
        """A table of string values (eviction thresholds, reserved resources), keys checked against ``known``."""
        result = {}
        for key, value in raw.items():
            here = key_path(path, key)
            if known is not None and key not in known:
                hint = closest(key, sorted(known))
                detail = f"did you mean {key_path(path, hint)}?" if hint else f"known: {', '.join(sorted(known))}"
                self.error(here, f"unknown key; {detail}")
                continue
            text = self.typed(here, value, "string")
            if text is not _INVALID:
                result[key] = text
        return result

    def keyed(self, path: str, raw: Mapping[str, Any], keys: Mapping[str, Setting]) -> dict[str, Any]:
        """The known keys of a table, typed; unknown ones reported."""
        good = {}
        for key, value in raw.items():
            if key not in keys:
                self.unknown(path, key, keys)
                continue
            typed = self.typed(key_path(path, key), value, keys[key].kind)
            if typed is not _INVALID:
                good[key] = typed
        return good

    # -- the document ------------------------------------------------------------------------------------------

    def document(self, document: Mapping[str, Any]) -> Settings:
        for key in document:
            if key != "settings":
                self.error(key_path("", key), "unknown top-level table (Bottlerocket user data holds only [settings])")
        top = document.get("settings")
        if top is None:
            self.error("settings", "missing (the user data needs a [settings.kubernetes] table)")
        elif self.typed("settings", top, "table") is not _INVALID:
            for name, value in top.items():
                self.section(name, value)
        return self.settings

    def section(self, name: str, value: object) -> None:
        path = key_path("settings", name)
        section = SECTIONS.get(name)
        if section is None:
            if name in OTHER_VARIANTS:
                self.error(path, f"not supported: {OTHER_VARIANTS[name]}")
            else:
                self.unknown("settings", name, SECTIONS)
            return
        if self.typed(path, value, section.kind) is _INVALID:
            return
        handler = {
            "kubernetes": self.kubernetes,
            "container-registry": self.container_registry,
            "kernel": self.kernel,
            "host-containers": self.host_containers,
        }.get(name)
        if handler is not None:
            if isinstance(value, dict):
                handler(path, value)
        elif not isinstance(value, dict) or not value:
            self.not_applied(path)
        elif section.keys is None:  # named entries: settings.bootstrap-containers.<name> ...
            for entry in value:
                self.not_applied(key_path(path, entry))
        else:
            for key in self.keyed(path, value, section.keys):
                self.not_applied(key_path(path, key))

    # -- settings.kubernetes -----------------------------------------------------------------------------------

    def kubernetes(self, path: str, raw: dict[str, Any]) -> None:
        for key, value in self.keyed(path, raw, KUBERNETES).items():
            setting = KUBERNETES[key]
            here = key_path(path, key)
            if not setting.applied:
                self.not_applied(here)
            elif setting.kubelet:
                self.kubelet_field(here, key, setting.kubelet, value)
            else:
                self.cluster_field(here, key, value)

    def cluster_field(self, path: str, key: str, value: Any) -> None:
        kubernetes = self.settings.kubernetes
        if key == "cluster-name":
            kubernetes.cluster_name = value
        elif key == "api-server":
            kubernetes.api_server = value
        elif key == "cluster-certificate":
            kubernetes.cluster_certificate = self.base64(path, value, "the cluster CA bundle, base64-encoded")
        elif key == "cluster-dns-ip":
            kubernetes.cluster_dns_ip = [value] if isinstance(value, str) else list(value)
        elif key == "max-pods":
            kubernetes.max_pods = value
        elif key == "node-labels":
            kubernetes.node_labels = self.labels(path, value)
        elif key == "node-taints":
            kubernetes.node_taints = self.taints(path, value)
        elif key == "hostname-override":
            kubernetes.hostname_override = value
        elif key == "hostname-override-source":
            if value in HOSTNAME_OVERRIDE_SOURCES:
                kubernetes.hostname_override_source = value
            else:
                self.error(path, f"must be one of {', '.join(HOSTNAME_OVERRIDE_SOURCES)} (got {describe(value)})")
        elif key == "log-level":
            if 0 <= value <= 255:
                kubernetes.log_level = value
            else:
                self.error(path, f"must be between 0 and 255 (got {describe(value)})")
        elif key == "service-ipv6-cidr" or (key == "service-ipv4-cidr" and not kubernetes.service_cidr):
            kubernetes.service_cidr = value  # the IPv6 CIDR wins, as before: an IPv6 cluster may list both

    def kubelet_field(self, path: str, key: str, name: str, value: Any) -> None:
        """A KubeletConfiguration field, in the kubelet's shape (which differs for a few keys)."""
        if key in ("eviction-hard", "eviction-soft", "eviction-soft-grace-period"):
            value = self.string_table(path, value, EVICTION_SIGNALS)
        elif key in ("kube-reserved", "system-reserved"):
            value = self.string_table(path, value, RESERVED_RESOURCES)
        elif key == "cpu-manager-policy-options":
            value = {option: "true" for option in value}  # Bottlerocket lists them; the kubelet wants a map
        elif key == "memory-manager-reserved-memory":
            value = self.reserved_memory(path, value)
        elif key in ("image-gc-high-threshold-percent", "image-gc-low-threshold-percent") and not 0 <= value <= 100:
            self.error(path, f"must be a percentage, 0 to 100 (got {describe(value)})")
            return
        self.settings.kubernetes.kubelet[name] = value

    def reserved_memory(self, path: str, raw: dict[str, Any]) -> list[dict[str, Any]]:
        """``<numa node> = {enabled, memory, hugepages-1Gi, hugepages-2Mi}`` -> the kubelet's reservedMemory list."""
        keys = {
            "enabled": Setting("boolean"),
            "memory": Setting("string"),
            "hugepages-1Gi": Setting("string"),
            "hugepages-2Mi": Setting("string"),
        }
        reserved = []
        for node, entry in raw.items():
            here = key_path(path, node)
            if not node.isdigit():
                self.error(here, "must be a NUMA node number")
                continue
            if self.typed(here, entry, "table") is _INVALID:
                continue
            values = self.keyed(here, entry, keys)
            limits = {name: text for name, text in values.items() if name != "enabled"}
            if values.get("enabled") and limits:
                reserved.append({"numaNode": int(node), "limits": limits})
        return reserved

    def labels(self, path: str, raw: dict[str, Any]) -> dict[str, str]:
        labels = {}
        for key, value in raw.items():
            here = key_path(path, key)
            if isinstance(value, bool):
                value = str(value).lower()  # written unquoted; the kubelet reads the text
            elif isinstance(value, int):
                value = str(value)
            if self.typed(here, value, "string") is _INVALID:
                continue
            problems = [p for p in (_label_key_problem(key), _label_value_problem(value)) if p]
            for problem in problems:
                self.error(here, problem)
            if not problems:
                labels[key] = value
        return labels

    def taints(self, path: str, raw: dict[str, Any]) -> dict[str, list[str]]:
        """``key = ["value:Effect", ...]`` (or one ``"value:Effect"`` string, an older form)."""
        taints: dict[str, list[str]] = {}
        for key, values in raw.items():
            here = key_path(path, key)
            if self.typed(here, values, "string-or-strings") is _INVALID:
                continue
            problem = _label_key_problem(key)
            if problem is not None:
                self.error(here, problem)
                continue
            for entry in [values] if isinstance(values, str) else values:
                value, _, effect = entry.rpartition(":")
                if effect not in TAINT_EFFECTS:
                    self.error(here, f"{entry!r} must end in :{', :'.join(TAINT_EFFECTS)}")
                elif _label_value_problem(value) is not None:
                    self.error(here, f"{entry!r}: {_label_value_problem(value)}")
                else:
                    taints.setdefault(key, []).append(entry)
        return taints

    def base64(self, path: str, value: str, what: str) -> bytes:
        try:
            return base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            self.error(path, f"must be base64 ({what})")
            return b""

    # -- settings.container-registry ---------------------------------------------------------------------------

    def container_registry(self, path: str, raw: dict[str, Any]) -> None:
        for key, value in self.keyed(path, raw, CONTAINER_REGISTRY).items():
            here = key_path(path, key)
            if key == "mirrors":
                self.mirrors(here, value)
            else:
                for index, entry in enumerate(value):
                    self.credential(f"{here}[{index}]", entry)

    def mirrors(self, path: str, value: object) -> None:
        """``[[mirrors]]`` with ``registry`` and ``endpoint``; also the older ``registry = [endpoints]`` table."""
        if isinstance(value, dict):
            entries = [(key_path(path, registry), {"registry": registry, "endpoint": endpoints})
                       for registry, endpoints in value.items()]  # fmt: skip
        elif isinstance(value, list) and all(isinstance(entry, dict) for entry in value):
            entries = [(f"{path}[{index}]", entry) for index, entry in enumerate(value)]
        else:
            self.error(
                path, f"must be an array of tables [[{path}]] with registry and endpoint (got {describe(value)})"
            )
            return
        by_registry: dict[str, RegistryMirror] = {}
        for here, entry in entries:
            mirror = self.mirror(here, entry)
            if mirror is None:
                continue
            known = by_registry.setdefault(mirror.registry, RegistryMirror(mirror.registry))
            known.endpoints.extend(e for e in mirror.endpoints if e not in known.endpoints)
        self.settings.mirrors.extend(by_registry.values())

    def mirror(self, path: str, entry: dict[str, Any]) -> RegistryMirror | None:
        values = self.keyed(path, entry, MIRROR_KEYS)
        registry = values.get("registry")
        endpoints = values.get("endpoint")
        ok = True
        for key, given in (("registry", registry), ("endpoint", endpoints)):
            if given is None and key in entry:
                ok = False  # a type error, already reported
            elif given is None or given == []:
                self.error(key_path(path, key), "required")
                ok = False
        problem = None if registry is None else _registry_problem(registry)
        if problem is not None:
            self.error(key_path(path, "registry"), problem)
            ok = False
        for index, endpoint in enumerate(endpoints or []):
            endpoint_problem = _endpoint_problem(endpoint)
            if endpoint_problem is not None:
                self.error(f"{key_path(path, 'endpoint')}[{index}]", endpoint_problem)
                ok = False
        return RegistryMirror(registry, list(endpoints)) if ok and registry and endpoints else None

    def credential(self, path: str, entry: object) -> None:
        if self.typed(path, entry, "table") is _INVALID:
            return
        assert isinstance(entry, dict)
        values = self.keyed(path, entry, CREDENTIAL_KEYS)
        registry = values.get("registry", "")
        if not registry:
            if "registry" not in entry or entry["registry"] == "":
                self.error(key_path(path, "registry"), "required")
            return
        problem = _registry_problem(registry)
        if problem is not None or registry == "*":
            self.error(key_path(path, "registry"), problem or "must name one registry")
            return
        credential = RegistryCredential(
            registry=registry,
            username=values.get("username", ""),
            password=values.get("password", ""),
            auth=values.get("auth", ""),
            identity_token=values.get("identitytoken", ""),
        )
        if credential.auth and not self.base64(key_path(path, "auth"), credential.auth, "of username:password"):
            return
        if bool(credential.username) != bool(credential.password):
            self.error(path, "username and password go together")
        elif not (credential.auth or credential.username or credential.identity_token):
            self.error(path, "needs auth, username and password, or identitytoken")
        else:
            self.settings.credentials.append(credential)

    # -- settings.kernel ---------------------------------------------------------------------------------------

    def kernel(self, path: str, raw: dict[str, Any]) -> None:
        for key, value in self.keyed(path, raw, KERNEL).items():
            here = key_path(path, key)
            if key == "sysctl":
                self.sysctl(here, value)
            else:
                self.not_applied(here)

    def sysctl(self, path: str, raw: dict[str, Any]) -> None:
        for key, value in raw.items():
            here = key_path(path, key)
            problem = _sysctl_key_problem(key)
            if problem is not None:
                self.error(here, problem)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                self.error(here, f"must be a string (got {describe(value)}; write {json.dumps(str(value))})")
            elif self.typed(here, value, "string") is _INVALID:
                continue
            elif "\n" in value or "\r" in value or not value.strip():
                self.error(here, "must be one non-empty line")
            else:
                self.settings.sysctl[key] = value

    # -- settings.host-containers ------------------------------------------------------------------------------

    def host_containers(self, path: str, raw: dict[str, Any]) -> None:
        for name, entry in raw.items():
            here = key_path(path, name)
            if not _IDENTIFIER.match(name):
                self.error(here, "a host container's name is letters, digits, '-' and '_'")
                continue
            if self.typed(here, entry, "table") is _INVALID:
                continue
            values = self.keyed(here, entry, HOST_CONTAINER_KEYS)
            if "user-data" in values:
                self.base64(key_path(here, "user-data"), values["user-data"], "the host container's user data")
            self.settings.host_containers[name] = HostContainer(
                name=name,
                enabled=values.get("enabled"),
                superpowered=values.get("superpowered"),
                source=values.get("source", ""),
                user_data=values.get("user-data", ""),
                command=list(values.get("command", [])),
            )
            self.not_applied(here, "this image runs no host containers")


def _convert(value: object, kind: str) -> Any:
    """``value`` if it is of ``kind`` (integer-text: converted to int), else _INVALID."""
    if kind == "any":
        return value
    if kind == "string":
        return value if isinstance(value, str) else _INVALID
    if kind == "boolean":
        return value if isinstance(value, bool) else _INVALID
    if kind in ("integer", "integer-text"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "integer-text" and isinstance(value, str) and _DIGITS.match(value.strip()):
            return int(value)
        return _INVALID
    if kind == "table":
        return value if isinstance(value, dict) else _INVALID
    if kind == "tables":
        return value if isinstance(value, list) and all(isinstance(v, dict) for v in value) else _INVALID
    strings = isinstance(value, list) and all(isinstance(item, str) for item in value)
    if kind == "strings":
        return value if strings else _INVALID
    if kind == "string-or-strings":
        return value if strings or isinstance(value, str) else _INVALID
    raise ValueError(f"unknown kind {kind!r}")


def _label_key_problem(key: str) -> str | None:
    """Why ``key`` is not a Kubernetes label/taint key (``[prefix/]name``), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"key {key!r}: the prefix before '/' must be a DNS subdomain"
    if not _LABEL_NAME.match(name):
        return f"key {key!r}: the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    return None


def _label_value_problem(value: str) -> str | None:
    if value and not _LABEL_NAME.match(value):
        return f"value {value!r}: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric"
    return None


def _sysctl_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a sysctl name (dotted or slashed, no '..', no leading '.', '/' or '-'), or None."""
    if ".." in key or "//" in key:
        return "not a sysctl name: must not contain '..' or '//'"
    if not _SYSCTL_KEY.match(key):
        return "not a sysctl name: 1-128 letters, digits, '_', '-', '.' and '/', not starting with '.', '/' or '-'"
    if key.endswith((".", "/")):
        return "not a sysctl name: must not end with '.' or '/'"
    return None


def _registry_problem(registry: str) -> str | None:
    """Why ``registry`` is not a registry host (``docker.io``, ``registry.example.com:5000``) or ``*``, or None."""
    if registry == "*":
        return None
    if ".." in registry or not _REGISTRY.match(registry):
        return f"{registry!r} is not a registry host name (host or host:port, or * for every registry)"
    return None


def _endpoint_problem(endpoint: str) -> str | None:
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"{endpoint!r} is not a URL ({exc})"
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in endpoint):
        return f"{endpoint!r} is not an http(s) URL with a host"
    return None
