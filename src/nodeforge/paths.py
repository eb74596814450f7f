"""Where nodeforge keeps its files: the repository (playbooks, roles, tests) and its cache."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The checkout holding playbooks/ and roles/ (NODEFORGE_REPO overrides)."""
    env = os.environ.get("NODEFORGE_REPO")
    if env:
        return Path(env).resolve()
    for candidate in (Path.cwd(), *Path.cwd().parents, PACKAGE_DIR.parents[1]):
        if (candidate / "playbooks" / "node.yml").is_file() and (candidate / "roles").is_dir():
            return candidate
    raise FileNotFoundError("cannot find the nodeforge checkout (playbooks/node.yml); set NODEFORGE_REPO")


def cache_dir() -> Path:
    """Cache for base images, fixtures and build outputs (NODEFORGE_CACHE overrides)."""
    env = os.environ.get("NODEFORGE_CACHE")
    path = Path(env) if env else repo_root() / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
