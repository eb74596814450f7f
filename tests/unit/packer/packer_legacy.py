"""A copy of packer/eks-node that the Packer on this machine (1.6.6) can load.

Current Packer reads the templates as they are. 1.6.6 predates the plugin system and some amazon-ebs options, so
the copy drops the ``packer {}`` block (required_plugins, required_version) and the arguments and blocks 1.6.6
does not know, listed below with what each one does in the real template. Everything else is kept byte for byte:
the variables with their validations, the locals, the source, the provisioners and the post-processors.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from pathlib import Path

# Top-level blocks 1.6.6 cannot load at all.
LEGACY_DROPPED_BLOCKS = ("packer",)
# amazon-ebs arguments and blocks added after 1.6.6 (amazon plugin), dropped from the source block only.
LEGACY_DROPPED_SOURCE_ARGUMENTS = {
    "imds_support": "AMI attribute: instances launched from it require IMDSv2",
    "deprecate_at": "AMI deprecation time",
    "ami_org_arns": "sharing with AWS Organizations",
    "ami_ou_arns": "sharing with organizational units",
}
LEGACY_DROPPED_SOURCE_BLOCKS = {
    "metadata_options": "IMDSv2-only build instance (http_tokens = required)",
}

_ARGUMENT = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_-]*)\s*=")
_BLOCK = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_-]*)(\s+\"[^\"]*\")*\s*\{\s*$")


def _strip(text: str, top_blocks: tuple[str, ...], arguments: set[str], blocks: set[str]) -> tuple[str, list[str]]:
    """Remove whole top-level blocks, and arguments/blocks anywhere below a source block (packer fmt layout)."""
    out: list[str] = []
    removed: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    in_source = False
    while i < len(lines):
        line = lines[i]
        block = _BLOCK.match(line)
        argument = _ARGUMENT.match(line)
        if not line.startswith((" ", "\t")) and block:
            in_source = block.group(2) == "source"
        if block and (
            (block.group(1) == "" and block.group(2) in top_blocks) or (in_source and block.group(2) in blocks)
        ):
            depth = 0
            while True:
                depth += lines[i].count("{") - lines[i].count("}")
                i += 1
                if depth <= 0:
                    break
            removed.append(block.group(2))
            continue
        if in_source and argument and argument.group(2) in arguments and "{" not in line and "(" not in line:
            removed.append(argument.group(2))
            i += 1
            continue
        out.append(line)
        i += 1
    return "".join(out), removed


def derive_legacy_copy(template_dir: Path, target: Path, extra_arguments: Mapping[str, str] | None = None) -> list[str]:
    """Write the 1.6.6-loadable copy of template_dir into target; return what was dropped.

    ``extra_arguments``: further source arguments to drop (name -> what it does in the real template).
    """
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(template_dir, target)
    removed: list[str] = []
    for path in sorted(target.glob("*.pkr.hcl")):
        text, gone = _strip(
            path.read_text(),
            LEGACY_DROPPED_BLOCKS,
            set(LEGACY_DROPPED_SOURCE_ARGUMENTS) | set(extra_arguments or {}),
            set(LEGACY_DROPPED_SOURCE_BLOCKS),
        )
        if text.strip():
            path.write_text(text)
        else:
            path.unlink()
        removed += gone
    return removed


def derive_dry_run_copy(template_dir: Path, target: Path, source_ami: str) -> None:
    """A copy whose build runs here in a second: the amazon-ebs source swapped for a null one, the provisioners
    dropped, build.SourceAMI (an amazon builder value) replaced by source_ami. The post-processors (the manifest
    and the version merge) stay as they are."""
    derive_legacy_copy(template_dir, target)
    (target / "sources.pkr.hcl").write_text('source "null" "eks-node" {\n  communicator = "none"\n}\n')
    build = target / "build.pkr.hcl"
    text = build.read_text()
    assert text.count("source.amazon-ebs.eks-node") == 1 and text.count("build.SourceAMI") == 1
    text = text.replace("source.amazon-ebs.eks-node", "source.null.eks-node")
    text = text.replace("build.SourceAMI", f'"{source_ami}"')
    kept: list[str] = []
    depth = 0
    for line in text.splitlines(keepends=True):
        if depth == 0 and line.startswith('  provisioner "'):
            depth = line.count("{") - line.count("}")
            continue
        if depth > 0:
            depth += line.count("{") - line.count("}")
            continue
        kept.append(line)
    build.write_text("".join(kept))
