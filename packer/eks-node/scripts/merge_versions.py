#!/usr/bin/env python3
"""Fill a Packer manifest build's custom_data with the versions the image really carries.

Usage: merge_versions.py MANIFEST.json COMPONENTS.json BUILD_ID. Packer's last post-processor runs it on the
machine running Packer. COMPONENTS.json is the image's component manifest (roles/image_manifest: os, arch,
packages name -> version, binaries). The builds of the manifest's last run whose custom_data.build_id is
BUILD_ID get kernel_version, containerd_version, runc_version and os_version from it where it has them: the
template records what was asked for (an unpinned package is known only once installed). Values stay strings.
A missing or unreadable component manifest leaves the manifest as written (with a warning): the AMI exists.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

# custom_data key -> package whose version it records.
PACKAGE_KEYS = {"kernel_version": "kernel", "containerd_version": "containerd", "runc_version": "runc"}


def measured_versions(components: dict[str, Any]) -> dict[str, str]:
    """custom_data values found in a component manifest (keys absent when it does not know)."""
    found: dict[str, str] = {}
    packages = components.get("packages")
    if isinstance(packages, dict):
        for key, package in PACKAGE_KEYS.items():
            version = packages.get(package)
            if isinstance(version, str) and version:
                found[key] = version
    os_info = components.get("os")
    if isinstance(os_info, dict) and isinstance(os_info.get("version"), str) and os_info["version"]:
        found["os_version"] = os_info["version"]
    return found


def merge(manifest: dict[str, Any], versions: dict[str, str], build_id: str) -> int:
    """Update the manifest in place; return how many builds were updated."""
    last_run = manifest.get("last_run_uuid")
    updated = 0
    for build in manifest.get("builds", []):
        data = build.get("custom_data")
        if not isinstance(data, dict) or data.get("build_id") != build_id:
            continue
        if last_run and build.get("packer_run_uuid") != last_run:
            continue
        data.update(versions)
        updated += 1
    return updated


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        sys.stderr.write("usage: merge_versions.py MANIFEST.json COMPONENTS.json BUILD_ID\n")
        return 2
    manifest_path, components_path, build_id = Path(argv[1]), Path(argv[2]), argv[3]
    try:
        components = json.loads(components_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"merge_versions: cannot read {components_path} ({exc}); manifest left as written\n")
        return 0
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    versions = measured_versions(components) if isinstance(components, dict) else {}
    if merge(manifest, versions, build_id) == 0:
        sys.stderr.write(f"merge_versions: no build {build_id!r} of the last run in {manifest_path}\n")
        return 1
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=manifest_path.parent, delete=False, suffix=".tmp"
    ) as handle:
        json.dump(manifest, handle, indent=2)
        handle.write("\n")
    Path(handle.name).replace(manifest_path)
    sys.stdout.write(f"merge_versions: {manifest_path}: {json.dumps(versions, sort_keys=True)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
