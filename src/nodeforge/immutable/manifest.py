"""The sealed root's identity in the Packer manifest's ``custom_data`` (the catalog keeps it as extra keys)."""

from __future__ import annotations

import json
from pathlib import Path

from nodeforge.immutable.errors import SealError
from nodeforge.immutable.seal import SealedRoot

OS_SUFFIX = "-immutable"


def record_seal(manifest: Path, sealed: SealedRoot) -> dict[str, str]:
    """Add variant, root hash and root filesystem to the last build's custom_data; returns the custom_data.

    ``os`` gets the ``-immutable`` suffix (once), so catalog queries never mix the two variants. The manifest is
    rewritten atomically (temp file, then rename).
    """
    try:
        document = json.loads(manifest.read_text())
        builds = document["builds"]
        custom = builds[-1].setdefault("custom_data", {})
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise SealError(f"{manifest}: not a Packer manifest with builds ({exc})") from exc
    os_name = str(custom.get("os", "unknown"))
    custom["os"] = os_name if os_name.endswith(OS_SUFFIX) else os_name + OS_SUFFIX
    custom["variant"] = "immutable"
    custom["root_hash"] = sealed.root_hash
    custom["root_fs"] = f"{sealed.fs_type}+dm-verity"
    tmp = manifest.with_name(f".{manifest.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(manifest)
    return custom
