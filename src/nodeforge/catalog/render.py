"""How catalog answers look: plain-text tables for people, JSON (and YAML) documents for scripts.

No rich, no PyYAML: read commands import this and must start fast (docs/catalog.md, "Start-up").
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping

from nodeforge.catalog.model import Event, Image, iso_from_epoch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import Any


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain table: title, header, rule, rows; a cell may hold several lines."""
    cells = [[("" if cell is None else str(cell)).split("\n") for cell in row] for row in rows]
    widths = [len(column) for column in columns]
    for row in cells:
        for index, lines in enumerate(row):
            widths[index] = max(widths[index], *(len(line) for line in lines))
    out = [title] if title else []
    out.append("  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip())
    out.append("  ".join("-" * width for width in widths))
    for row in cells:
        height = max((len(lines) for lines in row), default=1)
        for line in range(height):
            parts = [(lines[line] if line < len(lines) else "").ljust(w) for lines, w in zip(row, widths, strict=True)]
            out.append("  ".join(parts).rstrip())
    return "\n".join(out) + "\n"


def images_table(images: Sequence[Image], title: str | None = None) -> str:
    rows = []
    for image in images:
        regions = "\n".join(
            f"{a.region} {a.artifact_id}" + ("" if a.state == "available" else f" ({a.state})") for a in image.artifacts
        )
        rows.append(
            (
                image.id,
                image.name,
                image.kubernetes_version,
                image.os + (f" {image.os_version}" if image.os_version else ""),
                image.arch,
                image.channel,
                image.status,
                regions,
                iso_from_epoch(image.build_time),
            )
        )
    return table(title, ("id", "name", "k8s", "os", "arch", "channel", "status", "regions", "built"), rows)


def image_tables(image: Image) -> str:
    summary = {
        "channel": image.channel,
        "status": image.status + (f" (deprecate at {image.deprecate_at})" if image.deprecate_at else ""),
        "built": iso_from_epoch(image.build_time),
        "digest": image.digest,
        "builder": image.builder_type,
        "build key": image.build_key,
        "build id": image.build_id or "",
        "origin": image.origin,
        "recorded": image.created_at or "",
        "updated": image.updated_at or "",
    }
    regions = table(
        "regions",
        ("region", "image id", "account", "state"),
        [(a.region, a.artifact_id, a.account_id or "", a.state) for a in image.artifacts],
    )
    return "\n".join(
        (
            table(f"{image.id}  {image.name}", ("field", "value"), summary.items()),
            key_value_table("component manifest", image.components()),
            regions,
        )
    )


def key_value_table(title: str, values: Mapping[str, Any]) -> str:
    return table(title, ("key", "value"), [(key, "" if value is None else value) for key, value in values.items()])


def diff_table(a: Image, b: Image, rows: Iterable[tuple[str, str | None, str | None]]) -> str:
    marked = [(("* " if left != right else "  ") + key, left or "—", right or "—") for key, left, right in rows]
    return table(f"{a.id} → {b.id}  (* differs)", ("component", a.id, b.id), marked)


def events_table(events: Sequence[Event]) -> str:
    rows = []
    for event in events:
        detail = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v not in (None, "", [], {}))
        rows.append((event.seq, event.at, event.image_id or "", event.region or "", event.action, detail, event.actor))
    return table("history", ("#", "at", "image", "region", "action", "detail", "actor"), rows)


def rows_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    return table(title, columns, rows)


# -- YAML (block style, the subset export documents use) --------------------------------------------------------

_PLAIN_RE = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./@ -]*$")
_YAML_WORDS = frozenset(
    {"y", "yes", "n", "no", "true", "false", "on", "off", "null", "~", "none", "nan", "inf", "-inf", ".inf", ".nan"}
)


def to_yaml(value: Any) -> str:
    """Block-style YAML for dicts, lists, strings, numbers and booleans (what ``yaml.safe_load`` reads back)."""
    return "\n".join(_yaml_lines(value, 0)) + "\n"


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    text = str(value)
    looks_like_number = re.fullmatch(r"[-+]?(\d[\d_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?", text) is not None
    if (
        _PLAIN_RE.match(text)
        and text.lower() not in _YAML_WORDS
        and not looks_like_number
        and not text.endswith(" ")
        and ": " not in text
        and " #" not in text
    ):
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        if not value:
            return [pad + "{}"]
        lines = []
        for key, item in value.items():
            lines.extend(_entry(pad + _scalar(key) + ":", item, indent))
        return lines
    if isinstance(value, list | tuple):
        if not value:
            return [pad + "[]"]
        lines = []
        for item in value:
            if isinstance(item, Mapping) and item:
                nested = _yaml_lines(item, indent + 2)
                lines.append(pad + "- " + nested[0][indent + 2 :])
                lines.extend(nested[1:])
            else:
                lines.extend(_entry(pad + "-", item, indent))
        return lines
    return [pad + _scalar(value)]


def _entry(head: str, item: Any, indent: int) -> list[str]:
    if isinstance(item, str) and "\n" in item:
        body = item if item.endswith("\n") else item + "\n"
        marker = "|" if item.endswith("\n") else "|-"
        return [f"{head} {marker}", *(" " * (indent + 2) + line if line else "" for line in body[:-1].split("\n"))]
    if isinstance(item, Mapping | list | tuple) and item:
        return [head, *_yaml_lines(item, indent + 2)]
    if isinstance(item, Mapping | list | tuple):  # empty
        return [f"{head} {'{}' if isinstance(item, Mapping) else '[]'}"]
    return [f"{head} {_scalar(item)}"]
