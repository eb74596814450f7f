"""Shared constants and helpers of the bootstrap agent's tests (imported by name: conftest is not importable
reliably when several test folders have one)."""

from __future__ import annotations

from pathlib import Path

INPUTS = Path(__file__).parent / "inputs"
GOLDEN = Path(__file__).parent / "golden"


def snapshot(root: Path) -> str:
    """Every file under ``root`` with its mode, as one text for golden comparisons."""
    chunks = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            mode = oct(path.stat().st_mode & 0o777)
            chunks.append(f"=== /{path.relative_to(root)} {mode}\n{path.read_text(encoding='utf-8')}")
    return "".join(chunks)
