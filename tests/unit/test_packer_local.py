"""packer/local.pkr.hcl: valid for the Packer on this machine, and its variables reject bad values."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "packer" / "local.pkr.hcl"

pytestmark = pytest.mark.skipif(shutil.which("packer") is None, reason="packer not installed")


def validate(*variables: str) -> subprocess.CompletedProcess[str]:
    cmd = ["packer", "validate"]
    for var in variables:
        cmd += ["-var", var]
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return subprocess.run([*cmd, str(TEMPLATE)], capture_output=True, text=True, cwd=REPO, env=env, check=False)


def test_template_validates():
    proc = validate()
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("var", "message"),
    [
        ("kubernetes_version=v1.31", "kubernetes_version must be a minor version"),
        ("kubernetes_version=1.x", "kubernetes_version must be a minor version"),
        ("kubernetes_version=2.1", "kubernetes_version must be a minor version"),
        ("base_image=nodeforge", "base_image must be a repository:tag"),
        ("image_repository=Upper/Case", "image_repository must be a non-empty lower-case"),
    ],
)
def test_bad_variables_rejected(var, message):
    proc = validate(var)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert message in out, out
