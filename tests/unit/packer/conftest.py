"""Fixtures of the packer/eks-node tests: the parsed template, a resolver per OS x arch, the 1.6.6 copy."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from packer_hcl_eval import Scope, resolve
from packer_legacy import derive_legacy_copy
from packer_support import (
    ANSIBLE_STUB_DIR,
    DEFAULT_VARS_FILE,
    FAKE_SOURCE_AMI,
    KUBERNETES_DIR,
    REPO,
    TEMPLATE_DIR,
    Resolver,
    default_variables,
    load_hcl,
    load_template,
    local_exprs,
)


@pytest.fixture(scope="session")
def template() -> dict[str, list[Any]]:
    return load_template(TEMPLATE_DIR)


@pytest.fixture(scope="session")
def vars_file_values() -> dict[str, str]:
    return load_hcl(DEFAULT_VARS_FILE)


@pytest.fixture(scope="session")
def resolver(template: dict[str, list[Any]], vars_file_values: dict[str, str]) -> Resolver:
    """resolver(os=..., arch=..., **overrides) -> (scope, resolve function) with the 1.31 vars file applied."""

    def make(**overrides: Any) -> tuple[Scope, Callable[[Any], Any]]:
        variables = {**default_variables(template), **vars_file_values, **overrides}
        scope = Scope(
            variables=variables,
            local_exprs=local_exprs(template),
            path_root=str(TEMPLATE_DIR),
            # amazon builder values, and the communicator's (kept as their references: known only when building)
            build={"SourceAMI": FAKE_SOURCE_AMI, "SourceAMIName": "source-name"}
            | {name: f"${{build.{name}}}" for name in ("SSHPrivateKey", "User", "Host", "Port")},
        )
        return scope, lambda value: resolve(value, scope)

    return make


@pytest.fixture(scope="session")
def legacy_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A checkout-shaped temp dir: packer/eks-node as 1.6.6 can load it, playbooks/roles/ansible.cfg linked."""
    root = tmp_path_factory.mktemp("legacy")
    for name in ("playbooks", "roles", "ansible.cfg", "src"):
        (root / name).symlink_to(REPO / name)
    (root / "packer").mkdir()
    shutil.copytree(KUBERNETES_DIR, root / "packer" / "kubernetes")
    derive_legacy_copy(TEMPLATE_DIR, root / "packer" / "eks-node")
    # A stand-in ansible-playbook: the ansible provisioner only asks it for its version when validating.
    stub = root / ANSIBLE_STUB_DIR / "ansible-playbook"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\necho "ansible-playbook [core 2.19.0] (stand-in)"\n')
    stub.chmod(0o755)
    yield root
