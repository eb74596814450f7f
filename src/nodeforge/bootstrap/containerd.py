"""The containerd drop-in (/etc/containerd/config.d/00-nodeforge.toml): the user's TOML and the pause image."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from nodeforge.bootstrap.merge import merge_toml
from nodeforge.bootstrap.tomlw import dumps

DROPIN_PATH = "/etc/containerd/config.d/00-nodeforge.toml"
BASE_CONFIG_PATH = "/etc/containerd/config.toml"
DEFAULT_PAUSE_ACCOUNT = "602401143452"
DEFAULT_PAUSE_VERSION = "3.10"
HEADER = "# Written by the nodeforge bootstrap agent; re-run the agent to change it.\n"


def base_config_version(root: Path) -> int:
    """``version`` of the image's containerd config.toml (3 for containerd 2.x), 2 when absent or unreadable."""
    try:
        document = tomllib.loads((root / BASE_CONFIG_PATH.lstrip("/")).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return 2
    version = document.get("version", 2)
    return version if isinstance(version, int) else 2


def pause_image(account: str, version: str, region: str, domain: str) -> str:
    return f"{account or DEFAULT_PAUSE_ACCOUNT}.dkr.ecr.{region}.{domain}/eks/pause:{version or DEFAULT_PAUSE_VERSION}"


def sandbox_section(image: str, config_version: int) -> dict[str, Any]:
    if config_version >= 3:
        return {"version": 3, "plugins": {"io.containerd.cri.v1.images": {"pinned_images": {"sandbox": image}}}}
    return {"version": 2, "plugins": {"io.containerd.grpc.v1.cri": {"sandbox_image": image}}}


def render_dropin(user_config: str, sandbox: dict[str, Any] | None) -> str | None:
    """Drop-in text, or None when there is nothing to add to the image's config."""
    text = user_config
    if sandbox is not None:
        text = merge_toml(dumps(sandbox), user_config)
    if not text.strip():
        return None
    return HEADER + text if text.endswith("\n") else HEADER + text + "\n"
