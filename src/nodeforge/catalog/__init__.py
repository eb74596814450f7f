"""BYOS image catalog: record every image built (Packer manifests, EC2 tags), answer which one a cluster should
use, move images through channels, publish them to SSM, retire them. See docs/catalog.md.

The CLI is ``nodeforge.catalog.cli.app`` (a typer app mounted as ``nodeforge catalog``); its read commands also
run without typer through ``nodeforge.catalog.fast``. The names below are imported on first use, so that
``import nodeforge.catalog.<module>`` stays cheap.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_EXPORTS = {
    "CatalogError": "errors",
    "ManifestError": "errors",
    "parse_manifest": "manifest",
    "read_manifest": "manifest",
    "Artifact": "model",
    "Event": "model",
    "Image": "model",
    "Catalog": "store",
    "ImageFilter": "store",
    "IngestResult": "store",
    "default_path": "store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nodeforge.catalog' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"nodeforge.catalog.{module}"), name)
