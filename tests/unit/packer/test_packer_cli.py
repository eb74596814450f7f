"""`nodeforge build-vars`: checks the inputs, resolves the Kubernetes minor, prints a command Packer accepts."""

from __future__ import annotations

import json
import shlex

import pytest
from packer_support import KUBERNETES_DIR, REPO, needs_packer, run_packer
from typer.testing import CliRunner

from nodeforge import packer_vars
from nodeforge.packer_cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["build-vars", *args], catch_exceptions=False)


@pytest.fixture(autouse=True)
def in_checkout(monkeypatch):
    monkeypatch.chdir(REPO)


def test_prints_the_packer_build_command():
    result = invoke("1.31", "--os", "al2023", "--arch", "arm64", "--git-commit", "0123abcd")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "packer build -var-file=packer/kubernetes/1.31.pkrvars.hcl -var os=al2023 -var arch=arm64 "
        "-var region=us-west-2 -var git_commit=0123abcd packer/eks-node"
    )
    assert "packer init packer/eks-node" in result.stderr


def test_lists_and_maps_are_quoted_for_the_shell():
    result = invoke(
        "1.30",
        "--region",
        "eu-central-1",
        "--ami-regions",
        "eu-west-1,us-east-1",
        "--ami-users",
        "123456789012",
        "--kms-key-id",
        "alias/nodeforge",
        "--region-kms-key-id",
        "eu-west-1=alias/nodeforge",
        "--region-kms-key-id",
        "us-east-1=alias/nodeforge",
        "--root-volume-size",
        "50",
        "--git-commit",
        "abc",
    )
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.stdout)
    assert "ami_regions=" + json.dumps(["eu-west-1", "us-east-1"], separators=(",", ":")) in argv
    assert 'region_kms_key_ids={"eu-west-1":"alias/nodeforge","us-east-1":"alias/nodeforge"}' in argv
    assert "root_volume_size=50" in argv
    assert not any(item.startswith("root_volume_iops") for item in argv), "defaults are left to the template"


def test_json_output_has_the_resolved_variables():
    result = invoke("1.29", "--arch", "arm64", "--os", "al2", "--output", "json", "--git-commit", "abc")
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["var_file"] == "packer/kubernetes/1.29.pkrvars.hcl"
    assert plan["template"] == "packer/eks-node"
    assert plan["variables"] == {
        "kubernetes_version": "1.29",
        "kubelet_version": "1.29.10",
        "kubelet_build_date": "2024-12-12",
        "os": "al2",
        "arch": "arm64",
        "region": "us-west-2",
        "git_commit": "abc",
    }
    assert plan["derived"] == {
        "instance_type": "m6g.large",
        "source_ami_name": "amzn2-ami-kernel-5.10-hvm-2.0.*-arm64-gp2",
        "source_ami_owner": "amazon",
        "os_version": "2",
        "ssh_username": "ec2-user",
    }
    assert shlex.split(plan["command_line"]) == plan["command"]


def test_absolute_paths_outside_the_checkout(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NODEFORGE_REPO", str(REPO))
    result = invoke("1.31", "--git-commit", "abc")
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.stdout)
    assert argv[2] == f"-var-file={KUBERNETES_DIR / '1.31.pkrvars.hcl'}"
    assert argv[-1] == str(REPO / "packer" / "eks-node")


def test_git_commit_defaults_to_the_checkout():
    result = invoke("1.31", "--output", "json")
    commit = json.loads(result.stdout)["variables"]["git_commit"]
    assert commit == packer_vars.git_commit(REPO)
    assert commit != ""


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["1.31", "--os", "ubuntu"], "--os"),
        (["1.31", "--arch", "aarch64"], "--arch"),
        (["1.31", "--region", "mars"], "--region"),
        (["1.31", "--region", "us-west-2a"], "--region"),
        (["v1.31"], "KUBERNETES_VERSION"),
        (["1.31.3"], "KUBERNETES_VERSION"),
        (["1.27"], "KUBERNETES_VERSION"),
        (["1.31", "--root-volume-size", "19"], "--root-volume-size"),
        (["1.31", "--root-volume-size", "1025"], "--root-volume-size"),
        (["1.31", "--root-volume-iops", "16000"], "--root-volume-iops"),
        (["1.31", "--root-volume-throughput", "1000"], "--root-volume-throughput"),
        (["1.31", "--ami-regions", "us-east-1,bogus"], "--ami-regions"),
        (["1.31", "--ami-regions", "us-east-1", "--ami-regions", "us-east-1"], "--ami-regions"),
        (["1.31", "--ami-regions", "us-west-2"], "--ami-regions"),
        (["1.31", "--region", "us-gov-west-1", "--ami-regions", "us-east-1"], "--ami-regions"),
        (["1.31", "--ami-users", "12345"], "--ami-users"),
        (["1.31", "--ami-users", "123456789012"], "--kms-key-id"),
        (
            ["1.31", "--ami-users", "123456789012", "--kms-key-id", "alias/k", "--ami-regions", "us-east-1"],
            "--region-kms-key-id",
        ),
        (["1.31", "--kms-key-id", "my-key"], "--kms-key-id"),
        (["1.31", "--ami-regions", "us-east-1", "--region-kms-key-id", "junk"], "--region-kms-key-id"),
        (["1.31", "--ami-regions", "us-east-1", "--region-kms-key-id", "eu-west-1=alias/k"], "--region-kms-key-id"),
        (["1.31", "--ami-regions", "us-east-1,eu-west-1", "--region-kms-key-id", "eu-west-1="], "--region-kms-key-id"),
        (["1.31", "--arch", "arm64", "--instance-type", "m6i.large"], "--instance-type"),
        (["1.31", "--instance-type", "c7g.large"], "--instance-type"),
        (["1.31", "--instance-type", "large"], "--instance-type"),
        (["1.31", "--source-ami-id", "ami-xyz"], "--source-ami-id"),
        (["1.31", "--containerd-package-version", "1.7.*"], "--containerd-package-version"),
        (["1.31", "--artifact-source", "relative/dir"], "--artifact-source"),
        (["1.31", "--deprecate-at", "2027-13-01T00:00:00Z"], "--deprecate-at"),
        (["1.31", "--subnet-id", "subnet-1"], "--subnet-id"),
        # combinations that cannot build (the template refuses the same: test_eks_node_packer REFUSAL_CASES)
        (["1.33", "--os", "al2"], "--os"),
        (["1.35", "--os", "al2", "--arch", "arm64"], "--os"),
        (["1.31", "--os", "al2", "--containerd-package-version", "2.1.5"], "--containerd-package-version"),
        (["1.31", "--kubelet-version", "1.31.3"], "--kubelet-version"),
        (["1.31", "--ssh-interface", "ssm"], "--ssh-interface"),
        (["1.31", "--ssh-interface", "session_manager"], "--iam-instance-profile"),
        (
            ["1.31", "--ssh-interface", "public_ip", "--associate-public-ip-address", "false"],
            "--associate-public-ip-address",
        ),
        (["1.31", "--associate-public-ip-address", "yes"], "--associate-public-ip-address"),
        (["1.31", "--security-group-ids", "sg-1"], "--security-group-ids"),
        (["1.31", "--ssh-source-cidrs", "10.0.0.0/33"], "--ssh-source-cidrs"),
        (["1.31", "--security-group-ids", "sg-01234567", "--ssh-source-cidrs", "10.0.0.0/8"], "--ssh-source-cidrs"),
        (["1.31", "--subnet-id", "subnet-01234567", "--subnet-filter", "tag:Name=b"], "--subnet-filter"),
        (["1.31", "--subnet-filter", "tag:Name"], "--subnet-filter"),
        (["1.31", "--vpc-filter", "tag:Name=build"], "--vpc-filter"),
        (["1.31", "--ec2-endpoint", "http://ec2.example"], "--ec2-endpoint"),
        (["1.31", "--source-ami-owners", "amzn"], "--source-ami-owners"),
        (["1.31", "--root-volume-type", "st1"], "--root-volume-type"),
        (["1.31", "--root-volume-type", "gp2", "--root-volume-iops", "4000"], "--root-volume-iops"),
        (["1.31", "--root-volume-type", "io2", "--root-volume-throughput", "250"], "--root-volume-throughput"),
        (["1.31", "--root-volume-type", "io1", "--root-volume-iops", "3001"], "--root-volume-iops"),
        (["1.33", "--kubelet-version", "latest", "--artifact-source", "/nonexistent/folder"], "--kubelet-version"),
    ],
)
def test_bad_input_names_the_option(args, option):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for {option}" in " ".join(result.output.split()), result.output


def test_graviton_families():
    for name in ("a1.large", "m6g.large", "m7gd.xlarge", "c6gn.large", "t4g.micro", "im4gn.large", "x2gd.large"):
        assert packer_vars.is_graviton(name), name
    for name in ("m6i.large", "g5.xlarge", "g4dn.xlarge", "c7a.large", "r7iz.large", "u-6tb1.metal", "t3.micro"):
        assert not packer_vars.is_graviton(name), name


def test_inconsistent_vars_file_is_refused(tmp_path, monkeypatch):
    (tmp_path / "packer" / "kubernetes").mkdir(parents=True)
    (tmp_path / "packer" / "kubernetes" / "1.31.pkrvars.hcl").write_text(
        'kubernetes_version = "1.31"\nkubelet_version = "1.30.7"\nkubelet_build_date = "2024-02-30"\n'
    )
    with pytest.raises(packer_vars.PackerVarsError) as caught:
        packer_vars.plan_build(packer_vars.BuildRequest("1.31", git_commit="abc"), root=tmp_path)
    assert caught.value.option == "KUBERNETES_VERSION"
    assert "kubelet_version = '1.30.7'" in caught.value.message
    assert "kubelet_build_date = '2024-02-30'" in caught.value.message


def test_vars_file_reader_refuses_what_it_cannot_read(tmp_path):
    path = tmp_path / "1.99.pkrvars.hcl"
    path.write_text('kubernetes_version = "1.99"\nkubelet_version = var.other\n')
    with pytest.raises(ValueError, match="expected name"):
        packer_vars.read_vars_file(path)


@needs_packer
def test_the_printed_command_is_valid_for_packer(legacy_root):
    """The exact command line, with `build` turned into `validate`, run against the 1.6.6 copy."""
    result = invoke(
        "1.32",
        "--os",
        "al2",
        "--arch",
        "arm64",
        "--region",
        "eu-central-1",
        "--ami-regions",
        "eu-west-1,eu-north-1",
        "--ami-users",
        "123456789012",
        "--kms-key-id",
        "alias/nodeforge",
        "--region-kms-key-id",
        "eu-west-1=alias/nodeforge",
        "--region-kms-key-id",
        "eu-north-1=arn:aws:kms:eu-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "--root-volume-size",
        "40",
        "--root-volume-iops",
        "4000",
        "--root-volume-throughput",
        "250",
        "--containerd-package-version",
        "1.7.27",
        "--instance-type",
        "c7g.large",
        "--git-commit",
        "abc",
    )
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.stdout)
    assert argv[:2] == ["packer", "build"]
    proc = run_packer(["validate", *argv[2:]], cwd=legacy_root, stub_ansible=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_latest_resolves_the_newest_build_and_pins_it(tmp_path):
    from nodeforge.bake.fixtures import Release, build_artifact_tree
    from nodeforge.bake.mirror import ArtifactMirror

    build_artifact_tree(tmp_path, [Release("1.34.9", "2026-07-05"), Release("1.34.11", "2026-08-20")])
    with ArtifactMirror(tmp_path) as mirror:
        result = invoke("1.34", "--kubelet-version", "latest", "--artifact-source", mirror.url, "--output", "json")
    assert result.exit_code == 0, result.output
    variables = json.loads(result.stdout)["variables"]
    assert (variables["kubelet_version"], variables["kubelet_build_date"]) == ("1.34.11", "2026-08-20")
    command = json.loads(result.stdout)["command"]
    assert "kubelet_version=1.34.11" in command and "kubelet_build_date=2026-08-20" in command
    # without --kubelet-version the vars file's pinned build stays
    pinned = json.loads(invoke("1.34", "--output", "json").stdout)["variables"]
    assert (pinned["kubelet_version"], pinned["kubelet_build_date"]) == ("1.34.9", "2026-07-05")


@needs_packer
def test_the_printed_command_with_network_options_is_valid_for_packer(legacy_root):
    result = invoke(
        "1.35", "--arch", "arm64", "--git-commit", "abc",
        "--ssh-interface", "session_manager", "--iam-instance-profile", "nodeforge-builder",
        "--associate-public-ip-address", "false", "--security-group-ids", "sg-0123456789abcdef0",
        "--subnet-filter", "tag:Name=build-*", "--vpc-filter", "tag:Name=build",
        "--ec2-endpoint", "https://ec2.us-west-2.amazonaws.com", "--source-ami-owners", "amazon,123456789012",
        "--root-volume-type", "io1", "--root-volume-iops", "3000", "--root-volume-size", "60",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    argv = shlex.split(result.stdout)
    proc = run_packer(["validate", *argv[2:]], cwd=legacy_root, stub_ansible=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
