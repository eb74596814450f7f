"""The sealed root's identity in the Packer manifest's ``custom_data`` (the catalog keeps it as extra keys)."""

from __future__ import annotations

import json
from pathlib import Path

from nodeforge.immutable.errors import SealError
from nodeforge.immutable.seal import SealedRoot

OS_SUFFIX = "-immutable"


def record_seal(manifest: Path, sealed: SealedRoot) -> dict[str, str]:
    """Add variant, root hash, root filesystem and the seal's inputs to the last build's custom_data; returns it.

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
    # What the root hash is a function of (reproducible seals): re-sealing the same tree must give root_hash again.
    inputs = sealed.inputs
    custom["verity_salt"] = sealed.verity.salt
    if sealed.signed:  # fingerprint of the key that signed the root hash (the disk's boot partition holds it)
        custom["signing_key"] = sealed.signature["key"]
    if inputs:
        custom["seal_tree_sha256"] = str(inputs.get("tree_sha256", ""))
        custom["seal_image_sha256"] = str(inputs.get("image_sha256", ""))
        custom["seal_source_date_epoch"] = str(inputs.get("source_date_epoch", ""))
        custom["seal_fs_options"] = " ".join(str(o) for o in inputs.get("fs_options", []))
        custom["seal_tools"] = ", ".join(str(t) for t in inputs.get("tools", []))
    tmp = manifest.with_name(f".{manifest.name}.tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(manifest)
    return custom
