"""The Kubernetes release catalog, read from the kubelet role's defaults (one place defines it)."""

from __future__ import annotations

from pathlib import Path

import yaml

from nodeforge.bake.fixtures import Release
from nodeforge.paths import repo_root


def kubelet_releases(root: Path | None = None) -> dict[str, Release]:
    """Minor version -> Release for every entry of kubelet_releases (amd64)."""
    defaults = (root or repo_root()) / "roles" / "kubelet" / "defaults" / "main.yml"
    data = yaml.safe_load(defaults.read_text())
    releases = data.get("kubelet_releases")
    if not isinstance(releases, dict) or not releases:
        raise ValueError(f"{defaults}: kubelet_releases is missing or empty")
    return {
        str(minor): Release(version=str(entry["version"]), build_date=str(entry["build_date"]))
        for minor, entry in releases.items()
    }
