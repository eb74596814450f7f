"""Bad input: a clear error naming every bad field, the right exit code, and nothing written."""

from __future__ import annotations

import pytest
from bootstrap_helpers import INPUTS

from nodeforge.bootstrap.errors import EXIT_IMDS, EXIT_INVALID

CA = (INPUTS / "ca.b64").read_text().strip()


def nodeconfig(cluster: str, extra: str = "") -> str:
    return f"apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n{cluster}{extra}"


ENDPOINT = "    apiServerEndpoint: https://example.com\n"
GOOD_CLUSTER = f"    name: demo\n{ENDPOINT}    certificateAuthority: {CA}\n    cidr: 10.100.0.0/16\n"
LEGACY = f"#!/bin/bash\n/etc/eks/bootstrap.sh demo --b64-cluster-ca {CA} --apiserver-endpoint https://x"
MIME_HEAD = 'Content-Type: multipart/mixed; boundary="//"\n\n--//\nContent-Type: application/node.eks.aws\n'


BAD = {
    "malformed-mime-no-boundary": (
        "MIME-Version: 1.0\nContent-Type: multipart/mixed\n\n"
        "--//\nContent-Type: application/node.eks.aws\n\n{}\n--//--\n",
        ["no boundary"],
    ),
    "malformed-mime-no-parts": (
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="XYZ"\n\n--//\nnothing\n',
        ["no part delimited by '--XYZ'"],
    ),
    "mime-bad-base64-part": (
        'Content-Type: multipart/mixed; boundary="//"\n\n--//\nContent-Type: application/node.eks.aws\n'
        "Content-Transfer-Encoding: base64\n\n%%%not base64%%%\n--//--\n",
        ["Content-Transfer-Encoding base64 but the body is not base64"],
    ),
    "unknown-api-version": (
        "apiVersion: node.eks.aws/v1beta9\nkind: NodeConfig\nspec: {}\n",
        ["apiVersion 'node.eks.aws/v1beta9' is not supported (expected node.eks.aws/v1alpha1)"],
    ),
    "wrong-kind": ("apiVersion: node.eks.aws/v1alpha1\nkind: Pod\nspec: {}\n", ["kind 'Pod' is not supported"]),
    "missing-ca": (
        nodeconfig("    name: demo\n    apiServerEndpoint: https://example.com\n    cidr: 10.100.0.0/16\n"),
        ["spec.cluster.certificateAuthority: required"],
    ),
    "bad-endpoint-and-cidr": (
        nodeconfig(
            "    name: demo\n    apiServerEndpoint: ftp://example.com\n"
            f"    certificateAuthority: {CA}\n    cidr: 10.100.0.0/99\n"
        ),
        [
            "spec.cluster.apiServerEndpoint: must be an http(s) URL",
            "spec.cluster.cidr: '10.100.0.0/99' is not a CIDR block",
        ],
    ),
    "wrong-types": (
        nodeconfig(
            f"    name: [demo]\n{ENDPOINT}    certificateAuthority: {CA}\n    cidr: 10.100.0.0/16\n",
            "  kubelet:\n    flags: --v=2\n    config: [a]\n  featureGates:\n    InstanceIdNodeName: 'yes'\n",
        ),
        [
            "spec.cluster.name: must be a string, not a list",
            "spec.kubelet.flags: must be a list of strings, not a string",
            "spec.kubelet.config: must be a mapping, not a list",
            "spec.featureGates.InstanceIdNodeName: must be a boolean, not a string",
        ],
    ),
    "bad-containerd-toml": (
        nodeconfig(GOOD_CLUSTER, "  containerd:\n    config: |\n      [plugins\n"),
        ["spec.containerd.config: not valid TOML"],
    ),
    "bad-yaml": (
        "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec: {cluster: [\n",
        ["not valid YAML or JSON"],
    ),
    "empty": ("   \n", ["the user data is empty"]),
    "cloud-config-only": ("#cloud-config\npackages: [jq]\n", ["no node configuration in the user data"]),
    "shell-without-bootstrap": ("#!/bin/bash\necho hi\n", ["no node configuration in the user data"]),
    "legacy-missing-endpoint": (
        "#!/bin/bash\n/etc/eks/bootstrap.sh demo --b64-cluster-ca abc=\n",
        ["--apiserver-endpoint missing"],
    ),
    "legacy-dockerd": (
        LEGACY + " --container-runtime dockerd\n",
        ["'dockerd' is not supported, only containerd"],
    ),
    "legacy-ipv6-without-cidr": (
        LEGACY + " --ip-family ipv6\n",
        ["one of --service-ipv6-cidr or --dns-cluster-ip is needed"],
    ),
    "legacy-twice": (
        f"#!/bin/bash\n/etc/eks/bootstrap.sh a --b64-cluster-ca {CA} --apiserver-endpoint https://x\n"
        f"/etc/eks/bootstrap.sh b --b64-cluster-ca {CA} --apiserver-endpoint https://x\n",
        ["calls bootstrap.sh more than once"],
    ),
    "mixed-dialects": (
        MIME_HEAD + "\n" + nodeconfig(GOOD_CLUSTER) + f"\n--//\nContent-Type: text/x-shellscript\n\n{LEGACY}\n--//--\n",
        ["mixes NodeConfig and bootstrap.sh call"],
    ),
    "toml-bad-taint": (
        f"[settings.kubernetes]\ncluster-name = 'a'\napi-server = 'https://x'\ncluster-certificate = '{CA}'\n"
        "[settings.kubernetes.node-taints]\nfoo = ['bar:Sometimes']\n",
        ["settings.kubernetes.node-taints.foo: 'bar:Sometimes' must end in :NoSchedule"],
    ),
    "toml-invalid": ("[settings.kubernetes]\ncluster-name = \n", ["not valid TOML"]),
    "not-utf8": (b"\xff\xfe\x00garbage", ["neither UTF-8 text"]),
    "flag-with-space": (
        nodeconfig(GOOD_CLUSTER, "  kubelet:\n    flags:\n      - '--node-labels=\"a=b c\"'\n"),
        ["contains whitespace"],
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_is_refused_and_nothing_is_written(agent, name):
    user_data, messages = BAD[name]
    result = agent.run(user_data=user_data)
    assert result.code == EXIT_INVALID, result.out + result.err
    for message in messages:
        assert message in result.err
    assert list(agent.root.iterdir()) == []


def test_unknown_field_warns_or_fails_with_strict(agent):
    user_data = nodeconfig(GOOD_CLUSTER + "    name-not-real: x\n")
    result = agent.run(user_data=user_data)
    assert result.code == 0
    assert "spec.cluster.name-not-real: unknown field (ignored)" in result.err
    for path in agent.root.iterdir():
        import shutil

        shutil.rmtree(path)
    result = agent.run("--strict", user_data=user_data)
    assert result.code == EXIT_INVALID
    assert "spec.cluster.name-not-real: unknown field" in result.err
    assert list(agent.root.iterdir()) == []


def test_no_user_data(agent):
    result = agent.run()
    assert result.code == EXIT_INVALID
    assert "no user data" in result.err
    assert list(agent.root.iterdir()) == []


def test_imds_unreachable_is_a_clear_error(agent):
    agent.imds.user_data = nodeconfig(GOOD_CLUSTER).encode()
    result = agent.run("--imds-endpoint", "http://127.0.0.1:9")
    assert result.code == EXIT_IMDS
    assert "instance metadata service at http://127.0.0.1:9 unreachable after 1 attempt(s)" in result.err
    assert list(agent.root.iterdir()) == []


def test_missing_metadata_is_an_imds_error(agent):
    del agent.imds.metadata["placement/availability-zone"]
    result = agent.run(user_data=nodeconfig(GOOD_CLUSTER))
    assert result.code == EXIT_IMDS
    assert "placement/availability-zone" in result.err
    assert list(agent.root.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "unrecognized argument: --bogus"),
        (["--imds-retries", "x"], "argument --imds-retries: invalid int value: 'x'"),
        (["--cis-mode=maybe"], "argument --cis-mode: invalid choice: 'maybe'"),
        (["--root"], "argument --root: expected one argument"),
        (["--dry-run=yes"], "argument --dry-run: ignored explicit argument 'yes'"),
    ],
)
def test_command_line_errors_are_usage_errors(args, message):
    import io

    from nodeforge.bootstrap.cli import main

    out, err = io.StringIO(), io.StringIO()
    assert main(args, out=out, err=err) == 2
    assert message in err.getvalue() and err.getvalue().startswith("usage: ")
    assert main(["--help"], out=out, err=err) == 0 and "--kubeconfig-auth" in out.getvalue()
