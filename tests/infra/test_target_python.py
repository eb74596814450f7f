"""target_python: the node has a Python the pinned ansible-core supports (and the bootstrap agent runs on)."""

import pytest

pytestmark = pytest.mark.target_python


def test_target_has_a_supported_python3(host):
    out = host.check_output("python3 -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
    major, minor = (int(part) for part in out.strip().split("."))
    assert (major, minor) >= (3, 8), out
