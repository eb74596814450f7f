"""Shared settings of the node checks.

These checks run in four places: Molecule's verify step (into the instance), `nodeforge verify IMAGE` (against an
instance of a baked image), the build's own `verify-build` and the booted node (`nodeforge verify --ssh`, against the
image booted under QEMU from its own disk). Each runs its commands through one shell on the node
(nodeforge.bake.shellsession: `nodeforge-docker://CONTAINER`, one `docker exec -i`; `nodeforge-ssh://`, one SSH
session).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from nodeforge.bake.shellsession import BACKEND_CLASSES, DOCKER_SCHEME, SSH_SCHEME

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("NODEFORGE_FIXTURES", REPO / ".cache" / "fixtures"))


def pytest_configure(config: pytest.Config) -> None:
    for marker in (
        "node_base",
        "containerd",
        "kubelet",
        "iam_authenticator",
        "verified_download",
        "image_manifest",
        "bootstrap_agent",
        "cloud_init",
        "target_python",
        "ssm_agent",
        "sysprep",
        "hardening",
        "cis",
    ):
        config.addinivalue_line("markers", f"{marker}: checks of the {marker} role")
    # one shell per node for all of a run's commands (nodeforge.bake.shellsession): `nodeforge verify --ssh` over SSH,
    # `nodeforge verify IMAGE`, `verify-build docker://` and Molecule's verify step through one `docker exec -i`
    from testinfra.backend import BACKENDS

    for scheme, class_path in BACKEND_CLASSES.items():
        BACKENDS.setdefault(scheme, class_path)


@pytest.fixture(scope="session")
def kubernetes_release() -> dict[str, str]:
    """The release the node was built for (NODEFORGE_KUBERNETES_VERSION, default the playbook's 1.31)."""
    minor = os.environ.get("NODEFORGE_KUBERNETES_VERSION", "1.31")
    catalog = yaml.safe_load((REPO / "roles/kubelet/defaults/main.yml").read_text())["kubelet_releases"]
    return {"minor": minor, **{k: str(v) for k, v in catalog[minor].items()}}


@pytest.fixture(scope="session")
def expected_sha256(kubernetes_release: dict[str, str]):
    """sha256 the artifact source published for a binary (read from the fixture mirror's .sha256 file)."""

    def lookup(name: str, arch: str = "amd64") -> str:
        rel = f"{kubernetes_release['version']}/{kubernetes_release['build_date']}/bin/linux/{arch}/{name}.sha256"
        return (FIXTURES / "artifacts" / rel).read_text().split()[0]

    return lookup


@pytest.fixture(scope="session")
def put_file(request: pytest.FixtureRequest):
    """Copy a controller file into the instance, whatever the testinfra backend."""

    def put(host, src: Path, dest: str) -> None:
        backend = host.backend
        if backend.NAME == "ansible":
            result = host.ansible("copy", f"src={src} dest={dest} mode=0644", check=False, become=True)
            assert not result.get("failed"), result
        elif backend.NAME in ("docker", DOCKER_SCHEME):
            subprocess.run(["docker", "cp", str(src), f"{backend.name}:{dest}"], check=True)
        elif backend.NAME in ("ssh", SSH_SCHEME):
            spec = backend.host
            cmd = ["scp", "-q"]
            if backend.ssh_config:
                cmd += ["-F", backend.ssh_config]
            if backend.ssh_identity_file:
                cmd += ["-i", backend.ssh_identity_file]
            if spec.port:
                cmd += ["-P", str(spec.port)]
            staged = f"/tmp/nodeforge-put-{Path(dest).name}"
            target = f"{spec.user}@{spec.name}" if spec.user else spec.name
            subprocess.run([*cmd, str(src), f"{target}:{staged}"], check=True)
            host.check_output(f"install -o root -g root -m 0644 {staged} {dest} && rm -f {staged}")
        else:
            pytest.skip(f"cannot copy files with the {backend.NAME} backend")

    return put


@pytest.fixture(scope="module")
def booted_node(host) -> bool:
    """True on a node that booted as an instance (a VM: `nodeforge verify --ssh`), where the bootstrap agent has
    configured it from IMDS at boot. False in the image's containers (Molecule, `nodeforge verify IMAGE`), which
    share the host's network and have not been bootstrapped."""
    return host.run("systemd-detect-virt --container").rc != 0


@pytest.fixture
def image_state_only(booted_node) -> None:
    """Skip a check about the image as baked (before any boot) on a node that has booted and configured itself."""
    if booted_node:
        pytest.skip("about the image before its first boot: this node has booted and configured itself from IMDS")
