"""verified_download: files land with the requested mode, byte-identical to the published digest."""

import pytest
from conftest import FIXTURES

pytestmark = pytest.mark.verified_download


@pytest.mark.parametrize(
    ("dest", "rel", "mode"),
    [
        ("/opt/nodeforge-test/kubelet", "1.30.7/2024-12-12/bin/linux/amd64/kubelet", 0o750),
        (
            "/opt/nodeforge-test/ecr-credential-provider-arm64",
            "1.30.7/2024-12-12/bin/linux/arm64/ecr-credential-provider",
            0o755,
        ),
    ],
)
def test_installed_and_verified(host, dest, rel, mode):
    installed = host.file(dest)
    assert installed.user == "root" and installed.mode == mode
    assert installed.sha256sum == (FIXTURES / "artifacts" / f"{rel}.sha256").read_text().split()[0]


def test_no_temporary_files_left(host):
    assert host.run("ls -A /opt/nodeforge-test").stdout.split() == ["ecr-credential-provider-arm64", "kubelet"]
