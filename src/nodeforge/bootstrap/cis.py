"""CIS Amazon EKS worker-node checks on the effective kubelet configuration (config file, drop-in and flags).

The rules are data (data/cis_kubelet.json, kube-bench cfg/eks-1.8.0 semantics plus this project's own, each with its
reason); this module is their one evaluator. The agent runs it at boot, the kubelet role's assert calls it through
its ``kubelet_cis_violations`` filter, and tests/infra runs it on the image: one rule set, one reading of it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from nodeforge.bootstrap import kubeletflags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RULES_FILE = Path(__file__).resolve().parent / "data" / "cis_kubelet.json"
_rules: dict[str, Any] | None = None


def rule_set() -> dict[str, Any]:
    """The parsed rules file (read once)."""
    global _rules
    if _rules is None:
        with RULES_FILE.open(encoding="utf-8") as handle:
            _rules = json.load(handle)
    return _rules


def rules() -> list[dict[str, Any]]:
    return list(rule_set()["rules"])


def _flag_value(rule: dict[str, Any], text: str) -> object:
    """A flag's text as the type the rule compares (flags are strings; the config file has JSON types)."""
    expected = rule.get("value")
    if isinstance(expected, bool):
        if text in kubeletflags.TRUE:
            return True
        return False if text in kubeletflags.FALSE else text
    if _is_int(expected) or rule["check"] == "integer-at-least":
        try:
            return int(text)
        except ValueError:
            return text
    return text


def apply_flags(config: dict[str, Any], flags: list[str]) -> dict[str, Any]:
    """The config as the kubelet sees it once command-line flags (which win) are applied, for the rules' settings.

    Flags are read as the kubelet reads them (kubeletflags): ``--flag value`` or ``--flag=value``, the last scalar
    occurrence wins, every ``--feature-gates`` occurrence adds its gates. Settings no rule reads are left alone;
    flag-only settings (no config field) go under ``"--flags"``.
    """
    effective = json.loads(json.dumps(config))  # a deep copy, with JSON types only
    values = kubeletflags.effective(kubeletflags.parse(flags, "flags", lambda _message: None))
    gates = values.get("feature-gates")
    if gates is not None:
        merged = dict(effective.get("featureGates") or {})
        for name, enabled in kubeletflags.pairs(gates, "="):
            merged[name] = enabled is not None and kubeletflags.is_true(enabled)
        effective["featureGates"] = merged
    flag_only: dict[str, str] = {}
    for rule in rules():
        flag = rule.get("flag")
        if not flag or flag not in values or flag == "feature-gates":
            continue
        if rule["path"] is None:
            flag_only[flag] = values[flag]
            continue
        node = effective
        for key in rule["path"][:-1]:
            node[key] = dict(node.get(key) or {})
            node = node[key]
        node[rule["path"][-1]] = _flag_value(rule, values[flag])
    if flag_only:
        effective["--flags"] = flag_only
    return effective


_MISSING = object()


def _lookup(config: dict[str, Any], rule: dict[str, Any]) -> object:
    if rule["path"] is None:
        return (config.get("--flags") or {}).get(rule["flag"], _MISSING)
    node: object = config
    for key in rule["path"]:
        if not isinstance(node, dict) or key not in node:
            return _MISSING
        node = node[key]
    return node


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_rule(rule: dict[str, Any], config: dict[str, Any]) -> str | None:
    """None when ``config`` (an effective kubelet configuration) passes ``rule``, else the violation."""
    value = _lookup(config, rule)
    name = ".".join(rule["path"]) if rule["path"] else f"--{rule['flag']}"
    label = f"CIS {rule['id']}" if rule["id"][0].isdigit() else rule["id"]
    check, expected = rule["check"], rule.get("value")
    if value is _MISSING or value is None:
        if not rule.get("required"):
            return None
        wanted = {"equals": f"set to {json.dumps(expected)}", "not-equals": f"set, not to {expected}"}
        return f"{name} must be {wanted.get(check, 'set')} explicitly ({label})"
    if check == "equals":
        if isinstance(expected, bool):
            same = value is expected
        elif _is_int(expected):
            same = _is_int(value) and value == expected
        else:
            same = value == expected
        return None if same else f"{name} must be {json.dumps(expected)}, not {json.dumps(value)} ({label})"
    if check == "not-equals":
        return None if value != expected else f"{name} must not be {expected} ({label})"
    if check == "non-empty":
        return None if value not in ("", [], {}) else f"{name} must be set ({label})"
    if check == "duration-not-zero":
        zero = value == 0 or (isinstance(value, str) and re.match(rule_set()["zero_duration"], value.strip()))
        return f"{name} must not be 0 ({label})" if zero else None
    if check == "integer-at-least":
        good = _is_int(value) and value >= expected  # type: ignore[operator]
        return None if good else f"{name} must be an integer >= {expected}, not {json.dumps(value)} ({label})"
    if check == "matches":
        good = isinstance(value, str) and re.match(expected, value) is not None
        return None if good else f"{name} must match {expected}, not {json.dumps(value)} ({label})"
    raise ValueError(f"{RULES_FILE}: rule {rule['id']}: unknown check {check!r}")


def violations(config: dict[str, Any], flags: list[str] | None = None) -> list[str]:
    """Every rule the kubelet configuration breaks (``flags`` applied over it first, when given)."""
    effective = apply_flags(config, flags) if flags else config
    found = []
    for rule in rules():
        problem = check_rule(rule, effective)
        if problem is not None:
            found.append(problem)
    return found
