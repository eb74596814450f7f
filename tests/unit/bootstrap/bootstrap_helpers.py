"""Shared constants and helpers of the bootstrap agent's tests (imported by name: conftest is not importable
reliably when several test folders have one)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

INPUTS = Path(__file__).parent / "inputs"
GOLDEN = Path(__file__).parent / "golden"
# The agent's tests also run under the old CPythons a node may have (tests/unit/test_agent_pythons.py); tests of
# the tooling side (the 3.11 venv, the generators in scripts/) are skipped there.
TOOLING_ONLY = pytest.mark.skipif(sys.version_info < (3, 11), reason="tooling side: runs under Python 3.11 only")


def snapshot(root: Path) -> str:
    """Every file under ``root`` with its mode, as one text for golden comparisons."""
    chunks = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            mode = oct(path.stat().st_mode & 0o777)
            chunks.append(f"=== /{path.relative_to(root)} {mode}\n{path.read_text(encoding='utf-8')}")
    return "".join(chunks)
