"""Bad inputs to the roles: each fails with a message naming the cause and installs nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nodeforge.bake.mirror import ArtifactMirror

# module-scoped fixtures (one bake, one instance): keep this file on one xdist worker
pytestmark = pytest.mark.xdist_group("bad-input")

REPO = Path(__file__).resolve().parents[2]
RELEASE_PATH = "1.31.3/2024-12-12/bin/linux/amd64"


@pytest.fixture(autouse=True)
def no_binaries_installed(instance: str) -> None:
    """Every case starts from an instance without the binaries (a case that gets past the downloads installs them)."""
    subprocess.run(
        ["docker", "exec", instance, "rm", "-rf", "/usr/bin/kubelet", "/usr/bin/aws-iam-authenticator",
         "/etc/eks/image-credential-provider", "/opt/nodeforge-retry"],
        check=True,
    )  # fmt: skip


def converge(instance: str, tmp_path: Path, role: str, role_vars: dict) -> subprocess.CompletedProcess[str]:
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        json.dumps(
            [{"name": "bad input", "hosts": "all", "gather_facts": True, "roles": [{"role": role, "vars": role_vars}]}]
        )
    )
    ansible = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run(
        [
            str(ansible),
            "-i",
            f"{instance},",
            "-c",
            "community.docker.docker",
            "-e",
            "ansible_python_interpreter=/usr/bin/python3",
            str(playbook),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0", "PATH": "/usr/bin:/bin"},
        check=False,
    )


def assert_failed_cleanly(instance: str, proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    for needle in needles:
        assert needle in out, f"{needle!r} not in output:\n{out[-3000:]}"
    left = subprocess.run(
        ["docker", "exec", instance, "sh", "-c", "ls /usr/bin/kubelet /usr/bin/aws-iam-authenticator 2>/dev/null"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert left.stdout.strip() == "", f"half-installed: {left.stdout}"


@pytest.fixture
def tampered_tree(fixture_tree: Path, tmp_path: Path) -> Path:
    tree = tmp_path / "tampered"
    shutil.copytree(fixture_tree, tree)
    (tree / RELEASE_PATH / "kubelet").write_bytes(b"#!/bin/sh\necho tampered\n")
    return tree


def test_wrong_sha256_over_http(instance, tmp_path, tampered_tree):
    with ArtifactMirror(tampered_tree) as mirror:
        proc = converge(
            instance, tmp_path, "kubelet", {"kubelet_artifact_source": mirror.url, "kubelet_download_delay": 0}
        )
    assert_failed_cleanly(instance, proc, "Checksum mismatch", f"{mirror.url}/{RELEASE_PATH}/kubelet")


def test_wrong_sha256_from_folder(instance, tmp_path, tampered_tree):
    proc = converge(instance, tmp_path, "kubelet", {"kubelet_artifact_source": str(tampered_tree)})
    assert_failed_cleanly(instance, proc, "Checksum mismatch", f"{RELEASE_PATH}/kubelet", "expected sha256")


def test_unreachable_source(instance, tmp_path):
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    proc = converge(
        instance,
        tmp_path,
        "kubelet",
        {"kubelet_artifact_source": url, "kubelet_download_retries": 2, "kubelet_download_delay": 1},
    )
    assert_failed_cleanly(
        instance, proc, f"Could not fetch checksum {url}/{RELEASE_PATH}/kubelet.sha256 after 3 attempts"
    )


def test_unknown_kubernetes_version(instance, tmp_path, mirror):
    proc = converge(
        instance, tmp_path, "kubelet", {"kubelet_artifact_source": mirror.url, "kubelet_kubernetes_version": "1.99"}
    )
    assert_failed_cleanly(instance, proc, "kubelet_kubernetes_version 1.99 is not in kubelet_releases")


def test_malformed_kubernetes_version(instance, tmp_path, mirror):
    proc = converge(
        instance, tmp_path, "kubelet", {"kubelet_artifact_source": mirror.url, "kubelet_kubernetes_version": "v1.31.0"}
    )
    assert_failed_cleanly(instance, proc, "kubelet_kubernetes_version must be a Kubernetes minor version")


def test_unknown_arch(instance, tmp_path, mirror):
    proc = converge(instance, tmp_path, "kubelet", {"kubelet_artifact_source": mirror.url, "kubelet_arch": "s390x"})
    assert_failed_cleanly(instance, proc, "kubelet_arch", "s390x")


def test_missing_required_variable(instance, tmp_path, mirror):
    proc = converge(instance, tmp_path, "iam_authenticator", {"iam_authenticator_artifact_source": mirror.url})
    assert_failed_cleanly(instance, proc, "iam_authenticator_kubernetes_release", "iam_authenticator_build_date")


def test_cis_breaking_override_refused(instance, tmp_path, mirror):
    proc = converge(
        instance,
        tmp_path,
        "kubelet",
        {"kubelet_artifact_source": mirror.url, "kubelet_config_overrides": {"readOnlyPort": 10255}},
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "break a CIS EKS worker-node setting" in out, out[-2000:]


FAST_RETRIES = {"kubelet_download_retries": 2, "kubelet_download_delay": 1, "kubelet_download_timeout": 3}


@pytest.mark.parametrize(
    ("fault", "needle"),
    [("http500", "HTTP Error 500"), ("truncate", "(expected sha256"), ("stall", "timed out")],
)
def test_artifact_source_faults(instance, tmp_path, fixture_tree, fault, needle):
    """500s, a truncated body and a stalled server: retried, then a clear error; no half-written binary."""
    from faulty_mirror import faulty_mirror

    with faulty_mirror(fixture_tree, fault) as url:
        proc = converge(instance, tmp_path, "kubelet", {"kubelet_artifact_source": url, **FAST_RETRIES})
    assert_failed_cleanly(instance, proc, f"for {url}/{RELEASE_PATH}/kubelet", needle)
    out = proc.stdout + proc.stderr
    assert "Nothing was installed at /usr/bin/kubelet" in out
    assert out.count("FAILED - RETRYING") >= 2, "the download was not retried"


def test_transient_faults_are_retried(instance, tmp_path, fixture_tree):
    """Two failed attempts, then the mirror recovers: the binary is installed, verified."""
    from faulty_mirror import faulty_mirror

    with faulty_mirror(fixture_tree, "http500", failures=2) as url:
        proc = converge(
            instance,
            tmp_path,
            "kubelet",
            {
                "kubelet_artifact_source": url,
                "kubelet_bin_path": "/opt/nodeforge-retry/kubelet",
                "kubelet_credential_provider_enabled": False,
                **FAST_RETRIES,
            },
        )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    digest = subprocess.run(
        ["docker", "exec", instance, "sha256sum", "/opt/nodeforge-retry/kubelet"], capture_output=True, text=True
    ).stdout.split()[0]
    assert digest == (fixture_tree / RELEASE_PATH / "kubelet.sha256").read_text().split()[0]
