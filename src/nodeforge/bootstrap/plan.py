"""Compose every file the node needs from the settings and the instance metadata, before writing any."""

from __future__ import annotations

import json
from pathlib import Path

from nodeforge.bootstrap import (
    cis,
    containerd,
    containerd_nodeadm,
    credprovider,
    instance,
    kubelet,
    maxpods,
    runtimespec,
)
from nodeforge.bootstrap.errors import BootstrapError, CisError, Diagnostics, InvalidInputError
from nodeforge.bootstrap.merge import deep_merge
from nodeforge.bootstrap.metadata import InstanceMetadata
from nodeforge.bootstrap.model import NodeSettings
from nodeforge.bootstrap.record import dataclass, field
from nodeforge.bootstrap.sysctl import SYSCTL_PATH, render_sysctl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

if TYPE_CHECKING:
    from nodeforge.bootstrap.localdisks import LocalDisks

RUNTIME_SLICE = "/etc/systemd/system/runtime.slice"


@dataclass
class PlanOptions:
    root: Path
    cpus: int
    kubelet_version: tuple[int, int] | None = None
    max_pods: int | None = None
    max_pods_mode: str = "standard"
    prefix_delegation: bool = False
    custom_networking: bool = False
    auth_helper: str = "auto"
    cis_mode: str = "enforce"
    resolve_host: Callable[[str], list[str]] | None = None  # None: instance.lookup_host (the system resolver)


@dataclass
class PlannedFile:
    path: str
    content: bytes | None  # None: the file must not exist
    mode: int = 0o644


@dataclass
class Plan:
    files: list[PlannedFile] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    local_disks: LocalDisks | None = None  # instance-store disks to set up before the services start


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def compute_max_pods(
    settings: NodeSettings, metadata: InstanceMetadata, options: PlanOptions, diagnostics: Diagnostics
) -> int:
    """The max-pods value kube-reserved is computed from (and config.json gets, unless --use-max-pods false)."""
    limits = maxpods.lookup(metadata.instance_type)
    if options.max_pods is not None:
        return options.max_pods
    if settings.max_pods is not None:
        return settings.max_pods
    if limits is None:
        diagnostics.warn(
            f"instance type {metadata.instance_type!r} is not in the bundled table (moto "
            f"{maxpods.table_source().get('version', '?')}); max-pods falls back to {maxpods.DEFAULT_MAX_PODS}"
        )
        return maxpods.DEFAULT_MAX_PODS
    expression = settings.spec.kubelet.max_pods_expression
    if expression:
        try:
            return maxpods.expression_max_pods(expression, limits)
        except ValueError as exc:
            diagnostics.warn(f"spec.kubelet.maxPodsExpression: {exc}; using the standard max-pods value")
            return maxpods.standard_max_pods(limits)
    if options.max_pods_mode == "calculator":
        return maxpods.calculator_max_pods(
            limits, prefix_delegation=options.prefix_delegation, custom_networking=options.custom_networking
        )
    return maxpods.standard_max_pods(limits)


def cluster_dns(settings: NodeSettings, metadata: InstanceMetadata) -> list[str]:
    if settings.cluster_dns:
        return list(settings.cluster_dns)
    if settings.spec.cluster.cidr:
        return [kubelet.derive_cluster_dns(settings.spec.cluster.cidr)]
    if settings.ip_family == "ipv6":
        raise BootstrapError("an IPv6 cluster needs its service CIDR or a DNS address")
    return [kubelet.legacy_cluster_dns(metadata.vpc_ipv4_cidrs)]


def ip_family(settings: NodeSettings) -> str:
    cidr = settings.spec.cluster.cidr
    if cidr:
        return "ipv6" if ":" in cidr else "ipv4"
    return settings.ip_family or "ipv4"


def needs_vpc_cidrs(settings: NodeSettings) -> bool:
    return not settings.cluster_dns and not settings.spec.cluster.cidr and ip_family(settings) == "ipv4"


def _auth_helper(options: PlanOptions, diagnostics: Diagnostics) -> str:
    if options.auth_helper != "auto":
        return options.auth_helper
    if _under(options.root, kubelet.IAM_AUTHENTICATOR).exists():
        return "aws-iam-authenticator"
    if not any(_under(options.root, path).exists() for path in ("/usr/bin/aws", "/usr/local/bin/aws")):
        diagnostics.warn(
            "neither aws-iam-authenticator nor the aws CLI is installed; the kubeconfig uses 'aws eks get-token' "
            "as nodeadm's does, which needs the aws CLI"
        )
    return "aws-cli"


def _baked_config(root: Path) -> dict[str, Any] | None:
    path = _under(root, kubelet.CONFIG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BootstrapError(f"cannot read the image's kubelet config {kubelet.CONFIG_PATH}: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BootstrapError(f"the image's kubelet config {kubelet.CONFIG_PATH} is not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise BootstrapError(f"the image's kubelet config {kubelet.CONFIG_PATH} is not a JSON object")
    return document


def _report_unapplied(settings: NodeSettings, diagnostics: Diagnostics) -> None:
    if settings.spec.feature_gates.get("FastImagePull"):
        diagnostics.warn("spec.featureGates.FastImagePull: not applied by this agent")


def build(settings: NodeSettings, metadata: InstanceMetadata, options: PlanOptions, diagnostics: Diagnostics) -> Plan:
    """Every file to write (or remove); raises CisError when the result breaks CIS in enforce mode."""
    spec = settings.spec
    cluster = spec.cluster
    _report_unapplied(settings, diagnostics)
    max_pods = compute_max_pods(settings, metadata, options, diagnostics)
    user_flags = list(spec.kubelet.flags)
    values = kubelet.NodeValues(
        cluster_dns=cluster_dns(settings, metadata),
        max_pods=max_pods if settings.use_max_pods else None,
        kube_reserved=maxpods.kube_reserved(max_pods, options.cpus),
        provider_id=kubelet.provider_id(metadata.availability_zone, metadata.instance_id),
        reserved_cgroups=not any(flag.startswith("--reserved-cpus") for flag in user_flags),
        kubelet_version=options.kubelet_version,
    )
    config = kubelet.render_config(_baked_config(options.root), values)
    dropin = kubelet.render_dropin(spec.kubelet.config)

    node_name = metadata.instance_id if spec.feature_gates.get("InstanceIdNodeName") else metadata.local_hostname
    flags = [f"--node-ip={metadata.node_ip}", f"--hostname-override={node_name}", "--cloud-provider=external"]
    if _under(options.root, RUNTIME_SLICE).exists():
        flags.append("--runtime-cgroups=/runtime.slice/containerd.service")
    outpost = bool(cluster.enable_outpost)
    if outpost:
        flags.append(f"--bootstrap-kubeconfig={kubelet.BOOTSTRAP_KUBECONFIG_PATH}")
    flags.extend(user_flags)

    effective = cis.apply_flags(deep_merge(config, dropin or {}), flags)
    broken = cis.violations(effective) + _sysctl_violations(settings.host.sysctls)
    if broken and options.cis_mode == "enforce":
        raise CisError("the kubelet configuration would break CIS settings (use --cis-mode=warn to allow)", broken)
    for violation in broken:
        diagnostics.warn(f"CIS: {violation} (applied anyway: --cis-mode=warn)")

    base = containerd.base_config(options.root)
    config_version = containerd.config_version(base)
    try:
        user_containerd = containerd_nodeadm.user_config(spec.containerd.config, config_version)
    except InvalidInputError as exc:
        name = settings.field_names.get("spec.containerd.config", "spec.containerd.config")
        raise InvalidInputError(str(exc).replace("spec.containerd.config", name, 1), exc.problems) from exc
    runtime_section = containerd_nodeadm.nodeadm_section(config_version, options.root, options.kubelet_version)
    sandbox = None
    if settings.pause_account or settings.pause_version:
        image = containerd.pause_image(
            settings.pause_account, settings.pause_version, metadata.region, metadata.services_domain
        )
        sandbox = containerd.sandbox_section(image, config_version)
    registry = _registry_section(settings, base, config_version)
    containerd_dropin = containerd.render_dropin(user_containerd, runtime_section, sandbox, registry, base=base)

    kubeconfig = kubelet.render_kubeconfig(
        server=cluster.api_server_endpoint,
        cluster=cluster.id if outpost else cluster.name,
        region=metadata.region,
        auth_helper=_auth_helper(options, diagnostics),
    )
    plan = Plan()
    add = plan.files.append
    add(PlannedFile(kubelet.CA_PATH, cluster.certificate_authority, 0o644))
    add(PlannedFile(kubelet.CONFIG_PATH, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode(), 0o644))
    add(PlannedFile(kubelet.DROPIN_PATH, None if dropin is None else kubelet.to_json(dropin, sort=False).encode()))
    kubeconfig_path = kubelet.BOOTSTRAP_KUBECONFIG_PATH if outpost else kubelet.KUBECONFIG_PATH
    add(PlannedFile(kubeconfig_path, kubeconfig.encode(), 0o600))
    add(PlannedFile(kubelet.ENVIRONMENT_PATH, kubelet.render_environment(flags, settings.dialect).encode(), 0o644))
    secret = bool(settings.host.credentials)  # registry credentials: readable by root only
    add(PlannedFile(containerd.DROPIN_PATH, _encode(containerd_dropin), 0o600 if secret else 0o644))
    add(PlannedFile(runtimespec.PATH, runtimespec.render(spec.containerd.base_runtime_spec).encode()))
    plan.files.extend(_hosts_files(settings, options.root, diagnostics))
    plan.files.extend(_nodeadm_host_files(settings, options, diagnostics))
    add(PlannedFile(SYSCTL_PATH, _encode(render_sysctl(settings.host.sysctls))))
    storage = spec.instance.local_storage
    if storage.strategy:
        from nodeforge.bootstrap.localdisks import LocalDisks  # only with local disks: off the start-up path

        plan.local_disks = LocalDisks(
            storage.strategy, storage.mount_path or "/mnt/k8s-disks", list(storage.disabled_mounts), options.root
        )
    plan.facts = {
        "dialect": settings.dialect,
        "cluster": cluster.name,
        "instanceType": metadata.instance_type,
        "maxPods": max_pods,
        "clusterDNS": values.cluster_dns,
        "nodeIP": metadata.node_ip,
        "providerID": values.provider_id,
    }
    return plan


def _sysctl_violations(sysctls: dict[str, str]) -> list[str]:
    """TOML sysctls the kubelet's protectKernelDefaults would refuse (the settings model only when there are any)."""
    if not sysctls:
        return []
    from nodeforge.bootstrap.settings import sysctl_violations

    return sysctl_violations(sysctls)


def _encode(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


def _registry_section(settings: NodeSettings, base: dict[str, Any], config_version: int) -> dict[str, Any] | None:
    """The drop-in's CRI registry table: config_path for the mirrors (unless the image's already reads certs.d)
    and credentials. containerd 1.x refuses config_path next to the older ``registry.mirrors``: so does this."""
    host = settings.host
    registry = containerd.base_registry(base, config_version)
    path = containerd.config_path(registry) if host.mirrors else None
    if path is not None and registry.get("mirrors"):
        reason = f"{containerd.BASE_CONFIG_PATH} sets registry.mirrors, which containerd refuses next to config_path"
        raise InvalidInputError("settings.container-registry.mirrors: cannot be applied on this image", [reason])
    return containerd.registry_section(config_version, path, host.credentials)


def _hosts_files(settings: NodeSettings, root: Path, diagnostics: Diagnostics) -> list[PlannedFile]:
    """One hosts.toml per mirrored registry; those the agent wrote before and no longer wants are removed."""
    files = []
    for mirror in settings.host.mirrors:
        path = containerd.hosts_path(mirror.registry)
        if _under(root, path).exists() and path not in containerd.written_hosts_files(root):
            diagnostics.warn(f"{path}: the image's file is replaced by settings.container-registry.mirrors")
        files.append(PlannedFile(path, containerd.render_hosts(mirror).encode()))
    wanted = {file.path for file in files}
    files.extend(PlannedFile(path, None) for path in containerd.written_hosts_files(root) if path not in wanted)
    return files


def _nodeadm_host_files(settings: NodeSettings, options: PlanOptions, diagnostics: Diagnostics) -> list[PlannedFile]:
    """The image credential provider config, spec.instance's environment and name resolution, and a local
    Outpost's /etc/hosts entries."""
    files = []
    if _under(options.root, credprovider.BINARY_PATH).exists():
        files.append(PlannedFile(credprovider.CONFIG_PATH, credprovider.render(options.kubelet_version).encode()))
    elif options.root == Path("/"):
        diagnostics.warn(
            f"{credprovider.BINARY_PATH} is not installed: {credprovider.CONFIG_PATH} is left as it is "
            "(images from ECR need the credential provider)"
        )
    for path, content in instance.environment_files(settings.spec.instance.environment, options.root):
        files.append(PlannedFile(path, _encode(content)))
    network = settings.spec.instance.network
    resolved = instance.resolved_config(network.nameservers, network.domains)
    if resolved is not None and not any(_under(options.root, path).exists() for path in instance.RESOLVED_BINARIES):
        raise InvalidInputError(
            "spec.instance.network: this image has no systemd-resolved to give the nameservers and search domains to",
            [f"looked for {' and '.join(instance.RESOLVED_BINARIES)}"],
        )
    files.append(PlannedFile(instance.RESOLVED_PATH, _encode(resolved)))
    cluster = settings.spec.cluster
    if cluster.enable_outpost:
        hosts_path = _under(options.root, instance.HOSTS_PATH)
        try:
            current = hosts_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = ""
        except OSError as exc:
            raise BootstrapError(f"cannot read {instance.HOSTS_PATH}: {exc.strerror}") from exc
        hosts = instance.outpost_hosts(
            cluster.api_server_endpoint, current, options.resolve_host or instance.lookup_host
        )
        if hosts is not None:
            files.append(PlannedFile(instance.HOSTS_PATH, hosts.encode()))
    return files
