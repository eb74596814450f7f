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
    assert "warning: CIS: readOnlyPort must be 0, not 10255 (CIS 3.2.4) (applied anyway: --cis-mode=warn)" in result.err
    dropin = json.loads((agent.root / "etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf").read_text())
    assert dropin["readOnlyPort"] == 10255


def test_defaults_pass_every_check():
    assert cis.violations(DEFAULT_CONFIG) == []


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"authorization": {"mode": "AlwaysAllow"}}, "authorization.mode must not be AlwaysAllow"),
        ({"authentication": {"x509": {"clientCAFile": ""}}}, "clientCAFile must be set"),
        ({"makeIPTablesUtilChains": False}, "makeIPTablesUtilChains must be true"),
        ({"eventRecordQPS": -1}, "eventRecordQPS must be an integer >= 0"),
        ({"rotateCertificates": False}, "rotateCertificates must be true"),
        ({"streamingConnectionIdleTimeout": "0s"}, "streamingConnectionIdleTimeout must not be 0"),
    ],
)
def test_each_check(override, message):
    from nodeforge.bootstrap.merge import deep_merge

    assert any(message in found for found in cis.violations(deep_merge(DEFAULT_CONFIG, override)))


def with_defaults(override: dict, *, drop: tuple[str, ...] = ()) -> dict:
    from nodeforge.bootstrap.merge import deep_merge

    config = deep_merge(DEFAULT_CONFIG, override)
    for key in drop:
        config.pop(key)
    return config


def test_kube_bench_required_settings_must_be_written_explicitly():
    """kube-bench eks-1.8.0 'set: true': an absent readOnlyPort or feature gate fails, an absent optional one passes."""
    found = cis.violations(with_defaults({}, drop=("readOnlyPort", "featureGates", "rotateCertificates")))
    assert found == [
        "readOnlyPort must be set to 0 explicitly (CIS 3.2.4)",
        "featureGates.RotateKubeletServerCertificate must be set to true explicitly (CIS 3.2.9)",
    ]  # rotateCertificates: "not present or true"


@pytest.mark.parametrize("timeout", ["0", "0s", "0m0s", "0h0m0s", "0.0s", "-0s", "0ms", 0])
def test_every_spelling_of_a_zero_timeout_is_zero(timeout):
    found = cis.violations(with_defaults({"streamingConnectionIdleTimeout": timeout}))
    assert found == ["streamingConnectionIdleTimeout must not be 0 (CIS 3.2.5)"]


@pytest.mark.parametrize("timeout", ["4h0m0s", "1s", "0.5s", "10m"])
def test_non_zero_timeouts_pass(timeout):
    assert cis.violations(with_defaults({"streamingConnectionIdleTimeout": timeout})) == []


@pytest.mark.parametrize(
    ("qps", "ok"), [(0, True), (50, True), (-1, False), ("50", False), (True, False), (2.5, False)]
)
def test_event_record_qps_is_an_integer_at_least_zero(qps, ok):
    assert (cis.violations(with_defaults({"eventRecordQPS": qps})) == []) is ok


def test_merged_feature_gates_flags_are_checked():
    config = dict(DEFAULT_CONFIG)
    assert cis.violations(config, ["--feature-gates=A=true", "--feature-gates", "RotateKubeletServerCertificate=false"])
    assert not cis.violations(config, ["--feature-gates=RotateKubeletServerCertificate=false,B=true",
                                       "--feature-gates=RotateKubeletServerCertificate=true"])  # fmt: skip
    effective = cis.apply_flags(config, ["--feature-gates=A=true", "--feature-gates=B=false"])
    assert effective["featureGates"] == {"RotateKubeletServerCertificate": True, "A": True, "B": False}


def test_flags_win_over_the_config_file_with_their_types():
    found = cis.violations(
        with_defaults({}),
        ["--read-only-port", "10255", "--anonymous-auth", "--event-qps=x", "--authorization-mode=AlwaysAllow"],
    )
    assert found == [
        "authentication.anonymous.enabled must be false, not true (CIS 3.2.1)",
        "authorization.mode must not be AlwaysAllow (CIS 3.2.2)",
        "readOnlyPort must be 0, not 10255 (CIS 3.2.4)",
        'eventRecordQPS must be an integer >= 0, not "x" (CIS 3.2.7)',
    ]


def test_node_identity_replaces_the_hostname_override_check():
    good = with_defaults({"providerID": "aws:///us-west-2f/i-1234567890abcdef0"})
    assert cis.violations(good, ["--hostname-override=ip-10-0-0-1.ec2.internal", "--cloud-provider=external"]) == []
    assert cis.violations(with_defaults({"providerID": "aws:///x/my-node"})) == [
        'providerID must match ^aws:///[a-z]{2}(-[a-z]+)+-[0-9][a-z]?/i-[0-9a-f]{8,17}$, not "aws:///x/my-node" '
        "(node-identity)"
    ]
    assert cis.violations(good, ["--cloud-provider=aws"]) == [
        '--cloud-provider must be "external", not "aws" (cloud-provider-external)'
    ]


def test_every_rule_cites_its_source():
    for rule in cis.rules():
        assert rule["id"][0].isdigit() or rule.get("reason"), rule["id"]
        assert rule["check"] in (
            "equals",
            "not-equals",
            "non-empty",
            "duration-not-zero",
            "integer-at-least",
            "matches",
        )
