"""Merging NodeConfig documents the way nodeadm does (its api/merge.go: mergo with WithOverride and transformers):
later documents win per field, kubelet flags append, inline documents (kubelet config, base runtime spec) and
containerd TOML merge key by key -- and an empty value in a later document never erases an earlier one."""

from __future__ import annotations

import json

from nodeforge.bootstrap import tomlr
from nodeforge.bootstrap.tomlw import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_APPEND = (("spec", "kubelet", "flags"),)
_TOML = (("spec", "containerd", "config"),)


def copy_data(value: Any) -> Any:
    """A deep copy of parsed YAML, JSON or TOML data: mappings, lists, sets and tuples copied all the way down, the
    rest (strings, numbers, dates ...: immutable) shared. What copy.deepcopy gives for such data, without its
    import and its per-object dispatch."""
    if isinstance(value, dict):
        return {key: copy_data(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_data(item) for item in value]
    if isinstance(value, (set, frozenset, tuple)):
        return type(value)(copy_data(item) for item in value)
    return value


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new mapping: ``override`` over ``base``, mappings merged recursively, everything else replaced."""
    merged = copy_data(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy_data(value)
    return merged


def merge_toml(base: str, override: str) -> str:
    """Two containerd TOML documents merged (override wins); either may be empty."""
    if not base.strip():
        return override
    if not override.strip():
        return base
    return dumps(deep_merge(tomlr.loads(base), tomlr.loads(override)))


# NodeConfig's structs (nodeadm api/v1alpha1): merged field by field with mergo's WithOverride, so a later
# document's empty value (null, "", false, 0, [], {}) never replaces an earlier one.
_STRUCTS = frozenset(
    {
        (),
        ("metadata",),
        ("spec",),
        ("spec", "cluster"),
        ("spec", "containerd"),
        ("spec", "instance"),
        ("spec", "instance", "localStorage"),
        ("spec", "instance", "network"),
        ("spec", "kubelet"),
    }
)
# Maps (featureGates, instance.environment) and inline documents (kubelet.config, containerd.baseRuntimeSpec):
# merged key by key, a later value wins even when false or 0 -- but a later null or empty string, list or mapping
# does not erase an earlier value (nodeadm's mergo would write the null or the empty value over it, which for
# kubelet.config takes the setting back to the kubelet's default: configuration lost without a word).
_MAPS = frozenset(
    {
        ("spec", "featureGates"),
        ("spec", "instance", "environment"),
        ("spec", "kubelet", "config"),
        ("spec", "containerd", "baseRuntimeSpec"),
    }
)


def _empty(value: object, *, in_struct: bool) -> bool:
    if value is None or (isinstance(value, (str, list, dict)) and not value):
        return True
    return in_struct and (
        value is False or (isinstance(value, (int, float)) and not isinstance(value, bool) and not value)
    )


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)


def _merge_at(
    base: dict[str, Any], override: dict[str, Any], path: tuple[str, ...], where: str, warn: Callable[[str], None]
) -> dict[str, Any]:
    merged = dict(base)
    in_struct = path in _STRUCTS or not any(path[: len(prefix)] == prefix for prefix in _MAPS)
    for key, value in override.items():
        here = (*path, key)
        current = merged.get(key)
        if _empty(value, in_struct=in_struct):
            if key in merged and not _empty(current, in_struct=in_struct) and value != current:
                shown = "null" if value is None else json.dumps(value)
                warn(
                    f"{where}: {_dotted(here)} is {shown}, which does not replace the value an earlier document "
                    "set (NodeConfig documents merge as nodeadm merges them); the earlier value is kept"
                )
            elif key not in merged:
                merged[key] = copy_data(value)
            continue
        if here in _APPEND and isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        elif here in _TOML and isinstance(current, str) and isinstance(value, str):
            merged[key] = merge_toml(current, value)
        elif isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _merge_at(current, value, here, where, warn)
        else:
            merged[key] = copy_data(value)
    return merged


def merge_node_configs(
    documents: list[dict[str, Any]], names: list[str] | None = None, warn: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Merge raw NodeConfig documents in order (they must already be valid TOML where TOML is expected).

    ``names`` say where each document came from (``user-data part 2 ...``) in the warnings ``warn`` receives for
    the empty values that left an earlier value in place.
    """
    merged: dict[str, Any] = {}
    for index, document in enumerate(documents):
        where = names[index] if names else f"document {index + 1}"
        merged = _merge_at(merged, document, (), where, warn or (lambda _message: None))
    return merged
