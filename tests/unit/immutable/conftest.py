"""Fixtures of the immutable-image tests: tiny rootfs tars sealed once per session (no QEMU)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from immutable_helpers import tiny_rootfs

from nodeforge.immutable.seal import SealedRoot, seal_rootfs


@pytest.fixture(scope="session")
def sealed_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[SealedRoot, SealedRoot]:
    """Two sealed tiny roots (v1, v2) with different content."""
    base = tmp_path_factory.mktemp("sealed")
    out = []
    for version in ("v1", "v2"):
        tar = tiny_rootfs(base / f"rootfs-{version}.tar", marker=version)
        out.append(seal_rootfs(tar, base / version, version=version))
    return out[0], out[1]


@pytest.fixture
def sealed_copy(sealed_pair: tuple[SealedRoot, SealedRoot], tmp_path: Path):
    """Return a function copying a sealed root into tmp_path (for tests that damage it)."""

    def copy(which: int = 1) -> Path:
        src = sealed_pair[which - 1].directory
        dest = tmp_path / f"copy-{src.name}"
        shutil.copytree(src, dest)
        return dest

    return copy
