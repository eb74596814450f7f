"""A small TOML writer (the standard library only reads TOML) for containerd configuration drop-ins."""

from __future__ import annotations

import json
import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if type(value).__module__ == "datetime":  # date, time, datetime (from TOML); no import of datetime for it
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _table(lines: list[str], table: dict[str, Any], path: list[str]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)]
    for key, value in scalars:
        lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            here = [*path, _key(key)]
            if any(not isinstance(v, dict) and not _is_table_array(v) for v in value.values()) or not value:
                lines.extend(["", f"[{'.'.join(here)}]"])
            _table(lines, value, here)
        elif _is_table_array(value):
            here = [*path, _key(key)]
            for item in value:
                lines.extend(["", f"[[{'.'.join(here)}]]"])
                _table(lines, item, here)


def dumps(document: dict[str, Any]) -> str:
    """TOML text for ``document``; tables are written with their full dotted names."""
    lines: list[str] = []
    _table(lines, document, [])
    return "\n".join(lines).lstrip("\n") + "\n"
