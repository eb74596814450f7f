"""What nodeadm's containerd template sets that the image's config.toml does not, and the user's containerd TOML
made to fit the node's containerd:

- the CRI runtime: ``runc`` (its path, ``/usr/sbin/runc`` on EKS AMIs), or ``nvidia`` when
  ``/usr/bin/nvidia-container-runtime`` is installed, as the default runtime, with the base runtime spec and
  ``SystemdCgroup``; ``enable_cdi`` from kubelet 1.32 on;
- a version 2 user config on containerd 2.x (the image's config.toml is version 3) is converted to version 3 as
  ``containerd config migrate`` converts it (the CRI plugin split into ``io.containerd.cri.v1.images``,
  ``io.containerd.cri.v1.runtime`` and the streaming keys left in ``io.containerd.grpc.v1.cri``);
- a version 3 user config on containerd 1.x is refused, as nodeadm refuses it.

nodeadm tells the two schemas apart by the plugin names only version 3 has; so does this module.
"""

from __future__ import annotations

from pathlib import Path

from nodeforge.bootstrap import runtimespec
from nodeforge.bootstrap.errors import InvalidInputError
from nodeforge.bootstrap.merge import copy_data
from nodeforge.bootstrap.tomlw import dumps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

CRI_V2 = "io.containerd.grpc.v1.cri"
CRI_V3_IMAGES = "io.containerd.cri.v1.images"
CRI_V3_RUNTIME = "io.containerd.cri.v1.runtime"
RUNC_TYPE = "io.containerd.runc.v2"
NVIDIA_RUNTIME = "/usr/bin/nvidia-container-runtime"
RUNC_BINARIES = ("/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc")
CDI_SINCE = (1, 32)
_STREAMING_KEYS = (
    "disable_tcp_service",
    "stream_server_address",
    "stream_server_port",
    "stream_idle_timeout",
    "enable_tls_streaming",
    "x509_key_pair_streaming",
)
_IMAGE_KEYS = (
    "registry",
    "image_decryption",
    "max_concurrent_downloads",
    "image_pull_progress_timeout",
    "image_pull_with_sync_fs",
    "stats_collect_period",
)
_IMAGE_CONTAINERD_KEYS = ("snapshotter", "disable_snapshot_annotations", "discard_unpacked_layers")


def is_version3(text: str) -> bool:
    """nodeadm's test: a config naming a plugin only version 3 has is a version 3 config."""
    return CRI_V3_IMAGES in text or CRI_V3_RUNTIME in text


def runtime(root: Path) -> tuple[str, str]:
    """(runtime name, binary): nvidia when its runtime is installed, else runc where it is installed ("" when
    it is in none of the usual places: containerd then looks runc up in its PATH)."""
    if (root / NVIDIA_RUNTIME.lstrip("/")).exists():
        return "nvidia", NVIDIA_RUNTIME
    for binary in RUNC_BINARIES:
        if (root / binary.lstrip("/")).exists():
            return "runc", binary
    return "runc", ""


def nodeadm_section(config_version: int, root: Path, kubelet_version: tuple[int, int] | None) -> dict[str, Any]:
    """The runtime settings nodeadm's template writes, in the schema of the image's containerd."""
    name, binary = runtime(root)
    options: dict[str, Any] = {"BinaryName": binary} if binary else {}
    options["SystemdCgroup"] = True
    cri = {
        "enable_cdi": kubelet_version is None or kubelet_version >= CDI_SINCE,
        "containerd": {
            "default_runtime_name": name,
            "runtimes": {
                name: {
                    "runtime_type": RUNC_TYPE,
                    "base_runtime_spec": runtimespec.PATH,
                    "options": options,
                }
            },
        },
    }
    if config_version >= 3:
        return {"version": 3, "plugins": {CRI_V3_RUNTIME: cri}}
    return {"version": 2, "plugins": {CRI_V2: cri}}


def migrate(document: dict[str, Any]) -> dict[str, Any]:
    """A version 2 containerd config as version 3 (containerd 2.x's CRI config migration)."""
    result = copy_data(document)
    result["version"] = 3
    plugins = result.get("plugins")
    if not isinstance(plugins, dict):
        return result
    source = plugins.get(CRI_V2)
    if not isinstance(source, dict):
        return result
    images = plugins.setdefault(CRI_V3_IMAGES, {})
    runtime_ = plugins.setdefault(CRI_V3_RUNTIME, {})
    if "sandbox_image" in source:
        images.setdefault("pinned_images", {})["sandbox"] = source["sandbox_image"]
    for key in _IMAGE_KEYS:
        if key in source:
            images[key] = source[key]
    containerd_ = source.get("containerd") if isinstance(source.get("containerd"), dict) else {}
    for key in _IMAGE_CONTAINERD_KEYS:
        if key in containerd_:
            images[key] = containerd_[key]
    for key, value in source.items():
        if key not in ("cni", "containerd", "sandbox_image", *_IMAGE_KEYS, *_STREAMING_KEYS):
            runtime_.setdefault(key, value)
    if isinstance(source.get("cni"), dict):
        cni = runtime_.setdefault("cni", {})
        for key, value in source["cni"].items():
            if key == "bin_dir":
                if not cni.get("bin_dirs"):
                    cni["bin_dirs"] = [value]
            else:
                cni.setdefault(key, value)
    if containerd_:
        target = runtime_.setdefault("containerd", {})
        for key, value in containerd_.items():
            if key not in _IMAGE_CONTAINERD_KEYS:
                target.setdefault(key, value)
        runtimes = target.get("runtimes")
        for entry in runtimes.values() if isinstance(runtimes, dict) else ():
            if isinstance(entry, dict) and "sandbox_mode" in entry and "sandboxer" not in entry:
                entry["sandboxer"] = entry.pop("sandbox_mode")
    streaming = {key: source[key] for key in _STREAMING_KEYS if key in source}
    if streaming:
        plugins[CRI_V2] = streaming
    else:
        del plugins[CRI_V2]
    return _pruned(result)


def _pruned(table: dict[str, Any]) -> dict[str, Any]:
    """``table`` without the empty tables the conversion left (an empty table sets nothing)."""
    pruned = {}
    for key, value in table.items():
        if isinstance(value, dict):
            value = _pruned(value)
            if not value:
                continue
        pruned[key] = value
    return pruned


def user_config(text: str, config_version: int) -> str:
    """The user's containerd TOML for the image's containerd: converted to version 3 for containerd 2.x, refused
    when it is version 3 and the image's containerd is 1.x."""
    if not text.strip():
        return text
    if config_version < 3:
        if is_version3(text):
            raise InvalidInputError(
                "spec.containerd.config: a version 3 containerd config cannot be used with this image's containerd 1.x",
                [f"it names {CRI_V3_IMAGES} or {CRI_V3_RUNTIME}; use the version 2 names ({CRI_V2})"],
            )
        return text
    if is_version3(text):
        return text
    from nodeforge.bootstrap import tomlr  # only here: a version 2 config to convert (parsed once by the model)

    return dumps(migrate(tomlr.loads(text)))
