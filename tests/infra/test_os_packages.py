"""os_packages: packages installed; the index was refreshed because they were missing."""

import pytest

pytestmark = pytest.mark.os_packages


@pytest.mark.parametrize("name", ["jq", "kmod"])
def test_installed(host, name):
    assert host.package(name).is_installed


def test_usable(host):
    assert host.check_output("echo '{\"a\": 1}' | jq .a") == "1"
