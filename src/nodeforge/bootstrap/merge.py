"""Merging NodeConfig documents the way nodeadm does: later documents win per field, kubelet flags append,
inline documents (kubelet config, base runtime spec) and containerd TOML merge key by key."""

from __future__ import annotations

import copy

from nodeforge.bootstrap import tomlr
from nodeforge.bootstrap.tomlw import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_APPEND = (("spec", "kubelet", "flags"),)
_TOML = (("spec", "containerd", "config"),)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new mapping: ``override`` over ``base``, mappings merged recursively, everything else replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_toml(base: str, override: str) -> str:
    """Two containerd TOML documents merged (override wins); either may be empty."""
    if not base.strip():
        return override
    if not override.strip():
        return base
    return dumps(deep_merge(tomlr.loads(base), tomlr.loads(override)))


def _merge_at(base: dict[str, Any], override: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        here = (*path, key)
        current = merged.get(key)
        if here in _APPEND and isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        elif here in _TOML and isinstance(current, str) and isinstance(value, str):
            merged[key] = merge_toml(current, value)
        elif isinstance(value, dict) and isinstance(current, dict):
            merged[key] = _merge_at(current, value, here)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_node_configs(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge raw NodeConfig documents in order (they must already be valid TOML where TOML is expected)."""
    merged: dict[str, Any] = {}
    for document in documents:
        merged = _merge_at(merged, document, ())
    return merged
