"""Typed model of the node configuration (nodeadm's NodeConfig, node.eks.aws/v1alpha1) and its validation.

Every dialect (NodeConfig, bootstrap.sh flags, Bottlerocket TOML) is turned into a :class:`NodeSettings`.
Parsing collects every problem with the path of the bad field (``spec.cluster.apiServerEndpoint: ...``)
instead of stopping at the first.
"""

from __future__ import annotations

import binascii
import re

from nodeforge.bootstrap import tomlr
from nodeforge.bootstrap.encoding import b64decode
from nodeforge.bootstrap.errors import Diagnostics
from nodeforge.bootstrap.record import dataclass, field
from nodeforge.bootstrap.shell import unquote_flag

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

API_VERSION = "node.eks.aws/v1alpha1"
KIND = "NodeConfig"
KNOWN_FEATURE_GATES = frozenset({"InstanceIdNodeName", "FastImagePull"})
LOCAL_STORAGE_STRATEGIES = ("RAID0", "RAID10", "Mount")
DISABLED_MOUNTS = ("Containerd", "PodLogs", "SOCI")
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$")


@dataclass
class ClusterDetails:
    name: str = ""
    api_server_endpoint: str = ""
    certificate_authority: bytes = b""
    cidr: str = ""
    enable_outpost: bool | None = None
    id: str = ""


@dataclass
class KubeletOptions:
    config: dict[str, Any] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    max_pods_expression: str = ""


@dataclass
class ContainerdOptions:
    config: str = ""
    base_runtime_spec: dict[str, Any] = field(default_factory=dict)


@dataclass
class LocalStorageOptions:
    strategy: str = ""
    mount_path: str = ""
    disabled_mounts: list[str] = field(default_factory=list)


@dataclass
class NetworkOptions:
    nameservers: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)


@dataclass
class InstanceOptions:
    local_storage: LocalStorageOptions = field(default_factory=LocalStorageOptions)
    environment: dict[str, dict[str, str]] = field(default_factory=dict)
    network: NetworkOptions = field(default_factory=NetworkOptions)


@dataclass
class NodeConfigSpec:
    cluster: ClusterDetails = field(default_factory=ClusterDetails)
    containerd: ContainerdOptions = field(default_factory=ContainerdOptions)
    instance: InstanceOptions = field(default_factory=InstanceOptions)
    kubelet: KubeletOptions = field(default_factory=KubeletOptions)
    feature_gates: dict[str, bool] = field(default_factory=dict)


@dataclass
class NodeConfig:
    spec: NodeConfigSpec = field(default_factory=NodeConfigSpec)


@dataclass
class RegistryMirror:
    """Pull endpoints tried, in order, before ``registry`` itself (``*``: every registry)."""

    registry: str
    endpoints: list[str] = field(default_factory=list)


@dataclass
class RegistryCredential:
    """Credentials for one registry: ``auth`` (base64 of user:password), username + password, or an identity token."""

    registry: str
    username: str = ""
    password: str = ""
    auth: str = ""
    identity_token: str = ""


@dataclass
class HostSettings:
    """Node settings NodeConfig has no field for (Bottlerocket TOML only): registry mirrors and credentials,
    kernel sysctls."""

    mirrors: list[RegistryMirror] = field(default_factory=list)
    credentials: list[RegistryCredential] = field(default_factory=list)
    sysctls: dict[str, str] = field(default_factory=dict)


@dataclass
class NodeSettings:
    """What every dialect boils down to: a NodeConfig plus the few legacy knobs NodeConfig has no field for.

    ``field_names`` maps the model's field paths (``spec.cluster.name``) to the names the input used
    (``settings.kubernetes.cluster-name``), so that validation errors name what the user wrote.
    """

    node_config: NodeConfig
    dialect: str
    cluster_dns: list[str] = field(default_factory=list)
    ip_family: str = ""
    use_max_pods: bool = True
    max_pods: int | None = None
    pause_account: str = ""
    pause_version: str = ""
    host: HostSettings = field(default_factory=HostSettings)
    field_names: dict[str, str] = field(default_factory=dict)

    @property
    def spec(self) -> NodeConfigSpec:
        return self.node_config.spec


def _type_name(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}.get(
        type(value), type(value).__name__
    )


class _Reader:
    """Reads typed fields out of a raw mapping, recording errors and unknown keys under a dotted path."""

    def __init__(self, diagnostics: Diagnostics, strict: bool) -> None:
        self.diagnostics = diagnostics
        self.strict = strict

    def mapping(self, raw: object, path: str) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.diagnostics.error(f"{path}: must be a mapping, not {_type_name(raw)}")
            return {}
        return raw

    def unknown(self, raw: dict[str, Any], known: set[str], path: str) -> None:
        for key in raw:
            if key not in known:
                message = f"{path}.{key}: unknown field"
                if self.strict:
                    self.diagnostics.error(message)
                else:
                    self.diagnostics.warn(f"{message} (ignored)")

    def string(self, raw: dict[str, Any], key: str, path: str) -> str:
        value = raw.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            self.diagnostics.error(f"{path}.{key}: must be a string, not {_type_name(value)}")
            return ""
        return value

    def boolean(self, raw: dict[str, Any], key: str, path: str) -> bool | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.diagnostics.error(f"{path}.{key}: must be a boolean, not {_type_name(value)}")
            return None
        return value

    def strings(self, raw: dict[str, Any], key: str, path: str) -> list[str]:
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.diagnostics.error(f"{path}.{key}: must be a list of strings, not {_type_name(value)}")
            return []
        good = []
        for index, item in enumerate(value):
            if isinstance(item, str):
                good.append(item)
            else:
                self.diagnostics.error(f"{path}.{key}[{index}]: must be a string, not {_type_name(item)}")
        return good


def parse_node_config(raw: object, diagnostics: Diagnostics, *, strict: bool = False) -> NodeConfig:
    """Build a NodeConfig from a decoded document (apiVersion/kind already checked); records every bad field."""
    read = _Reader(diagnostics, strict)
    document = read.mapping(raw, "NodeConfig")
    read.unknown(document, {"apiVersion", "kind", "metadata", "spec"}, "NodeConfig")
    spec_raw = read.mapping(document.get("spec"), "spec")
    read.unknown(spec_raw, {"cluster", "containerd", "instance", "kubelet", "featureGates"}, "spec")
    spec = NodeConfigSpec()

    cluster = read.mapping(spec_raw.get("cluster"), "spec.cluster")
    read.unknown(
        cluster, {"name", "apiServerEndpoint", "certificateAuthority", "cidr", "enableOutpost", "id"}, "spec.cluster"
    )
    spec.cluster = ClusterDetails(
        name=read.string(cluster, "name", "spec.cluster"),
        api_server_endpoint=read.string(cluster, "apiServerEndpoint", "spec.cluster"),
        cidr=read.string(cluster, "cidr", "spec.cluster"),
        enable_outpost=read.boolean(cluster, "enableOutpost", "spec.cluster"),
        id=read.string(cluster, "id", "spec.cluster"),
    )
    ca = read.string(cluster, "certificateAuthority", "spec.cluster")
    if ca:
        try:
            spec.cluster.certificate_authority = b64decode("".join(ca.split()))
        except (binascii.Error, ValueError):
            diagnostics.error(
                "spec.cluster.certificateAuthority: must be base64 (the cluster CA bundle, base64-encoded)"
            )

    kubelet = read.mapping(spec_raw.get("kubelet"), "spec.kubelet")
    read.unknown(kubelet, {"config", "flags", "maxPodsExpression"}, "spec.kubelet")
    spec.kubelet = KubeletOptions(
        config=dict(read.mapping(kubelet.get("config"), "spec.kubelet.config")),
        flags=read.strings(kubelet, "flags", "spec.kubelet"),
        max_pods_expression=read.string(kubelet, "maxPodsExpression", "spec.kubelet"),
    )

    containerd = read.mapping(spec_raw.get("containerd"), "spec.containerd")
    read.unknown(containerd, {"config", "baseRuntimeSpec"}, "spec.containerd")
    spec.containerd = ContainerdOptions(
        config=read.string(containerd, "config", "spec.containerd"),
        base_runtime_spec=dict(read.mapping(containerd.get("baseRuntimeSpec"), "spec.containerd.baseRuntimeSpec")),
    )

    instance = read.mapping(spec_raw.get("instance"), "spec.instance")
    read.unknown(instance, {"localStorage", "environment", "network"}, "spec.instance")
    storage = read.mapping(instance.get("localStorage"), "spec.instance.localStorage")
    read.unknown(storage, {"strategy", "mountPath", "disabledMounts"}, "spec.instance.localStorage")
    network = read.mapping(instance.get("network"), "spec.instance.network")
    read.unknown(network, {"nameservers", "domains"}, "spec.instance.network")
    spec.instance = InstanceOptions(
        local_storage=LocalStorageOptions(
            strategy=read.string(storage, "strategy", "spec.instance.localStorage"),
            mount_path=read.string(storage, "mountPath", "spec.instance.localStorage"),
            disabled_mounts=read.strings(storage, "disabledMounts", "spec.instance.localStorage"),
        ),
        environment=_environment(read, instance.get("environment")),
        network=NetworkOptions(
            nameservers=read.strings(network, "nameservers", "spec.instance.network"),
            domains=read.strings(network, "domains", "spec.instance.network"),
        ),
    )

    gates = read.mapping(spec_raw.get("featureGates"), "spec.featureGates")
    for name, enabled in gates.items():
        if not isinstance(enabled, bool):
            diagnostics.error(f"spec.featureGates.{name}: must be a boolean, not {_type_name(enabled)}")
        else:
            spec.feature_gates[str(name)] = enabled
    return NodeConfig(spec=spec)


def _environment(read: _Reader, raw: object) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for scope, variables in read.mapping(raw, "spec.instance.environment").items():
        path = f"spec.instance.environment.{scope}"
        values = read.mapping(variables, path)
        result[str(scope)] = {}
        for name, value in values.items():
            if isinstance(value, str):
                result[str(scope)][str(name)] = value
            else:
                read.diagnostics.error(f"{path}.{name}: must be a string, not {_type_name(value)}")
    return result


def check_https_url(value: str) -> str | None:
    """None when ``value`` is an http or https URL with a host (nodeadm accepts both: Outposts and local
    clusters serve http), else the reason it is not."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        return f"must be an http(s) URL ({exc})"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"must be an http(s) URL, not {value!r}"
    if parts.path not in ("", "/") or parts.query or parts.fragment or port == 0:
        return f"must be an http(s) URL with no path, query or fragment, not {value!r}"
    return None


def _renaming(names: dict[str, str], emit: Callable[[str], None]) -> Callable[[str], None]:
    """``emit`` with the leading field path of each message (``spec.cluster.name: ...``, ``clusterDNS[0]: ...``)
    replaced by the input's name for it, when ``names`` has one."""
    if not names:
        return emit

    def renamed(message: str) -> None:
        path, colon, rest = message.partition(":")
        base, bracket, index = path.partition("[")
        emit(names[base] + bracket + index + colon + rest if colon and base in names else message)

    return renamed


def validate(settings: NodeSettings, diagnostics: Diagnostics, *, strict: bool = False) -> None:
    """Semantic checks on the merged settings; problems go to ``diagnostics``."""
    import ipaddress

    cluster = settings.spec.cluster
    error = _renaming(settings.field_names, diagnostics.error)
    warn = _renaming(settings.field_names, diagnostics.warn)
    if not cluster.name:
        error("spec.cluster.name: required (the EKS cluster name)")
    elif not _CLUSTER_NAME.match(cluster.name):
        error(f"spec.cluster.name: {cluster.name!r} is not a valid EKS cluster name")
    if not cluster.api_server_endpoint:
        error("spec.cluster.apiServerEndpoint: required (the cluster's API server URL)")
    elif check_https_url(cluster.api_server_endpoint) is not None:
        error(f"spec.cluster.apiServerEndpoint: {check_https_url(cluster.api_server_endpoint)}")
    if not cluster.certificate_authority:
        error("spec.cluster.certificateAuthority: required (base64 of the cluster CA bundle)")
    elif b"-----BEGIN CERTIFICATE-----" not in cluster.certificate_authority:
        message = "spec.cluster.certificateAuthority: does not decode to a PEM certificate"
        error(message) if strict else warn(message)
    if cluster.cidr:
        try:
            ipaddress.ip_network(cluster.cidr, strict=False)
        except ValueError:
            error(f"spec.cluster.cidr: {cluster.cidr!r} is not a CIDR block")
    elif settings.dialect == "nodeconfig":
        error("spec.cluster.cidr: required (the cluster's service CIDR, used to derive the DNS address)")
    if cluster.enable_outpost and not cluster.id:
        error("spec.cluster.id: required when spec.cluster.enableOutpost is true")
    for index, address in enumerate(settings.cluster_dns):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            error(f"clusterDNS[{index}]: {address!r} is not an IP address")
    kubelet = settings.spec.kubelet
    if kubelet.flags:
        from nodeforge.bootstrap.kubeletflags import normalize

        # as the kubelet reads them: --flag value, --flag=value, booleans, repeated map flags merged
        kubelet.flags = normalize([unquote_flag(flag) for flag in kubelet.flags], "spec.kubelet.flags", error)
    for flag in kubelet.flags:
        if any(char.isspace() for char in flag):
            error(f"spec.kubelet.flags: {flag!r} contains whitespace, which the kubelet unit cannot pass")
    if kubelet.config:
        _check_kubelet_config(kubelet.config, error, warn, strict)
    if settings.spec.containerd.config:
        try:
            tomlr.loads(settings.spec.containerd.config)
        except tomlr.TOMLDecodeError as exc:
            error(f"spec.containerd.config: not valid TOML ({exc})")
    storage = settings.spec.instance.local_storage
    if storage.strategy and storage.strategy not in LOCAL_STORAGE_STRATEGIES:
        error(f"spec.instance.localStorage.strategy: must be one of {', '.join(LOCAL_STORAGE_STRATEGIES)}")
    for index, mount in enumerate(storage.disabled_mounts):
        if mount not in DISABLED_MOUNTS:
            error(f"spec.instance.localStorage.disabledMounts[{index}]: must be one of {', '.join(DISABLED_MOUNTS)}")
    for index, server in enumerate(settings.spec.instance.network.nameservers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            error(f"spec.instance.network.nameservers[{index}]: {server!r} is not an IP address")
    for gate in settings.spec.feature_gates:
        if gate not in KNOWN_FEATURE_GATES:
            message = (
                f"spec.featureGates.{gate}: unknown feature gate (known: {', '.join(sorted(KNOWN_FEATURE_GATES))})"
            )
            error(message) if strict else warn(message + "; ignored")
    if settings.max_pods is not None and settings.max_pods <= 0:
        error(f"max-pods: must be a positive integer, not {settings.max_pods}")


def _check_kubelet_config(
    config: dict[str, Any], error: Callable[[str], None], warn: Callable[[str], None], strict: bool
) -> None:
    """Every kubelet.config value type-checked against KubeletConfiguration v1beta1 (kubeletschema); a null is
    dropped with a warning (it sets nothing)."""
    from nodeforge.bootstrap.kubeletschema import check_kubelet_config

    def unknown(path: str) -> None:
        message = f"{path}: not a KubeletConfiguration v1beta1 field"
        error(message) if strict else warn(f"{message}; written as given (the kubelet ignores fields it does not know)")

    check_kubelet_config(config, "spec.kubelet.config", error, unknown)
    for key in [key for key, value in config.items() if value is None]:
        warn(f"spec.kubelet.config.{key}: null sets nothing; left out of the kubelet configuration")
        del config[key]
