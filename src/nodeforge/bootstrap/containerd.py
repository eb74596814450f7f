"""containerd files: the drop-in (/etc/containerd/config.d/00-nodeforge.toml) with the user's TOML, the pause
image and the registry settings, and one hosts.toml per mirrored registry under /etc/containerd/certs.d.

The CRI plugin's name follows the image's config.toml: ``io.containerd.grpc.v1.cri`` in a version 2 config
(containerd 1.x), ``io.containerd.cri.v1.images`` for image settings in a version 3 config (containerd 2.x).
"""

from __future__ import annotations

import json
from pathlib import Path

from nodeforge.bootstrap import tomlr
from nodeforge.bootstrap.merge import deep_merge, merge_toml
from nodeforge.bootstrap.model import RegistryCredential, RegistryMirror
from nodeforge.bootstrap.tomlw import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DROPIN_PATH = "/etc/containerd/config.d/00-nodeforge.toml"
BASE_CONFIG_PATH = "/etc/containerd/config.toml"
# The image's config.toml as read at bake time (bootstrap_agent role), used while config.toml holds the same text:
# the agent then needs no TOML parser unless the user data brings TOML (tomllib's import costs more than a run's
# own work). A changed or missing config.toml is parsed as ever.
BASE_CACHE_PATH = "/etc/nodeforge/containerd-config.json"
CERTS_DIR = "/etc/containerd/certs.d"
DEFAULT_PAUSE_ACCOUNT = "602401143452"
DEFAULT_PAUSE_VERSION = "3.10"
HEADER = "# Written by the nodeforge bootstrap agent; re-run the agent to change it.\n"
HOSTS_HEADER = (
    "# Written by the nodeforge bootstrap agent from settings.container-registry; re-run the agent to change it.\n"
)
DOCKER_HUB = "docker.io"
DOCKER_HUB_SERVER = "https://registry-1.docker.io"
MIRROR_CAPABILITIES = ["pull", "resolve"]
CRI_V2 = "io.containerd.grpc.v1.cri"
CRI_V3_IMAGES = "io.containerd.cri.v1.images"


def base_config(root: Path) -> dict[str, Any]:
    """The image's containerd config.toml, or {} when absent or unreadable."""
    try:
        text = (root / BASE_CONFIG_PATH.lstrip("/")).read_text(encoding="utf-8")
    except OSError:
        return {}
    cached = _cached_base_config(root, text)
    if cached is not None:
        return cached
    try:
        return tomlr.loads(text)
    except tomlr.TOMLDecodeError:
        return {}


def _cached_base_config(root: Path, text: str) -> dict[str, Any] | None:
    """The bake-time reading of config.toml when it was made from exactly ``text``; None otherwise."""
    try:
        cache = json.loads((root / BASE_CACHE_PATH.lstrip("/")).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(cache, dict) or cache.get("source") != text or not isinstance(cache.get("config"), dict):
        return None
    return cache["config"]


def cache_base_config(root: Path) -> str:
    """Write (or refresh, or remove) BASE_CACHE_PATH for the image's config.toml under ``root``; the bootstrap_agent
    role runs this at bake time. Returns what was done: created, updated, unchanged or removed (no config.toml, or
    one JSON cannot hold, e.g. with TOML dates), or absent."""
    cache = root / BASE_CACHE_PATH.lstrip("/")
    try:
        text = (root / BASE_CONFIG_PATH.lstrip("/")).read_text(encoding="utf-8")
        content = json.dumps({"source": text, "config": tomlr.loads(text)}, indent=1, sort_keys=True) + "\n"
    except (OSError, ValueError, TypeError):  # absent, unreadable, not TOML, or values JSON has no type for
        try:
            cache.unlink()
        except FileNotFoundError:
            return "absent"
        return "removed"
    try:
        before = cache.read_text(encoding="utf-8")
    except FileNotFoundError:
        before = None
    if before == content:
        return "unchanged"
    cache.parent.mkdir(parents=True, exist_ok=True)
    temporary = cache.with_name(cache.name + ".tmp")
    temporary.write_text(content, encoding="utf-8")
    temporary.chmod(0o644)
    temporary.replace(cache)
    return "created" if before is None else "updated"


def config_version(config: dict[str, Any]) -> int:
    """``version`` of a containerd config (3 for containerd 2.x), 2 when it has none."""
    version = config.get("version", 2)
    return version if isinstance(version, int) and not isinstance(version, bool) else 2


def base_config_version(root: Path) -> int:
    """``version`` of the image's containerd config.toml (3 for containerd 2.x), 2 when absent or unreadable."""
    return config_version(base_config(root))


def pause_image(account: str, version: str, region: str, domain: str) -> str:
    return f"{account or DEFAULT_PAUSE_ACCOUNT}.dkr.ecr.{region}.{domain}/eks/pause:{version or DEFAULT_PAUSE_VERSION}"


def sandbox_section(image: str, config_version: int) -> dict[str, Any]:
    if config_version >= 3:
        return {"version": 3, "plugins": {CRI_V3_IMAGES: {"pinned_images": {"sandbox": image}}}}
    return {"version": 2, "plugins": {CRI_V2: {"sandbox_image": image}}}


def registry_plugin(config_version: int) -> str:
    """The plugin holding the CRI ``registry`` table in a config of this version."""
    return CRI_V3_IMAGES if config_version >= 3 else CRI_V2


def base_registry(base: dict[str, Any], config_version: int) -> dict[str, Any]:
    """The CRI ``registry`` table of the image's config ({} when it has none)."""
    plugin = (base.get("plugins") or {}).get(registry_plugin(config_version)) or {}
    registry = plugin.get("registry") if isinstance(plugin, dict) else None
    return registry if isinstance(registry, dict) else {}


def config_path(base_registry_table: dict[str, Any]) -> str | None:
    """The ``config_path`` the drop-in must set so containerd reads certs.d; None when the image's already does."""
    current = base_registry_table.get("config_path")
    current = current if isinstance(current, str) else ""
    if CERTS_DIR in current.split(":"):
        return None
    return f"{CERTS_DIR}:{current}" if current else CERTS_DIR


def credential_host(registry: str) -> str:
    """The host containerd looks credentials up by (Docker Hub is served from registry-1.docker.io)."""
    return DOCKER_HUB_SERVER[len("https://") :] if registry == DOCKER_HUB else registry


def registry_section(
    config_version: int, path: str | None, credentials: list[RegistryCredential]
) -> dict[str, Any] | None:
    """Drop-in TOML for the CRI registry: ``config_path`` (when needed) and credentials; None when nothing."""
    registry: dict[str, Any] = {}
    if path:
        registry["config_path"] = path
    if credentials:
        configs: dict[str, Any] = {}
        for credential in credentials:
            auth = {
                "username": credential.username,
                "password": credential.password,
                "auth": credential.auth,
                "identitytoken": credential.identity_token,
            }
            configs[credential_host(credential.registry)] = {"auth": {k: v for k, v in auth.items() if v}}
        registry["configs"] = configs
    if not registry:
        return None
    return {
        "version": 3 if config_version >= 3 else 2,
        "plugins": {registry_plugin(config_version): {"registry": registry}},
    }


def hosts_path(registry: str) -> str:
    """``/etc/containerd/certs.d/<registry>/hosts.toml`` (``_default`` for ``*``, every registry)."""
    return f"{CERTS_DIR}/{'_default' if registry == '*' else registry}/hosts.toml"


def render_hosts(mirror: RegistryMirror) -> str:
    """hosts.toml for one registry: its mirrors first, in order, then the registry itself (``server``)."""
    document: dict[str, Any] = {}
    if mirror.registry != "*":
        document["server"] = DOCKER_HUB_SERVER if mirror.registry == DOCKER_HUB else f"https://{mirror.registry}"
    document["host"] = {endpoint: {"capabilities": list(MIRROR_CAPABILITIES)} for endpoint in mirror.endpoints}
    return HOSTS_HEADER + dumps(document)


def written_hosts_files(root: Path) -> list[str]:
    """The hosts.toml files under certs.d the agent wrote (they start with its header), as node paths."""
    directory = root / CERTS_DIR.lstrip("/")
    found = []
    for path in sorted(directory.glob("*/hosts.toml")):
        try:
            with path.open("rb") as handle:
                ours = handle.read(len(HOSTS_HEADER)) == HOSTS_HEADER.encode()
        except OSError:
            continue
        if ours:
            found.append("/" + str(path.relative_to(root)))
    return found


def complete_plugin_sections(text: str, base: dict[str, Any], document: dict[str, Any] | None = None) -> str:
    """The drop-in with every plugin section it touches completed from the image's config.toml (``document``: the
    drop-in already parsed, or None to parse ``text``).

    containerd 1.x merges an imported file by replacing each plugin's whole section (``to.Plugins[k] = v``), so a
    drop-in that only sets ``sandbox_image`` would drop the image's runtimes, SystemdCgroup and CNI settings.
    Writing the full section (the image's, with the drop-in's keys over it) is right for 1.x and for 2.x (which
    merges sections key by key).
    """
    if document is None:
        document = tomlr.loads(text)
    plugins = document.get("plugins")
    base_plugins = base.get("plugins")
    if not isinstance(plugins, dict) or not isinstance(base_plugins, dict):
        return text
    completed = False
    for name, section in plugins.items():
        base_section = base_plugins.get(name)
        if isinstance(section, dict) and isinstance(base_section, dict):
            plugins[name] = deep_merge(base_section, section)
            completed = True
    return dumps(document) if completed else text


def render_dropin(user_config: str, *sections: dict[str, Any] | None, base: dict[str, Any] | None = None) -> str | None:
    """Drop-in text (the user's TOML over the agent's sections, plugin sections completed from BASE), or None."""
    text = user_config
    merged: dict[str, Any] = {}
    for section in sections:
        if section is not None:
            merged = deep_merge(merged, section)
    document = None  # the drop-in parsed, when known without parsing (the agent's own sections alone)
    if merged:
        text = merge_toml(dumps(merged), user_config)
        if not user_config.strip():
            document = merged
    if not text.strip():
        return None
    if base:
        text = complete_plugin_sections(text, base, document)
    return HEADER + text if text.endswith("\n") else HEADER + text + "\n"
