"""aws-iam-authenticator: verified binary."""

import pytest

pytestmark = pytest.mark.iam_authenticator


def test_binary_verified(host, expected_sha256):
    binary = host.file("/usr/bin/aws-iam-authenticator")
    assert binary.user == "root" and binary.mode == 0o755
    assert binary.sha256sum == expected_sha256("aws-iam-authenticator")


def test_answers_version(host, kubernetes_release):
    assert kubernetes_release["version"] in host.check_output("aws-iam-authenticator version")
