"""Check a settings file, and render what the agent would write for it, without IMDS and without systemd.

The engine of ``nodeforge settings validate|render``. It runs the agent's own steps -- the same decoding, the
typed settings model, :func:`model.validate`, :func:`plan.build` and :func:`writer.apply` -- with instance facts
made up offline (:func:`offline_metadata`) in place of the ones IMDS gives on a node.
"""

from __future__ import annotations

import re
from pathlib import Path

from nodeforge.bootstrap import maxpods, plan, tomlr, writer
from nodeforge.bootstrap.bottlerocket import node_settings
from nodeforge.bootstrap.encoding import to_text, unwrap
from nodeforge.bootstrap.errors import BootstrapError, CisError, Diagnostics
from nodeforge.bootstrap.metadata import InstanceMetadata
from nodeforge.bootstrap.model import NodeSettings, validate
from nodeforge.bootstrap.record import dataclass, field
from nodeforge.bootstrap.settings import Settings, parse_settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_INSTANCE_TYPE = "m5.large"
DEFAULT_REGION = "us-east-1"
OFFLINE_INSTANCE_ID = "i-0123456789abcdef0"
OFFLINE_IPV4 = "10.0.0.10"
OFFLINE_IPV6 = "fd00::10"
_EKS_ENDPOINT_REGION = re.compile(r"\.([a-z]{2}(?:-[a-z]+)+-\d+)\.eks\.amazonaws\.com(?:\.cn)?(?::\d+)?/?$")


class SettingsFileError(Exception):
    """The file cannot be read, or is not TOML (after the agent's base64/gzip decoding)."""


@dataclass
class OfflineOptions:
    """What a node would tell the agent, chosen by hand: root prefix, kubelet version, instance type, CIS mode."""

    root: Path
    kubelet_version: tuple[int, int] | None = None
    instance_type: str = DEFAULT_INSTANCE_TYPE
    cis_mode: str = "enforce"
    auth_helper: str = "auto"


@dataclass
class Checked:
    """The outcome of :func:`check`: the typed settings, every error and warning, and the plan when valid."""

    settings: Settings
    node: NodeSettings
    diagnostics: Diagnostics
    plan: plan.Plan | None = None
    outcomes: list[writer.Outcome] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.diagnostics.errors


def load(path: Path) -> dict[str, Any]:
    """The TOML document in ``path`` (gzip/base64 undone as the agent does); SettingsFileError otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SettingsFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        text = to_text(unwrap(data), str(path))
    except ValueError as exc:
        raise SettingsFileError(str(exc)) from exc
    try:
        return tomlr.loads(text)
    except tomlr.TOMLDecodeError as exc:
        raise SettingsFileError(f"{path}: not valid TOML ({exc})") from exc


def region_of(api_server: str) -> str:
    """The region in an EKS endpoint (``https://X.gr7.us-west-2.eks.amazonaws.com``), else us-east-1."""
    match = _EKS_ENDPOINT_REGION.search(api_server)
    return match.group(1) if match else DEFAULT_REGION


def offline_metadata(node: NodeSettings, instance_type: str) -> InstanceMetadata:
    """Instance facts for rendering off a node: the given type, the endpoint's region, placeholder IDs and IPs."""
    region = region_of(node.spec.cluster.api_server_endpoint)
    node_ip = OFFLINE_IPV6 if plan.ip_family(node) == "ipv6" else OFFLINE_IPV4
    domain = "ec2.internal" if region == DEFAULT_REGION else f"{region}.compute.internal"
    return InstanceMetadata(
        instance_id=OFFLINE_INSTANCE_ID,
        instance_type=instance_type,
        availability_zone=f"{region}a",
        region=region,
        local_hostname=f"ip-{OFFLINE_IPV4.replace('.', '-')}.{domain}",
        node_ip=node_ip,
    )


def check(document: dict[str, Any], options: OfflineOptions) -> Checked:
    """Everything the agent checks before writing: types and keys, the cluster fields, CIS; plans the files."""
    diagnostics = Diagnostics()
    settings = parse_settings(document, diagnostics)
    node = node_settings(settings)
    validate(node, diagnostics)
    checked = Checked(settings, node, diagnostics)
    if diagnostics.errors:
        return checked
    limits = maxpods.lookup(options.instance_type)
    plan_options = plan.PlanOptions(
        root=options.root,
        cpus=limits.vcpus if limits else 2,
        kubelet_version=options.kubelet_version,
        cis_mode=options.cis_mode,
        auth_helper=options.auth_helper,
    )
    try:
        checked.plan = plan.build(node, offline_metadata(node, options.instance_type), plan_options, diagnostics)
    except CisError as exc:
        diagnostics.errors.extend(f"CIS: {problem}" for problem in exc.problems)
    except BootstrapError as exc:
        diagnostics.errors.extend(exc.problems or [str(exc)])
    return checked


def render(document: dict[str, Any], options: OfflineOptions) -> Checked:
    """:func:`check`, then write the planned files under ``options.root`` as the agent would (nothing if invalid)."""
    checked = check(document, options)
    if checked.plan is not None and checked.valid:
        checked.outcomes = writer.apply(options.root, checked.plan.files)
    return checked
