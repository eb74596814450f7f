"""Helpers of the packer/eks-node tests: paths, the parsed template, Packer 1.6.6 runs (fixtures: conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hcl2
import pytest
from packer_hcl_eval import Scope

REPO = Path(__file__).resolve().parents[3]
PACKER_DIR = REPO / "packer"
TEMPLATE_DIR = PACKER_DIR / "eks-node"
KUBERNETES_DIR = PACKER_DIR / "kubernetes"
LOCAL_TEMPLATE = PACKER_DIR / "local.pkr.hcl"
DEFAULT_VARS_FILE = KUBERNETES_DIR / "1.31.pkrvars.hcl"

OSES = ("al2023", "al2")
ARCHES = ("x86_64", "arm64")
COMBOS = [(os_name, arch) for os_name in OSES for arch in ARCHES]
FAKE_SOURCE_AMI = "ami-0123456789abcdef0"

SERIALIZATION = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def load_hcl(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=SERIALIZATION)


def load_template(directory: Path) -> dict[str, list[Any]]:
    """All *.pkr.hcl files of a directory template, top-level block lists concatenated."""
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.pkr.hcl")):
        for key, blocks in load_hcl(path).items():
            merged.setdefault(key, []).extend(blocks)
    return merged


def variable_blocks(template: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    return {name: body for block in template.get("variable", []) for name, body in block.items()}


def local_exprs(template: dict[str, list[Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for block in template.get("locals", []):
        merged.update(block)
    return merged


def default_variables(template: dict[str, list[Any]]) -> dict[str, Any]:
    """Variable defaults as Packer sees them (python-hcl2 keeps expressions; defaults here are literals)."""
    return {name: body["default"] for name, body in variable_blocks(template).items() if "default" in body}


Resolver = Callable[..., tuple[Scope, Callable[[Any], Any]]]


def packer_env() -> dict[str, str]:
    """PATH with this venv's bin first: the ansible provisioner checks ansible-playbook."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}", CHECKPOINT_DISABLE="1")


needs_packer = pytest.mark.skipif(shutil.which("packer") is None, reason="packer not installed")


ANSIBLE_STUB_DIR = ".ansible-stub"


def run_packer(
    args: list[str], cwd: Path, stdin: str | None = None, *, stub_ansible: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run packer in cwd; stub_ansible puts cwd/.ansible-stub (see legacy_root) first on PATH."""
    env = packer_env()
    if stub_ansible:
        env["PATH"] = f"{cwd / ANSIBLE_STUB_DIR}:{env['PATH']}"
    return subprocess.run(["packer", *args], capture_output=True, text=True, cwd=cwd, env=env, input=stdin, check=False)
