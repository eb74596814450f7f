"""amazon-ssm-agent: installed and enabled, so Session Manager reaches nodes (and Packer's session_manager
communicator reaches build instances). Off Amazon Linux the package is a verified .deb; the local bake's is the
labelled fixture of nodeforge.fixtures."""

import pytest

pytestmark = pytest.mark.ssm_agent

FIXTURE_MARKER = "NODEFORGE TEST FIXTURE"


def test_package_installed(host):
    assert host.package("amazon-ssm-agent").is_installed


def test_service_enabled_at_boot(host):
    assert host.service("amazon-ssm-agent").is_enabled


def test_agent_binary_answers(host):
    path = "/usr/bin/amazon-ssm-agent"
    assert host.file(path).is_file and host.file(path).mode & 0o111
    out = host.check_output(f"{path} --version")
    assert "SSM Agent version" in out or "version" in out.lower()


def test_no_downloaded_package_left_behind(host):
    assert not host.file("/var/tmp/nodeforge-amazon-ssm-agent.deb").exists


def test_fixture_is_labelled_as_one(host):
    """On the local bake the agent is the fixture stand-in: it must say so (never pass it off as the real agent)."""
    package = host.package("amazon-ssm-agent")
    if "nodeforge.fixture" not in package.version:
        pytest.skip(f"the real agent ({package.version})")
    assert FIXTURE_MARKER in host.check_output("/usr/bin/amazon-ssm-agent --version")
