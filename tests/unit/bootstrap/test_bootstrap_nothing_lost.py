"""Nothing lost silently (issue 12 §2): cut MIME refused, empty values never erase earlier ones, every kubelet.config
value type-checked, kubelet flags read as the kubelet reads them, shell calls read as bash would expand them."""

from __future__ import annotations

import json

import pytest
from bootstrap_helpers import INPUTS

from nodeforge.bootstrap.errors import EXIT_INVALID, EXIT_OK, Diagnostics
from nodeforge.bootstrap.kubeletflags import normalize
from nodeforge.bootstrap.kubeletschema import KUBELET_CONFIGURATION, check_kubelet_config
from nodeforge.bootstrap.merge import merge_node_configs
from nodeforge.bootstrap.shell import find_bootstrap_calls

CA = (INPUTS / "ca.b64").read_text().strip()
ENDPOINT = "https://4E2A1F0D8B6C3E5A7B9C.gr7.us-west-2.eks.amazonaws.com"
HEAD = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n"
CLUSTER = (
    f"{HEAD}  cluster:\n    name: demo\n    apiServerEndpoint: {ENDPOINT}\n    certificateAuthority: {CA}\n"
    "    cidr: 10.100.0.0/16\n"
)
DROPIN = "etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf"
ENVIRONMENT = "etc/eks/kubelet/environment"


def mime(*parts: str, closed: bool = True) -> str:
    body = "".join(f"--BOUNDARY\nContent-Type: application/node.eks.aws\n\n{part}\n" for part in parts)
    return (
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="BOUNDARY"\n\n'
        + body
        + ("--BOUNDARY--\n" if closed else "")
    )


def written(agent) -> list[str]:
    return sorted(str(path.relative_to(agent.root)) for path in agent.root.rglob("*") if path.is_file())


# --- MIME ------------------------------------------------------------------------------------------------------


def test_mime_cut_before_its_closing_boundary_is_refused(agent):
    result = agent.run(user_data=mime(CLUSTER, f"{HEAD}  kubelet:\n    flags: [--node-labels=a=b]\n", closed=False))
    assert result.code == EXIT_INVALID
    assert "ends without its closing delimiter '--BOUNDARY--' after part 2" in result.err
    assert written(agent) == []
    karpenter = (INPUTS / "karpenter-al2023.mime").read_text()
    cut = karpenter[: karpenter.rindex("--//--")]
    assert agent.run(user_data=cut).code == EXIT_INVALID
    assert agent.run(user_data=karpenter).code == EXIT_OK


# --- merge -----------------------------------------------------------------------------------------------------


def test_empty_or_null_in_a_later_part_never_erases_an_earlier_value():
    first = {
        "spec": {
            "cluster": {"name": "demo", "enableOutpost": True, "id": "x"},
            "kubelet": {
                "flags": ["--node-labels=a=b"],
                "config": {"maxPods": 20, "clusterDNS": ["10.0.0.10"], "serializeImagePulls": True},
            },
            "featureGates": {"InstanceIdNodeName": True},
        }
    }
    second = {
        "spec": {
            "cluster": {"name": "", "enableOutpost": False, "id": None},
            "kubelet": {
                "flags": None,
                "config": {"maxPods": None, "clusterDNS": [], "serializeImagePulls": False, "evictionHard": {}},
            },
            "featureGates": {"InstanceIdNodeName": False},
        }
    }
    warnings: list[str] = []
    merged = merge_node_configs([first, second], ["part 1", "part 2"], warnings.append)
    spec = merged["spec"]
    assert spec["cluster"] == {"name": "demo", "enableOutpost": True, "id": "x"}  # "", false, null: not values
    assert spec["kubelet"]["flags"] == ["--node-labels=a=b"]
    config = spec["kubelet"]["config"]
    assert config["maxPods"] == 20 and config["clusterDNS"] == ["10.0.0.10"]
    assert config["serializeImagePulls"] is False  # in an inline document false is a value
    assert config["evictionHard"] == {}  # nothing earlier to keep: the empty mapping is what was written
    assert spec["featureGates"] == {"InstanceIdNodeName": False}
    for path in ("spec.cluster.name", "spec.cluster.enableOutpost", "spec.cluster.id", "spec.kubelet.flags",
                 "spec.kubelet.config.maxPods", "spec.kubelet.config.clusterDNS"):  # fmt: skip
        assert any(warning.startswith(f"part 2: {path} is ") for warning in warnings), (path, warnings)
    assert len(warnings) == 6


def test_a_later_part_with_null_flags_keeps_the_kubelet_flags_end_to_end(agent):
    later = f"{HEAD}  kubelet:\n    flags: null\n    config:\n      maxPods: null\n"
    first = CLUSTER + "  kubelet:\n    flags: [--node-labels=team=a]\n    config:\n      maxPods: 17\n"
    result = agent.run(user_data=mime(first, later))
    assert result.code == EXIT_OK, result.err
    assert "--node-labels=team=a" in (agent.root / ENVIRONMENT).read_text()
    assert json.loads((agent.root / DROPIN).read_text())["maxPods"] == 17
    assert "spec.kubelet.flags is null, which does not replace the value" in result.err


# --- kubelet.config types --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("clusterDNS", '"1.1.1.1"', "spec.kubelet.config.clusterDNS: must be a list of strings, not a string"),
        ("evictionHard", "5", "spec.kubelet.config.evictionHard: must be a mapping of strings, not an integer (5)"),
        ("shutdownGracePeriod", "30", "spec.kubelet.config.shutdownGracePeriod: must be a duration string"),
        ("maxPods", '"110"', "spec.kubelet.config.maxPods: must be an integer (int32), not a string ('110')"),
        ("maxPods", "4294967296", "spec.kubelet.config.maxPods: 4294967296 is out of range for int32"),
        ("serializeImagePulls", '"false"', "spec.kubelet.config.serializeImagePulls: must be a boolean"),
        ("kubeReserved", "{cpu: 100}", "spec.kubelet.config.kubeReserved.cpu: must be a string, not an integer"),
        ("authentication", "{anonymous: {enabled: 'no'}}", "spec.kubelet.config.authentication.anonymous.enabled:"),
        ("registerWithTaints", "[{key: a, effect: 3}]", "spec.kubelet.config.registerWithTaints[0].effect: must be"),
        ("logging", "{verbosity: -1}", "spec.kubelet.config.logging.verbosity: -1 is out of range for uint32"),
        ("tlsCipherSuites", "[TLS_A, 7]", "spec.kubelet.config.tlsCipherSuites[1]: must be a string"),
    ],
)
def test_kubelet_config_values_are_type_checked_before_anything_is_written(agent, field, value, message):
    result = agent.run(user_data=CLUSTER + f"  kubelet:\n    config:\n      {field}: {value}\n")
    assert result.code == EXIT_INVALID
    assert message in result.err
    assert written(agent) == []


def test_valid_kubelet_config_values_pass_and_unknown_fields_are_named():
    errors: list[str] = []
    unknown: list[str] = []
    config = {
        "shutdownGracePeriod": "2m30s",
        "evictionHard": {"memory.available": "100Mi"},
        "clusterDNS": ["10.100.0.10"],
        "logging": {"flushFrequency": 5000000000, "verbosity": 4, "vmodule": [{"filePattern": "x", "verbosity": 2}]},
        "reservedMemory": [{"numaNode": 0, "limits": {"memory": "1Gi", "hugepages-1Gi": 2}}],
        "memoryThrottlingFactor": 0.8,
        "registerWithTaints": [{"key": "k", "value": "v", "effect": "NoSchedule", "timeAdded": "2024-01-02T03:04:05Z"}],
        "featureGates": {"RotateKubeletServerCertificate": True},
        "maxPodz": 3,
        "authentication": {"webhook": {"enabled": True, "cacheTTL": "0"}, "x509": {"clientCAFile": "/ca"}},
    }
    check_kubelet_config(config, "config", errors.append, unknown.append)
    assert errors == []
    assert unknown == ["config.maxPodz"]
    assert len(KUBELET_CONFIGURATION) > 120  # every field of the v1beta1 type, not a sample


def test_unknown_kubelet_config_field_warns_and_strict_refuses(agent):
    user_data = CLUSTER + "  kubelet:\n    config:\n      maxPodz: 3\n"
    result = agent.run(user_data=user_data)
    assert result.code == EXIT_OK, result.err
    assert "spec.kubelet.config.maxPodz: not a KubeletConfiguration v1beta1 field" in result.err
    assert agent.run("--strict", user_data=user_data).code == EXIT_INVALID


# --- kubelet flags ---------------------------------------------------------------------------------------------


def test_flags_are_read_as_the_kubelet_reads_them():
    errors: list[str] = []
    words = ["--node-labels", "a=b", "--feature-gates=A=true", "--rotate-certificates", "--max-pods", "20",
             "--feature-gates", "B=false,A=false", "--register-with-taints=x=y:NoSchedule", "-v", "2",
             "--node-labels=c=d"]  # fmt: skip
    assert normalize(words, "flags", errors.append) == [
        "--node-labels=a=b,c=d", "--feature-gates=A=false,B=false", "--rotate-certificates", "--max-pods=20",
        "--register-with-taints=x=y:NoSchedule", "--v=2",
    ]  # fmt: skip
    assert errors == []
    for bad, message in [
        (["--rotate-certificates", "false"], "flags[1]: 'false' is not a flag"),
        (["--protect-kernel-defaults=maybe"], "--protect-kernel-defaults is a boolean flag: 'maybe'"),
        (["--max-pods"], "flags[0]: '--max-pods' needs a value"),
        (["-x"], "unknown shorthand flag"),
    ]:
        errors = []
        normalize(bad, "flags", errors.append)
        assert any(message in error for error in errors), (bad, errors)


def test_space_separated_flag_values_from_bootstrap_sh_and_nodeconfig(agent):
    extra = "--node-labels eks.amazonaws.com/nodegroup=ng-1 --register-with-taints dedicated=gpu:NoSchedule --v 3"
    result = agent.run(
        "legacy", "--", "demo", "--b64-cluster-ca", CA, "--apiserver-endpoint", ENDPOINT,
        "--kubelet-extra-args", extra, "--feature-gates-are-not-a-bootstrap-flag",
    )  # fmt: skip
    assert result.code == EXIT_OK, result.err
    environment = (agent.root / ENVIRONMENT).read_text()
    assert "--node-labels=eks.amazonaws.com/nodegroup=ng-1 --register-with-taints=dedicated=gpu:NoSchedule --v=3" in (
        environment
    )
    assert "unknown argument '--feature-gates-are-not-a-bootstrap-flag'" in result.err
    result = agent.run("legacy", "--", "demo", "--b64-cluster-ca", CA, "--apiserver-endpoint", ENDPOINT,
                       "--kubelet-extra-args", "--rotate-certificates false")  # fmt: skip
    assert result.code == EXIT_INVALID
    assert "bootstrap.sh --kubelet-extra-args[1]: 'false' is not a flag" in result.err
    nodeconfig = (
        CLUSTER + "  kubelet:\n    flags: [--node-labels, team=a, --feature-gates=X=true, --feature-gates=Y=true]\n"
    )
    result = agent.run(user_data=nodeconfig)
    assert result.code == EXIT_OK, result.err
    assert "--node-labels=team=a --feature-gates=X=true,Y=true" in (agent.root / ENVIRONMENT).read_text()


# --- shell user data -------------------------------------------------------------------------------------------


def test_conditional_expansion_is_split_into_words_as_bash_splits_it():
    script = (
        "#!/bin/bash\nLABELS=team=a\nEXTRA='--b 2'\n"
        '/etc/eks/bootstrap.sh demo ${LABELS:+--kubelet-extra-args "--node-labels=$LABELS"} ${NOPE:+--x "y"} $EXTRA\n'
    )
    (call,) = find_bootstrap_calls(script)
    assert call.args == ["demo", "--kubelet-extra-args", "--node-labels=team=a", "--b", "2"]
    assert call.unresolved == [] and call.unset == []


def test_what_static_reading_cannot_know_refuses_the_call_with_its_line(agent):
    script = (
        f"#!/bin/bash\nset -e\nCA=$(cat /tmp/ca)\n\n/etc/eks/bootstrap.sh demo --apiserver-endpoint {ENDPOINT} "
        "--b64-cluster-ca $CA\n"
    )
    result = agent.run(user_data=script)
    assert result.code == EXIT_INVALID
    assert "user data line 5: the bootstrap.sh call cannot be read statically: $CA: assigned on line 3" in result.err
    assert written(agent) == []
    for construct in ('"$@"', "$1", "${CLUSTER_NAME%-x}", "${REQUIRED:?set it}"):
        result = agent.run(user_data=f"#!/bin/bash\n/etc/eks/bootstrap.sh demo {construct} --b64-cluster-ca {CA}\n")
        assert result.code == EXIT_INVALID, construct
        assert "user data line 2: the bootstrap.sh call cannot be read statically" in result.err


def test_an_unset_variable_expands_to_nothing_with_a_warning():
    diagnostics = Diagnostics()
    (call,) = find_bootstrap_calls(f"/etc/eks/bootstrap.sh demo $MISSING --b64-cluster-ca {CA}\n")
    assert call.args == ["demo", "--b64-cluster-ca", CA]  # as bash: the unquoted empty expansion is no word
    assert call.unset == ["$MISSING is not set in the script (it expands to nothing)"]
    assert diagnostics.errors == []
