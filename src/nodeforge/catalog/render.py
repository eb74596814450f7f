"""How catalog answers look: rich tables for people, JSON documents for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from nodeforge.catalog.model import Event, Image, iso_from_epoch

_STATE_STYLE = {"available": "", "retired": "dim strike", "missing": "red"}
_STATUS_STYLE = {"active": "green", "deprecated": "yellow", "retired": "dim"}


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def images_table(images: Sequence[Image], title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False)
    for column in ("id", "name", "k8s", "os", "arch", "channel", "status", "regions", "built"):
        table.add_column(column, overflow="fold")
    for image in images:
        regions = Text()
        for index, artifact in enumerate(image.artifacts):
            if index:
                regions.append("\n")
            regions.append(f"{artifact.region} {artifact.artifact_id}", style=_STATE_STYLE.get(artifact.state, ""))
            if artifact.state != "available":
                regions.append(f" ({artifact.state})", style="dim")
        table.add_row(
            Text(image.id),
            Text(image.name),
            Text(image.kubernetes_version),
            Text(image.os + (f" {image.os_version}" if image.os_version else "")),
            Text(image.arch),
            Text(image.channel),
            Text(image.status, style=_STATUS_STYLE.get(image.status, "")),
            regions,
            Text(iso_from_epoch(image.build_time)),
        )
    return table


def image_tables(image: Image) -> list[Table]:
    summary = Table(title=f"{image.id}  {image.name}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value", overflow="fold")
    rows = {
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
    for key, value in rows.items():
        summary.add_row(Text(key), Text(value))
    components = key_value_table("component manifest", image.components())
    regions = Table(title="regions")
    for column in ("region", "image id", "account", "state"):
        regions.add_column(column)
    for artifact in image.artifacts:
        regions.add_row(
            Text(artifact.region),
            Text(artifact.artifact_id),
            Text(artifact.account_id or ""),
            Text(artifact.state, style=_STATE_STYLE.get(artifact.state, "")),
        )
    return [summary, components, regions]


def key_value_table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title)
    table.add_column("key", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in values.items():
        table.add_row(Text(str(key)), Text("" if value is None else str(value)))
    return table


def diff_table(a: Image, b: Image, rows: Iterable[tuple[str, str | None, str | None]]) -> Table:
    table = Table(title=f"{a.id} → {b.id}")
    table.add_column("component", style="bold")
    table.add_column(a.id, overflow="fold")
    table.add_column(b.id, overflow="fold")
    for key, left, right in rows:
        style = "" if left == right else "yellow"
        table.add_row(Text(key), Text(left or "—", style=style), Text(right or "—", style=style))
    return table


def events_table(events: Sequence[Event]) -> Table:
    table = Table(title="history")
    for column in ("#", "at", "image", "region", "action", "detail", "actor"):
        table.add_column(column, overflow="fold")
    for event in events:
        detail = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v not in (None, "", [], {}))
        table.add_row(
            Text(str(event.seq)),
            Text(event.at),
            Text(event.image_id or ""),
            Text(event.region or ""),
            Text(event.action),
            Text(detail),
            Text(event.actor),
        )
    return table


def rows_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return table
