"""packer/eks-node checked by the Packer on this machine (1.6.6): formatting, validation of a derived copy for
every OS x arch and Kubernetes minor, bad inputs rejected, conditions and locals evaluated by Packer itself.

1.6.6 predates the plugin block and a few amazon-ebs options, so it validates a copy without them (see
legacy.py); the Python tests in test_eks_node_template.py check those parts of the real template.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from packer_legacy import (
    LEGACY_DROPPED_SOURCE_ARGUMENTS,
    LEGACY_DROPPED_SOURCE_BLOCKS,
    derive_dry_run_copy,
    derive_legacy_copy,
)
from packer_support import (
    COMBOS,
    KUBERNETES_DIR,
    PACKER_DIR,
    TEMPLATE_DIR,
    load_template,
    needs_packer,
    run_packer,
    variable_blocks,
)

from nodeforge import packer_vars

pytestmark = needs_packer
WORKERS = 4


def validate(
    root: Path, var_file: Path, variables: dict[str, str], *, stub_ansible: bool
) -> subprocess.CompletedProcess[str]:
    args = ["validate", f"-var-file={var_file}"]
    for name, value in variables.items():
        args += ["-var", f"{name}={value}"]
    return run_packer([*args, "packer/eks-node"], cwd=root, stub_ansible=stub_ansible)


def run_all(
    root: Path, cases: dict[str, tuple[Path, dict[str, str]]], *, real_ansible: frozenset[str] = frozenset()
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Validate every case, a few at a time. Preparing the ansible provisioner runs `ansible-playbook --version`
    (about 1 s); cases not in real_ansible get the stand-in of legacy_root, to keep the suite fast."""
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {
            key: pool.submit(validate, root, var_file, variables, stub_ansible=key not in real_ansible)
            for key, (var_file, variables) in cases.items()
        }
        return {key: future.result() for key, future in futures.items()}


# --- formatting ----------------------------------------------------------------------------------------------


def test_packer_fmt_clean():
    """`packer fmt -check -recursive packer/`; 1.6.6 has no -recursive, so each directory in turn there."""
    help_text = run_packer(["fmt", "-h"], cwd=PACKER_DIR).stderr + run_packer(["fmt", "-h"], cwd=PACKER_DIR).stdout
    if "-recursive" in help_text:
        targets = [["-recursive", str(PACKER_DIR)]]
    else:
        directories = sorted({path.parent for path in PACKER_DIR.rglob("*.hcl")})
        assert {TEMPLATE_DIR, KUBERNETES_DIR, PACKER_DIR} <= set(directories)
        targets = [[str(directory)] for directory in directories]
    for target in targets:
        proc = run_packer(["fmt", "-check", "-diff", *target], cwd=PACKER_DIR)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# --- the derived copy ----------------------------------------------------------------------------------------


def test_legacy_copy_drops_only_what_1_6_6_lacks(tmp_path, template):
    removed = derive_legacy_copy(TEMPLATE_DIR, tmp_path / "eks-node")
    assert sorted(removed) == sorted(["packer", *LEGACY_DROPPED_SOURCE_ARGUMENTS, *LEGACY_DROPPED_SOURCE_BLOCKS])
    real, copy = template, load_template(tmp_path / "eks-node")
    assert "packer" not in copy
    for key in ("variable", "locals", "build"):
        assert copy[key] == real[key], f"{key} blocks must be kept as they are"
    real_source = real["source"][0]["amazon-ebs"]["eks-node"]
    copy_source = copy["source"][0]["amazon-ebs"]["eks-node"]
    dropped = set(LEGACY_DROPPED_SOURCE_ARGUMENTS) | set(LEGACY_DROPPED_SOURCE_BLOCKS)
    assert {key: value for key, value in real_source.items() if key not in dropped} == copy_source


# --- packer validate -----------------------------------------------------------------------------------------


def minor_of(path: Path) -> int:
    return int(path.name.removesuffix(".pkrvars.hcl").split(".")[1])


# Every minor once and every OS x arch at least once (AL2 only up to 1.32: see the refusals below).
_FILES = sorted(KUBERNETES_DIR.glob("*.pkrvars.hcl"), key=minor_of)
_OLD = [path for path in _FILES if minor_of(path) <= 32]
_NEW = [path for path in _FILES if minor_of(path) > 32]
GOOD_CASES = {
    f"{path.name.removesuffix('.pkrvars.hcl')}-{os_name}-{arch}": (path, {"os": os_name, "arch": arch})
    for path, (os_name, arch) in [
        *zip(_OLD, [*COMBOS, *COMBOS], strict=False),
        *zip(_NEW, [combo for combo in COMBOS if combo[0] == "al2023"] * 2, strict=False),
    ]
}
GOOD_CASES["1.31-all-options"] = (
    KUBERNETES_DIR / "1.31.pkrvars.hcl",
    {
        "os": "al2",
        "arch": "arm64",
        "region": "eu-central-1",
        "instance_type": "c7g.xlarge",
        "ami_regions": '["eu-west-1","us-east-1"]',
        "ami_users": '["123456789012"]',
        "kms_key_id": "arn:aws:kms:eu-central-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        # (1.6.6's amazon builder predates mrk- multi-Region key ids; the conditions accept them, see below)
        "region_kms_key_ids": (
            '{"eu-west-1"="alias/nodeforge","us-east-1"="arn:aws:kms:us-east-1:123456789012:alias/nf"}'
        ),
        "root_volume_size": "64",
        "root_volume_iops": "6000",
        "root_volume_throughput": "500",
        "containerd_package_version": "1.7.27",
        "time_sync_servers": '["169.254.169.123","time.aws.com"]',
        "ssh_source_cidrs": '["203.0.113.0/24"]',
        "ssh_interface": "session_manager",
        "iam_instance_profile": "nodeforge-builder",
        "associate_public_ip_address": "false",
        "ec2_endpoint": "https://vpce-0123-abcd.ec2.eu-central-1.vpce.amazonaws.com",
        "source_ami_owners": '["amazon","123456789012"]',
        "root_volume_type": "gp3",
        "subnet_filter": '{"tag:Name"="build-*"}',
        "vpc_filter": '{"tag:Name"="build"}',
        "source_ami_id": "ami-0123456789abcdef0",
        "deprecate_at": "2027-01-01T00:00:00Z",
        "ami_org_arns": '["arn:aws:organizations::123456789012:organization/o-abc123def4"]',
        "security_group_ids": "[]",
        "extra_tags": '{"team"="platform"}',
        "build_id": "ci-42",
        "git_commit": "0123abcd",
        "artifact_source": "/srv/eks-artifacts",
        "sandbox_image_archive_path": "images/pause-3.10.oci.tar",
    },
)


@pytest.fixture(scope="module")
def good_results(legacy_root):
    return run_all(legacy_root, GOOD_CASES, real_ansible=frozenset({"1.31-all-options"}))


def test_every_minor_and_combo_is_covered():
    minors = {key.split("-")[0] for key in GOOD_CASES}
    assert minors == {path.name.removesuffix(".pkrvars.hcl") for path in KUBERNETES_DIR.glob("*.pkrvars.hcl")}
    assert {(variables["os"], variables["arch"]) for _, variables in GOOD_CASES.values()} == set(COMBOS)


@pytest.mark.parametrize("case", sorted(GOOD_CASES))
def test_packer_validates(good_results, case):
    proc = good_results[case]
    assert proc.returncode == 0, proc.stdout + proc.stderr


# (variable, value, what the error must say): the template's variable validations.
BAD_CASES = [
    ("os", "ubuntu", "The os must be al2023 or al2"),
    ("os", "AL2023", "The os must be al2023 or al2"),
    ("arch", "aarch64", "The arch must be x86_64 or arm64"),
    ("arch", "amd64", "The arch must be x86_64 or arm64"),
    ("region", "us-west", "The region must be an AWS region"),
    ("region", "US-WEST-2", "The region must be an AWS region"),
    ("region", "mars-1", "The region must be an AWS region"),
    ("region", "us-west-2a", "The region must be an AWS region"),
    ("kubernetes_version", "v1.31", "The kubernetes_version must be a Kubernetes minor version"),
    ("kubernetes_version", "1.31.3", "The kubernetes_version must be a Kubernetes minor version"),
    ("kubernetes_version", "1.031", "The kubernetes_version must be a Kubernetes minor version"),
    ("kubernetes_version", "2.1", "The kubernetes_version must be a Kubernetes minor version"),
    ("kubelet_version", "1.31", "The kubelet_version must be a full version"),
    ("kubelet_build_date", "2024-02-30", "The kubelet_build_date must be a date"),
    ("root_volume_size", "19", "The root_volume_size must be a whole number of GiB from 20 to 1024"),
    ("root_volume_size", "1025", "The root_volume_size must be a whole number of GiB from 20 to 1024"),
    ("root_volume_size", "30.5", "The root_volume_size must be a whole number of GiB from 20 to 1024"),
    ("root_volume_iops", "2999", "The root_volume_iops must be a whole number from 3000 to 16000"),
    ("root_volume_throughput", "1001", "The root_volume_throughput must be a whole number of MiB/s"),
    ("ami_regions", '["us-east-1","useast1"]', "The ami_regions must be distinct AWS region names"),
    ("ami_regions", '["us-east-1","us-east-1"]', "The ami_regions must be distinct AWS region names"),
    ("ami_users", '["12345"]', "The ami_users must be 12-digit AWS account ids"),
    ("kms_key_id", "my-key", "The kms_key_id must be empty, a key id"),
    ("region_kms_key_ids", '{"eu-west-1"="arn:aws:kms:us-east-1:123456789012:key/x"}', "The region_kms_key_ids"),
    ("instance_type", "M6I.LARGE", "The instance_type must be empty or an EC2 instance type"),
    ("source_ami_id", "ami-xyz", "The source_ami_id must be empty or an AMI id"),
    ("subnet_id", "subnet-1", "The subnet_id must be empty or a subnet id"),
    ("containerd_package_version", "1.7.*", "The containerd_package_version must be empty or a package version"),
    ("time_sync_servers", "[]", "The time_sync_servers must list at least one"),
    ("ssh_interface", "ssm", "The ssh_interface must be empty, public_ip"),
    ("ssh_source_cidrs", '["10.0.0.0/33"]', "The ssh_source_cidrs must be CIDR blocks"),
    ("deprecate_at", "next year", "The deprecate_at must be empty or an RFC 3339 time"),
    ("artifact_source", "relative/dir", "The artifact_source must be an http(s) URL or an absolute folder"),
    ("extra_tags", '{"aws:owner"="me"}', "The extra_tags must have at most 30 entries"),
    ("image_name_prefix", "bad name", "The image_name_prefix must be 3 to 64"),
    ("manifest_path", "out.txt", "The manifest_path must be a path ending in .json"),
    ("ami_org_arns", '["o-abc123"]', "The ami_org_arns must be organization ARNs"),
    ("ami_ou_arns", '["ou-ab12-cd34ef56"]', "The ami_ou_arns must be organizational unit ARNs"),
    ("source_ami_name", "al2023 ami", "The source_ami_name must be at most 128 characters"),
    ("iam_instance_profile", "builder profile!", "The iam_instance_profile must be an instance profile name"),
    ("build_id", "build 42", "The build_id must be at most 40"),
    ("git_commit", "abc def", "The git_commit must be 1 to 64 characters without spaces"),
    ("kubelet_version", "latest", "nodeforge build-vars MINOR --kubelet-version latest"),
    ("subnet_filter", '{"tag:Name"=""}', "The subnet_filter must map non-empty filter names"),
    ("vpc_filter", '{""="x"}', "The vpc_filter must map non-empty filter names"),
    ("associate_public_ip_address", "yes", "The associate_public_ip_address must be empty, true or false"),
    ("security_group_ids", '["sg-12"]', "The security_group_ids must be security group ids"),
    ("ec2_endpoint", "http://ec2.example", "The ec2_endpoint must be empty or an https URL"),
    ("source_ami_owners", '["amzn"]', "The source_ami_owners must list 12-digit account ids"),
    ("source_ami_owners", "[]", "The source_ami_owners must list 12-digit account ids"),
    ("root_volume_type", "st1", "The root_volume_type must be gp3, gp2, io1 or io2"),
    ("nodeforge_command", "", "The nodeforge_command must be a non-empty command"),
    ("sandbox_image_archive_path", "/abs/pause.tar", "The sandbox_image_archive_path must be empty or a relative"),
]
# Combinations of valid variables that cannot build: the template's refusals (locals.pkr.hcl refusal_checks).
REFUSAL = "CANNOT BUILD:"
REFUSAL_CASES = [
    ("1.33", {"os": "al2"}, "os = al2 cannot run Kubernetes 1.33 or later"),
    ("1.35", {"os": "al2", "arch": "arm64"}, "os = al2 cannot run Kubernetes 1.33 or later"),
    ("1.31", {"os": "al2", "containerd_package_version": "2.1.5"}, "containerd_package_version 2.x cannot be"),
    ("1.31", {"kubelet_version": "1.30.7"}, "kubelet_version must be a build of kubernetes_version"),
    ("1.31", {"ssh_interface": "session_manager"}, "session_manager needs iam_instance_profile"),
    ("1.31", {"ssh_interface": "public_ip", "associate_public_ip_address": "false"}, "needs a public address"),
    (
        "1.31",
        {"security_group_ids": '["sg-0123456789abcdef0"]', "ssh_source_cidrs": '["10.0.0.0/8"]'},
        "ssh_source_cidrs only apply to the temporary security group",
    ),
    ("1.31", {"subnet_id": "subnet-01234567", "subnet_filter": '{"tag:a"="b"}'}, "subnet_id and subnet_filter"),
    ("1.31", {"vpc_filter": '{"tag:a"="b"}'}, "vpc_filter needs subnet_id or subnet_filter"),
    ("1.31", {"root_volume_type": "gp2", "root_volume_iops": "4000"}, "root_volume_iops applies to gp3, io1"),
    ("1.31", {"root_volume_type": "io2", "root_volume_throughput": "250"}, "root_volume_throughput applies to gp3"),
    ("1.31", {"root_volume_iops": "16000"}, "gp3 allows 500 IOPS per GiB"),
    ("1.31", {"root_volume_throughput": "1000"}, "gp3 allows 0.25 MiB/s per IOPS"),
    ("1.31", {"root_volume_type": "io1", "root_volume_iops": "3001"}, "io1 allows 50 IOPS per GiB"),
]
# The amazon builder's own cross-field checks (no single variable's validation can state them): valid variables.
BUILDER_CASES = [
    ({"ami_users": '["123456789012"]'}, "Cannot share AMI encrypted with default KMS key"),
    (
        {"region_kms_key_ids": '{"eu-west-1"="alias/x"}'},
        "Region eu-west-1 is in region_kms_key_ids but not in ami_regions",
    ),
    (
        {"ami_regions": '["eu-west-1","us-east-1"]', "region_kms_key_ids": '{"eu-west-1"="alias/x"}'},
        "Region us-east-1 is in ami_regions but not in region_kms_key_ids",
    ),
]
VALIDATION_RULE = "This was checked by the validation rule"


def bad_rounds() -> list[dict[str, str]]:
    """BAD_CASES packed into as few runs as possible: Packer reports every failing variable of a run, and a
    variable takes one value per run."""
    rounds: list[dict[str, str]] = []
    for name, value, _ in BAD_CASES:
        target = next((r for r in rounds if name not in r), None)
        if target is None:
            target = {}
            rounds.append(target)
        target[name] = value
    return rounds


@pytest.fixture(scope="module")
def bad_results(legacy_root):
    cases = {f"round{index}": (KUBERNETES_DIR / "1.31.pkrvars.hcl", r) for index, r in enumerate(bad_rounds())}
    cases |= {f"builder{index}": (KUBERNETES_DIR / "1.31.pkrvars.hcl", v) for index, (v, _) in enumerate(BUILDER_CASES)}
    cases |= {
        f"refusal{index}": (KUBERNETES_DIR / f"{minor}.pkrvars.hcl", v)
        for index, (minor, v, _) in enumerate(REFUSAL_CASES)
    }
    return run_all(legacy_root, cases)


@pytest.mark.parametrize("index", range(len(REFUSAL_CASES)))
def test_template_refuses_what_cannot_build(bad_results, index):
    reason = REFUSAL_CASES[index][2]
    proc = bad_results[f"refusal{index}"]
    out = flat(proc)
    assert proc.returncode != 0, out
    assert REFUSAL in out and reason in out, out
    assert out.count(";") == out.split(REFUSAL, 1)[1].count(";"), "one refusal, no others"


def flat(proc: subprocess.CompletedProcess[str]) -> str:
    return re.sub(r"\s+", " ", proc.stdout + proc.stderr)


def test_bad_rounds_reject_each_variable(bad_results):
    for index, variables in enumerate(bad_rounds()):
        proc = bad_results[f"round{index}"]
        assert proc.returncode != 0
        assert flat(proc).count(VALIDATION_RULE) == len(variables), "one validation failure per bad variable"


@pytest.mark.parametrize(("name", "value", "message"), BAD_CASES)
def test_packer_rejects_bad_input(bad_results, name, value, message):
    index = next(i for i, r in enumerate(bad_rounds()) if r.get(name) == value)
    out = flat(bad_results[f"round{index}"])
    assert message in out, out


@pytest.mark.parametrize(("variables", "message"), BUILDER_CASES)
def test_amazon_builder_rejects_bad_combination(bad_results, variables, message):
    proc = bad_results[f"builder{BUILDER_CASES.index((variables, message))}"]
    assert proc.returncode != 0
    assert message in flat(proc)


def test_every_validated_variable_has_a_bad_case(template):
    rejected = {name for name, _, _ in BAD_CASES}
    assert set(variable_blocks(template)) == rejected, "add a bad case for each new variable"


# --- conditions and locals as Packer evaluates them ----------------------------------------------------------


def console(root: Path, expression: str, variables: dict[str, str] | None = None) -> Any:
    args = ["console", f"-var-file={KUBERNETES_DIR / '1.31.pkrvars.hcl'}"]
    for name, value in (variables or {}).items():
        args += ["-var", f"{name}={value}"]
    proc = run_packer([*args, "packer/eks-node"], cwd=root, stdin=expression + "\n")
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stdout + proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hcl_string(value: str) -> str:
    assert "${" not in value and "%{" not in value
    return json.dumps(value)


# Samples for each pattern-checked variable; expected results come from the documented regular expressions
# (packer_vars holds the same patterns for the CLI).
PATTERN_SAMPLES: dict[str, tuple[re.Pattern[str] | Callable[[str], bool], list[str]]] = {
    "kubernetes_version": (
        packer_vars.KUBERNETES_MINOR_RE,
        ["1.31", "1.9", "1.100", "1.0", "1.031", "2.1", "1.", "1", "v1.31", "1.31.0", " 1.31", "1.3a", ""],
    ),
    "kubelet_version": (
        packer_vars.KUBELET_VERSION_RE,
        ["1.31.3", "10.0.0", "1.31", "1.31.3-eks", "1..3", "a.b.c", "1.31.3.4", ""],
    ),
    "kubelet_build_date": (
        packer_vars.is_build_date,
        ["2024-12-12", "2024-02-29", "2023-02-29", "2024-13-01", "2024-12-1", "24-12-12", "2024/12/12", "", "x" * 10],
    ),
    "region": (
        packer_vars.REGION_RE,
        [
            "us-east-1",
            "ap-southeast-2",
            "us-gov-west-1",
            "cn-northwest-1",
            "eu-central-2",
            "us-isob-east-1",
            "il-central-1",
            "us-west",
            "us-west-2a",
            "useast1",
            "u-east-1",
            "usa-east-1",
            "us-east-one",
            "US-east-1",
            "us--1",
            "us-gov-west-east-1",
            "",
        ],
    ),
    "kms_key_id": (
        re.compile(f"^$|{packer_vars.KMS_KEY_RE.pattern}"),
        [
            "",
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            "mrk-1234abcd12ab34cd56ef1234567890ab",
            "alias/nodeforge",
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/x",
            "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
            "arn:aws-cn:kms:cn-north-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:us-east-1:123456789012:key/not-a-key",
            "arn:aws:kms:us-east-1:123456789012:1234abcd-12ab-34cd-56ef-1234567890ab",
            "key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "alias/a:b",
            "1234ABCD-12ab-34cd-56ef-1234567890ab",
            "1234abcd-12ab-34cd-56ef-1234567890a",
            "mrk-123",
            "alias/",
            "alias/has space",
            "arn:aws:kms:us-east-1:1234:key/x",
            "arn:aws:s3:us-east-1:123456789012:key/x",
            "arn:aws:kms:us-east-1:123456789012:secret/x",
            "nodeforge",
        ],
    ),
    "instance_type": (
        re.compile(f"^$|{packer_vars.INSTANCE_TYPE_RE.pattern}"),
        ["", "m6i.large", "c7gn.16xlarge", "u-6tb1.metal", "m6i", "M6I.large", "m.large", "m6i.", "m6i.large.x"],
    ),
    "source_ami_id": (
        re.compile(f"^$|{packer_vars.AMI_ID_RE.pattern}"),
        ["", "ami-12345678", "ami-0123456789abcdef0", "ami-1234567", "ami-0123456789ABCDEF0", "ami-xyzxyzxy", "ami"],
    ),
    "subnet_id": (
        re.compile(f"^$|{packer_vars.SUBNET_ID_RE.pattern}"),
        ["", "subnet-12345678", "subnet-0123456789abcdef0", "subnet-1", "sg-12345678", "subnet-1234567g"],
    ),
    "containerd_package_version": (
        re.compile(f"^$|{packer_vars.CONTAINERD_VERSION_RE.pattern}"),
        ["", "1.7.27", "2.0", "1.7.27-1.amzn2023.0.1", "1:1.7.27", "v1.7.27", "1.7.*", "1.7 27", "x" * 65],
    ),
    "artifact_source": (
        packer_vars.ARTIFACT_SOURCE_RE,
        ["https://amazon-eks.s3.us-west-2.amazonaws.com", "http://127.0.0.1:8080", "/srv/x", "https://", "s3://b", ""],
    ),
}


@pytest.fixture(scope="module")
def condition_results(legacy_root, template):
    """Each variable's validation condition applied by Packer to every sample, in one console call."""
    variables = variable_blocks(template)
    parts = []
    for name, (_, samples) in PATTERN_SAMPLES.items():
        (validation,) = variables[name]["validation"]
        condition = validation["condition"].removeprefix("${").removesuffix("}")
        body = re.sub(rf"\bvar\.{name}\b(?![A-Za-z0-9_])", "sample", condition)
        assert body != condition
        parts.append(f"{name} = [for sample in [{', '.join(hcl_string(s) for s in samples)}] : {body}]")
    return console(legacy_root, f"jsonencode({{{', '.join(parts)}}})")


@pytest.mark.parametrize("name", sorted(PATTERN_SAMPLES))
def test_condition_agrees_with_its_pattern(condition_results, name):
    pattern, samples = PATTERN_SAMPLES[name]
    accepts = pattern.fullmatch if isinstance(pattern, re.Pattern) else pattern
    expected = [bool(accepts(sample)) for sample in samples]
    assert True in expected and False in expected, "samples must cover both outcomes"
    got = condition_results[name]
    disagree = [(s, g, e) for s, g, e in zip(samples, got, expected, strict=True) if g != e]
    assert not disagree, f"(sample, packer, pattern): {disagree}"


LOCALS = ("instance_type", "source_ami_name", "source_ami_owners", "image_name", "image_tags", "ansible_extra_vars")
LOCAL_CASES = [(*combo, "us-west-2") for combo in COMBOS] + [("al2", "arm64", "us-gov-east-1")]


def case_variables(os_name: str, arch: str, region: str) -> dict[str, str]:
    return {"os": os_name, "arch": arch, "region": region, "build_id": "b7", "git_commit": "c0ffee"}


@pytest.fixture(scope="module")
def packer_locals(legacy_root):
    """The locals as Packer resolves them, per case (with the playbook path), evaluated a few at a time."""
    names = [*LOCALS, "playbook_file"]
    expression = "jsonencode({" + ", ".join(f"{name} = local.{name}" for name in names) + "})"
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {case: pool.submit(console, legacy_root, expression, case_variables(*case)) for case in LOCAL_CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.parametrize(("os_name", "arch", "region"), LOCAL_CASES)
def test_packer_and_python_resolve_the_same_locals(legacy_root, packer_locals, resolver, os_name, arch, region):
    from_packer = dict(packer_locals[(os_name, arch, region)])
    playbook = from_packer.pop("playbook_file")
    scope, _ = resolver(**case_variables(os_name, arch, region))
    assert from_packer == {name: scope.local(name) for name in LOCALS}
    assert (legacy_root / playbook).resolve() == (legacy_root / "playbooks" / "node.yml").resolve()


# --- the post-processors, run -------------------------------------------------------------------------------


def test_post_processors_write_the_manifest_contract(tmp_path):
    """`packer build` of a dry-run copy (null source, no provisioners): Packer writes the manifest, the last
    post-processor merges the component manifest into it, and the catalog reads the result."""
    root = tmp_path / "checkout"
    (root / "packer").mkdir(parents=True)
    derive_dry_run_copy(TEMPLATE_DIR, root / "packer" / "eks-node", "ami-0123456789abcdef0")
    components = root / "build" / "eks-node" / "nodeforge-eks-node-1.31-al2-arm64-dry1.components.json"
    components.parent.mkdir(parents=True)
    packages = {"kernel": "5.10.230", "containerd": "1.7.27", "runc": "1.1.14"}
    components.write_text(json.dumps({"os": {"version": "2"}, "packages": packages}))
    # The tag-images step needs AWS: a stand-in nodeforge records how it is called (tests/unit/packer/test_ami_tags.py
    # runs the real command against moto).
    calls = tmp_path / "nodeforge-calls"
    stub = tmp_path / "nodeforge-stub"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    stub.chmod(0o755)
    proc = run_packer(
        [
            "build",
            f"-var-file={KUBERNETES_DIR / '1.31.pkrvars.hcl'}",
            "-var",
            "os=al2",
            "-var",
            "arch=arm64",
            "-var",
            "build_id=dry1",
            "-var",
            "git_commit=0123abcd",
            "-var",
            f"nodeforge_command={stub}",
            "packer/eks-node",
        ],
        cwd=root,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert calls.read_text() == "tag-images build/eks-node/manifest.json dry1\n", "tagged after the merge"
    document = json.loads((root / "build" / "eks-node" / "manifest.json").read_text())
    (build,) = document["builds"]
    assert build["custom_data"] == {
        "kubernetes_version": "1.31",
        "os": "al2",
        "arch": "arm64",
        "os_version": "2",
        "kubelet_version": "1.31.3",
        "kubelet_build_date": "2024-12-12",
        "containerd_version": "1.7.27",
        "runc_version": "1.1.14",
        "kernel_version": "5.10.230",
        "source_image": "ami-0123456789abcdef0",
        "git_commit": "0123abcd",
        "template": "eks-node",
        "build_id": "dry1",
        "image_name": "nodeforge-eks-node-1.31-al2-arm64-dry1",
    }
    catalog = pytest.importorskip("nodeforge.catalog.manifest")
    # As the amazon builder writes them (the null builder has no AMI).
    build |= {"builder_type": "amazon-ebs", "artifact_id": "us-west-2:ami-0fedcba9876543210"}
    (image,) = catalog.parse_manifest(json.dumps(document), source="dry-run")
    assert (image.kubernetes_version, image.os, image.arch) == ("1.31", "al2", "arm64")
    assert (image.kernel_version, image.containerd_version, image.source_image) == (
        "5.10.230",
        "1.7.27",
        "ami-0123456789abcdef0",
    )
