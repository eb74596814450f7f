"""BYOS image catalog: record every image built (Packer manifests, EC2 tags), answer which one a cluster should
use, move images through channels, publish them to SSM, retire them. See docs/catalog.md.

The CLI is ``nodeforge.catalog.cli.app`` (a typer app mounted as ``nodeforge catalog``).
"""

from __future__ import annotations

from nodeforge.catalog.errors import CatalogError, ManifestError
from nodeforge.catalog.manifest import parse_manifest, read_manifest
from nodeforge.catalog.model import Artifact, Event, Image
from nodeforge.catalog.store import Catalog, ImageFilter, IngestResult, default_path

__all__ = [
    "Artifact",
    "Catalog",
    "CatalogError",
    "Event",
    "Image",
    "ImageFilter",
    "IngestResult",
    "ManifestError",
    "default_path",
    "parse_manifest",
    "read_manifest",
]
