"""CIS settings: refused in enforce mode (nothing written), applied with warnings in warn mode."""

from __future__ import annotations

import json

import pytest
from bootstrap_helpers import INPUTS

from nodeforge.bootstrap import cis
from nodeforge.bootstrap.errors import EXIT_CIS, EXIT_OK
from nodeforge.bootstrap.kubelet import DEFAULT_CONFIG

CA = (INPUTS / "ca.b64").read_text().strip()
BASE = f"""apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: demo
    apiServerEndpoint: https://example.com
    certificateAuthority: {CA}
    cidr: 10.100.0.0/16
  kubelet:
"""


def test_config_override_breaking_cis_is_refused(agent):
    user_data = (
        BASE
        + "    config:\n      readOnlyPort: 10255\n      authentication:\n        anonymous:\n          enabled: true\n"
    )
    result = agent.run(user_data=user_data)
    assert result.code == EXIT_CIS
    assert "readOnlyPort must be 0" in result.err
    assert "authentication.anonymous.enabled must be false" in result.err
    assert list(agent.root.iterdir()) == []


def test_flag_breaking_cis_is_refused(agent):
    result = agent.run(user_data=BASE + "    flags:\n      - --feature-gates=RotateKubeletServerCertificate=false\n")
    assert result.code == EXIT_CIS
    assert "RotateKubeletServerCertificate must be true" in result.err
    assert list(agent.root.iterdir()) == []


def test_legacy_extra_args_breaking_cis_is_refused(agent):
    script = (
        f"#!/bin/bash\n/etc/eks/bootstrap.sh demo --b64-cluster-ca {CA} --apiserver-endpoint https://example.com "
        "--kubelet-extra-args '--protect-kernel-defaults=false --streaming-connection-idle-timeout=0'\n"
    )
    result = agent.run(user_data=script)
    assert result.code == EXIT_CIS
    assert "protectKernelDefaults must be true" in result.err
    assert "streamingConnectionIdleTimeout must not be 0" in result.err


def test_warn_mode_applies_with_warnings(agent):
    result = agent.run("--cis-mode", "warn", user_data=BASE + "    config:\n      readOnlyPort: 10255\n")
    assert result.code == EXIT_OK
    assert "warning: CIS: readOnlyPort must be 0 (CIS 3.2.4) (applied anyway: --cis-mode=warn)" in result.err
    dropin = json.loads((agent.root / "etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf").read_text())
    assert dropin["readOnlyPort"] == 10255


def test_defaults_pass_every_check():
    assert cis.violations(DEFAULT_CONFIG) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"authorization": {"mode": "AlwaysAllow"}}, "authorization.mode must be Webhook"),
        ({"authentication": {"x509": {"clientCAFile": ""}}}, "clientCAFile must be set"),
        ({"makeIPTablesUtilChains": False}, "makeIPTablesUtilChains must be true"),
        ({"eventRecordQPS": -1}, "eventRecordQPS must be a number >= 0"),
        ({"rotateCertificates": False}, "rotateCertificates must be true"),
        ({"streamingConnectionIdleTimeout": "0s"}, "streamingConnectionIdleTimeout must not be 0"),
    ],
)
def test_each_check(override, message):
    from nodeforge.bootstrap.merge import deep_merge

    assert any(message in found for found in cis.violations(deep_merge(DEFAULT_CONFIG, override)))
