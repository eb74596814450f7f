"""From raw user data to :class:`NodeSettings`: undo encodings, detect the dialect, parse and merge.

Dialects: (1) nodeadm NodeConfig documents, alone or as ``application/node.eks.aws`` MIME parts;
(2) shell scripts calling ``/etc/eks/bootstrap.sh``, alone or as MIME parts; (3) Bottlerocket TOML.
Other MIME parts (shell scripts without a bootstrap call, cloud-config) are left for cloud-init.
"""

from __future__ import annotations

import json
import re

from nodeforge.bootstrap import legacy, tomlr
from nodeforge.bootstrap.encoding import to_text, unwrap
from nodeforge.bootstrap.errors import Diagnostics, InvalidInputError
from nodeforge.bootstrap.merge import merge_node_configs
from nodeforge.bootstrap.mime import looks_like_mime, split_multipart
from nodeforge.bootstrap.model import API_VERSION, KIND, NodeSettings, parse_node_config
from nodeforge.bootstrap.record import dataclass, field
from nodeforge.bootstrap.shell import BootstrapCall, ShellSyntaxError, find_bootstrap_calls

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

NODECONFIG_MEDIA_TYPE = "application/node.eks.aws"
_SHELL_TYPES = frozenset({"text/x-shellscript", "text/x-shellscript-per-boot", "text/x-shellscript-per-instance"})
_TOML_START = re.compile(r"^\s*\[\s*(settings|\"settings\"|'settings')\s*[.\]]", re.MULTILINE)


@dataclass
class Found:
    """What the user data holds, before merging."""

    node_configs: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    calls: list[tuple[str, BootstrapCall]] = field(default_factory=list)
    toml: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def _node_config_documents(text: str, where: str, diagnostics: Diagnostics) -> list[dict[str, Any]]:
    import yaml

    loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        is_json = text.lstrip().startswith("{")
        documents = [json.loads(text)] if is_json else list(yaml.load_all(text, Loader=loader))
    except (yaml.YAMLError, ValueError) as exc:
        diagnostics.error(f"{where}: not valid YAML or JSON ({' '.join(str(exc).split())})")
        return []
    good = []
    errors_before = len(diagnostics.errors)
    for number, document in enumerate((d for d in documents if d is not None), start=1):
        label = f"{where}, document {number}"
        if not isinstance(document, dict):
            diagnostics.error(f"{label}: must be a NodeConfig mapping, not {type(document).__name__}")
            continue
        api_version, kind = document.get("apiVersion"), document.get("kind")
        if api_version != API_VERSION:
            diagnostics.error(f"{label}: apiVersion {api_version!r} is not supported (expected {API_VERSION})")
        if kind != KIND:
            diagnostics.error(f"{label}: kind {kind!r} is not supported (expected {KIND})")
        containerd = (document.get("spec") or {}).get("containerd") if isinstance(document.get("spec"), dict) else None
        if isinstance(containerd, dict) and isinstance(containerd.get("config"), str):
            try:
                tomlr.loads(containerd["config"])
            except tomlr.TOMLDecodeError as exc:
                diagnostics.error(f"{label}: spec.containerd.config: not valid TOML ({exc})")
                continue
        if api_version == API_VERSION and kind == KIND:
            good.append(document)
    if not good and len(diagnostics.errors) == errors_before:
        diagnostics.error(f"{where}: holds no NodeConfig document")
    return good


def _scan_shell(text: str, where: str, found: Found, diagnostics: Diagnostics) -> None:
    try:
        calls = find_bootstrap_calls(text)
    except ShellSyntaxError as exc:
        diagnostics.error(f"{where}: cannot read the bootstrap.sh call ({exc})")
        return
    found.calls.extend((where, call) for call in calls)


def _has_call(text: str) -> bool:
    try:
        return bool(find_bootstrap_calls(text))
    except ShellSyntaxError:
        return False


def _scan_text(text: str, where: str, found: Found, diagnostics: Diagnostics) -> None:
    stripped = text.lstrip()
    if stripped.startswith("#!"):
        _scan_shell(text, where, found, diagnostics)
    elif re.search(r"(^|[\s;&|])(/etc/eks/)?bootstrap\.sh\b", text) and _has_call(text):
        _scan_shell(text, where, found, diagnostics)  # a script without a shebang line
    elif stripped.startswith("#cloud-config"):
        diagnostics.warn(f"{where}: cloud-config is left for cloud-init")
    elif _TOML_START.search(text):
        try:
            found.toml.append((where, tomlr.loads(text)))
        except tomlr.TOMLDecodeError as exc:
            diagnostics.error(f"{where}: not valid TOML ({exc})")
    else:
        found.node_configs.extend((where, doc) for doc in _node_config_documents(text, where, diagnostics))


def _scan_mime(text: str, found: Found, diagnostics: Diagnostics) -> None:
    try:
        parts = split_multipart(text)
    except ValueError as exc:
        raise InvalidInputError("malformed MIME multipart user data", [str(exc)]) from exc
    for part in parts:
        where = part.describe()
        if part.content_type == NODECONFIG_MEDIA_TYPE:
            try:
                body = to_text(unwrap(part.body), where)
            except ValueError as exc:
                diagnostics.error(str(exc))
                continue
            found.node_configs.extend((where, d) for d in _node_config_documents(body, where, diagnostics))
        elif part.content_type in _SHELL_TYPES:
            try:
                _scan_shell(to_text(unwrap(part.body), where), where, found, diagnostics)
            except ValueError as exc:
                diagnostics.warn(f"{exc}; left for cloud-init")
        else:
            diagnostics.warn(f"{where}: left for cloud-init")


def scan(data: bytes, diagnostics: Diagnostics) -> Found:
    """Find the node configuration in raw user data."""
    try:
        text = to_text(unwrap(data), "user data")
    except ValueError as exc:
        raise InvalidInputError("cannot decode the user data", [str(exc)]) from exc
    if not text.strip():
        raise InvalidInputError("the user data is empty: no node configuration to apply")
    found = Found()
    if looks_like_mime(text):
        _scan_mime(text, found, diagnostics)
    else:
        _scan_text(text, "user data", found, diagnostics)
    return found


def settings_from_found(
    found: Found, diagnostics: Diagnostics, *, strict: bool, read_file: Callable[[str], str] | None
) -> NodeSettings:
    kinds = [
        name
        for name, items in (
            ("NodeConfig", found.node_configs),
            ("bootstrap.sh call", found.calls),
            ("TOML settings", found.toml),
        )
        if items
    ]
    if len(kinds) > 1:
        diagnostics.error(f"the user data mixes {' and '.join(kinds)}; use one dialect")
    if len(found.calls) > 1:
        lines = ", ".join(f"{where} line {call.line}" for where, call in found.calls)
        diagnostics.error(f"the user data calls bootstrap.sh more than once ({lines})")
    diagnostics.raise_if_errors("invalid user data")
    if found.node_configs:
        merged = merge_node_configs(
            [document for _, document in found.node_configs],
            [where for where, _ in found.node_configs],
            diagnostics.warn,
        )
        return NodeSettings(node_config=parse_node_config(merged, diagnostics, strict=strict), dialect="nodeconfig")
    if found.calls:
        where, call = found.calls[0]
        for reason in dict.fromkeys(call.unresolved):  # an argument would be missing or wrong: refuse the call
            diagnostics.error(
                f"{where} line {call.line}: the bootstrap.sh call cannot be read statically: {reason} "
                "(write the value itself, or use NodeConfig user data)"
            )
        for reason in dict.fromkeys(call.unset):
            diagnostics.warn(f"{where} line {call.line}: {reason}")
        return legacy.settings_from_args(call.args, call.environment, diagnostics, read_file)
    if found.toml:
        from nodeforge.bootstrap.bottlerocket import settings_from_toml

        return settings_from_toml(found.toml[0][1], diagnostics)
    raise InvalidInputError(
        "no node configuration in the user data",
        ["expected NodeConfig (application/node.eks.aws), a bootstrap.sh call, or [settings.kubernetes] TOML"],
    )


def settings_from_user_data(
    data: bytes, diagnostics: Diagnostics, *, strict: bool = False, read_file: Callable[[str], str] | None = None
) -> NodeSettings:
    return settings_from_found(scan(data, diagnostics), diagnostics, strict=strict, read_file=read_file)
