"""The AL2 ``/etc/eks/bootstrap.sh CLUSTER [flags]`` interface, mapped onto the same model as NodeConfig.

Flags are those of the EKS AL2 script. As there, each takes one value and a flag's value may also come from
the exported environment variable the script reads (``APISERVER_ENDPOINT``, ``B64_CLUSTER_CA``,
``SERVICE_IPV4_CIDR`` ...). The script called ``aws eks describe-cluster`` when the endpoint or CA was
missing; the agent has no AWS SDK on the node, so both are required here.
"""

from __future__ import annotations

import binascii
from pathlib import Path

from nodeforge.bootstrap.encoding import b64decode
from nodeforge.bootstrap.errors import Diagnostics
from nodeforge.bootstrap.model import NodeConfig, NodeSettings
from nodeforge.bootstrap.shell import ShellSyntaxError, tokenize

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# flag -> environment variable bootstrap.sh falls back to
FLAGS: dict[str, str] = {
    "--apiserver-endpoint": "APISERVER_ENDPOINT",
    "--aws-api-retry-attempts": "API_RETRY_ATTEMPTS",
    "--b64-cluster-ca": "B64_CLUSTER_CA",
    "--cluster-id": "CLUSTER_ID",
    "--container-runtime": "CONTAINER_RUNTIME",
    "--containerd-config-file": "CONTAINERD_CONFIG_FILE",
    "--dns-cluster-ip": "DNS_CLUSTER_IP",
    "--docker-config-json": "DOCKER_CONFIG_JSON",
    "--enable-docker-bridge": "ENABLE_DOCKER_BRIDGE",
    "--enable-local-outpost": "ENABLE_LOCAL_OUTPOST",
    "--ip-family": "IP_FAMILY",
    "--kubelet-extra-args": "KUBELET_EXTRA_ARGS",
    "--local-disks": "LOCAL_DISKS",
    "--mount-bpf-fs": "MOUNT_BPF_FS",
    "--pause-container-account": "PAUSE_CONTAINER_ACCOUNT",
    "--pause-container-version": "PAUSE_CONTAINER_VERSION",
    "--service-ipv4-cidr": "SERVICE_IPV4_CIDR",
    "--service-ipv6-cidr": "SERVICE_IPV6_CIDR",
    "--use-max-pods": "USE_MAX_PODS",
}
IGNORED = {
    "--aws-api-retry-attempts": "no AWS API is called by this agent",
    "--docker-config-json": "not relevant to containerd",
    "--enable-docker-bridge": "not relevant to containerd",
    "--mount-bpf-fs": "bpffs is mounted by the image",
}
_LOCAL_DISKS = {"raid0": "RAID0", "raid10": "RAID10", "mount": "Mount"}


def _boolean(value: str, flag: str, diagnostics: Diagnostics) -> bool | None:
    lowered = value.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    diagnostics.error(f"{flag}: must be true or false, not {value!r}")
    return None


def parse_args(args: list[str], diagnostics: Diagnostics) -> tuple[dict[str, str], list[str]]:
    """Flag values (last one wins, ``--flag value`` or ``--flag=value``) and positional arguments."""
    values: dict[str, str] = {}
    positional: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        name, equals, inline = arg.partition("=")
        if arg in ("-h", "--help"):
            diagnostics.error(f"{arg}: bootstrap.sh help is not available at boot; see docs/bootstrap.md")
            i += 1
        elif name in FLAGS and equals:
            values[name] = inline
            i += 1
        elif arg in FLAGS:
            if i + 1 >= len(args):
                diagnostics.error(f"{arg}: needs a value")
                i += 1
            else:
                values[arg] = args[i + 1]
                i += 2
        else:
            if arg.startswith("--"):
                diagnostics.warn(f"bootstrap.sh: unknown argument {arg!r} (ignored, as bootstrap.sh ignores it)")
            else:
                positional.append(arg)
            i += 1
    return values, positional


def settings_from_args(
    args: list[str],
    environment: dict[str, str],
    diagnostics: Diagnostics,
    read_file: Callable[[str], str] | None = None,
) -> NodeSettings:
    """NodeSettings from bootstrap.sh arguments plus the exported variables the script would read."""
    values, positional = parse_args(args, diagnostics)
    for flag, variable in FLAGS.items():
        if flag not in values and environment.get(variable):
            values[flag] = environment[variable]
    settings = NodeSettings(
        node_config=NodeConfig(),
        dialect="bootstrap.sh",
        field_names={"spec.kubelet.flags": "bootstrap.sh --kubelet-extra-args"},
    )
    spec = settings.spec
    cluster = spec.cluster
    if not positional:
        diagnostics.error("bootstrap.sh: the cluster name (first positional argument) is missing")
    else:
        cluster.name = positional[0]
        if len(positional) > 1:
            diagnostics.warn(f"bootstrap.sh: extra positional arguments ignored: {' '.join(positional[1:])}")
    for flag, reason in IGNORED.items():
        if flag in values:
            diagnostics.warn(f"bootstrap.sh {flag}: ignored ({reason})")

    endpoint, ca = values.get("--apiserver-endpoint", ""), values.get("--b64-cluster-ca", "")
    if not endpoint or not ca:
        missing = [flag for flag in ("--apiserver-endpoint", "--b64-cluster-ca") if not values.get(flag)]
        diagnostics.error(
            f"bootstrap.sh: {' and '.join(missing)} missing; the agent cannot call eks:DescribeCluster, "
            "so the endpoint and CA must be given"
        )
    cluster.api_server_endpoint = endpoint
    if ca:
        try:
            cluster.certificate_authority = b64decode("".join(ca.split()))
        except (binascii.Error, ValueError):
            diagnostics.error("bootstrap.sh --b64-cluster-ca: not base64")

    runtime = values.get("--container-runtime", "containerd")
    if runtime != "containerd":
        diagnostics.error(f"bootstrap.sh --container-runtime: {runtime!r} is not supported, only containerd")

    family = values.get("--ip-family", "").lower()
    if family and family not in ("ipv4", "ipv6"):
        diagnostics.error(f"bootstrap.sh --ip-family: must be ipv4 or ipv6, not {values['--ip-family']!r}")
    ipv6_cidr = values.get("--service-ipv6-cidr", "")
    if ipv6_cidr:
        if family == "ipv4":
            diagnostics.error("bootstrap.sh: --ip-family must be ipv6 when --service-ipv6-cidr is given")
        family = "ipv6"
        cluster.cidr = ipv6_cidr
    elif values.get("--service-ipv4-cidr"):
        cluster.cidr = values["--service-ipv4-cidr"]
        if family == "ipv6":
            cluster.cidr = ""  # the IPv4 service CIDR says nothing about an IPv6 cluster
    settings.ip_family = family
    if values.get("--dns-cluster-ip"):
        settings.cluster_dns = [ip.strip() for ip in values["--dns-cluster-ip"].split(",") if ip.strip()]
    if family == "ipv6" and not ipv6_cidr and not settings.cluster_dns:
        diagnostics.error(
            "bootstrap.sh: one of --service-ipv6-cidr or --dns-cluster-ip is needed with --ip-family ipv6"
        )

    if "--use-max-pods" in values:
        use = _boolean(values["--use-max-pods"], "--use-max-pods", diagnostics)
        settings.use_max_pods = True if use is None else use
    extra = values.get("--kubelet-extra-args", "")
    if extra.strip():
        try:
            commands = tokenize(extra, None)
            spec.kubelet.flags = [word.text for command in commands for word in command]
        except ShellSyntaxError as exc:
            diagnostics.error(f"bootstrap.sh --kubelet-extra-args: {exc}")

    if "--enable-local-outpost" in values:
        cluster.enable_outpost = _boolean(values["--enable-local-outpost"], "--enable-local-outpost", diagnostics)
    cluster.id = values.get("--cluster-id", "")
    if cluster.enable_outpost and not cluster.id:
        diagnostics.error("bootstrap.sh: --cluster-id is required with --enable-local-outpost true")
    if values.get("--local-disks"):
        strategy = _LOCAL_DISKS.get(values["--local-disks"].lower())
        if strategy is None:
            diagnostics.error(
                f"bootstrap.sh --local-disks: must be mount, raid0 or raid10, not {values['--local-disks']!r}"
            )
        else:
            spec.instance.local_storage.strategy = strategy
    settings.pause_account = values.get("--pause-container-account", "")
    settings.pause_version = values.get("--pause-container-version", "")
    if values.get("--containerd-config-file"):
        path = values["--containerd-config-file"]
        if read_file is None:
            diagnostics.error(f"bootstrap.sh --containerd-config-file: cannot read {path} here")
        else:
            try:
                spec.containerd.config = read_file(path)
                diagnostics.warn(
                    f"bootstrap.sh --containerd-config-file: {path} is applied as a drop-in over the image's "
                    "containerd config, not in place of it"
                )
            except OSError as exc:
                diagnostics.error(f"bootstrap.sh --containerd-config-file: cannot read {path} ({exc.strerror})")
    return settings


def file_reader(root: Path) -> Callable[[str], str]:
    """Reads a node path (as the script saw it) under the agent's root prefix."""

    def read(path: str) -> str:
        return (root / path.lstrip("/")).read_text(encoding="utf-8")

    return read
