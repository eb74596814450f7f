"""Packer manifests into records: the real format, normalisation, and a clear error for every bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nodeforge.catalog import synthetic
from nodeforge.catalog.errors import InputError, ManifestError
from nodeforge.catalog.manifest import parse_manifest, parse_rule, read_manifest

AMI_A = "ami-0abc12345678def90"
AMI_B = "ami-0def12345678abc90"

# What packer/local.pkr.hcl writes today (docker builder, docker-tag post-processor): no os, no arch.
LOCAL_MANIFEST = {
    "builds": [
        {
            "name": "node",
            "builder_type": "docker",
            "build_time": 1795665854,
            "files": None,
            "artifact_id": "nodeforge/node:dev1",
            "packer_run_uuid": "3b95b80e-00b6-3dda-160c-18e25f9df620",
            "custom_data": {
                "base_image": "nodeforge/base:bookworm-c2d0c8f73bd1",
                "git_commit": "6b9dc09254dc",
                "kubernetes_version": "1.31",
                "template": "local",
            },
        }
    ],
    "last_run_uuid": "3b95b80e-00b6-3dda-160c-18e25f9df620",
}


def parse(document: object, **kwargs: object) -> list:
    return parse_manifest(json.dumps(document), source="m.json", **kwargs)


def test_amazon_ebs_build_with_region_copies() -> None:
    build = synthetic.build(
        run="r1",
        amis={"us-east-1": AMI_A, "us-west-2": AMI_B},
        arch="amd64",
        kubelet_version="1.31.2",
        containerd_version="1.7.23",
        runc_version="1.1.15",
        kernel_version="6.1.115",
        source_image="ami-0123456789abcdef0",
        git_commit="abc123",
        template="eks-al2023",
        build_id="b-7",
        image_name="nodeforge-al2023-1.31-b7",
        account_id="123456789012",
        os_version="2023.6",
        nvidia_driver="550.1",
    )
    [image] = parse(synthetic.manifest([build]))
    assert image.arch == "x86_64"
    assert [(a.region, a.artifact_id, a.account_id) for a in image.artifacts] == [
        ("us-east-1", AMI_A, "123456789012"),
        ("us-west-2", AMI_B, "123456789012"),
    ]
    assert image.name == "nodeforge-al2023-1.31-b7"
    assert image.build_id == "b-7"
    assert image.components() == {
        "kubernetes_version": "1.31",
        "os": "al2023",
        "os_version": "2023.6",
        "arch": "x86_64",
        "kubelet_version": "1.31.2",
        "containerd_version": "1.7.23",
        "runc_version": "1.1.15",
        "kernel_version": "6.1.115",
        "source_image": "ami-0123456789abcdef0",
        "git_commit": "abc123",
        "template": "eks-al2023",
        "nvidia_driver": "550.1",
    }
    assert image.id.startswith("nf-") and len(image.id) == 15
    assert image.digest.startswith("sha256:")


def test_aarch64_is_arm64() -> None:
    [image] = parse(synthetic.manifest([synthetic.build(run="r", amis={"us-east-1": AMI_A}, arch="aarch64")]))
    assert image.arch == "arm64"


def test_docker_digest_artifact_is_region_local() -> None:
    build = synthetic.build(run="r", amis={}, os="debian12")
    build.update(builder_type="docker", artifact_id="sha256:" + "a" * 64)
    [image] = parse(synthetic.manifest([build]))
    assert [(a.region, a.artifact_id) for a in image.artifacts] == [("local", "sha256:" + "a" * 64)]


def test_local_bake_manifest_with_a_rule() -> None:
    [image] = parse(LOCAL_MANIFEST, rules=[parse_rule("build=node:os=debian12,arch=amd64")])
    assert (image.os, image.arch, image.kubernetes_version) == ("debian12", "x86_64", "1.31")
    assert image.source_image == "nodeforge/base:bookworm-c2d0c8f73bd1"  # base_image is read as source_image
    assert image.name == "nodeforge/node:dev1"
    assert image.artifacts[0].region == "local"


def test_rules_never_override_the_manifest() -> None:
    notes: list[str] = []
    rules = [parse_rule("build=*:os=debian12,arch=arm64,kubernetes_version=1.20"), parse_rule("build=other:os=x")]
    [image] = parse(LOCAL_MANIFEST, rules=rules, notes=notes)
    assert (image.kubernetes_version, image.arch) == ("1.31", "arm64")
    assert "os, arch from --rule 'build=*:os=debian12,arch=arm64,kubernetes_version=1.20'" in notes[0]
    assert "--rule 'build=other:os=x' matched no build" in notes[1]  # nothing dropped silently


def test_last_run_only_and_several_runs() -> None:
    builds = [
        synthetic.build(run="r1", amis={"us-east-1": AMI_A}, build_time=1),
        synthetic.build(run="r2", amis={"us-east-1": AMI_B}, build_time=2),
    ]
    assert len(parse(synthetic.manifest(builds, "r1"))) == 2
    [only] = parse(synthetic.manifest(builds, "r1"), last_run_only=True)
    assert only.artifacts[0].artifact_id == AMI_A


def test_same_build_twice_in_a_file_counts_once() -> None:
    build = synthetic.build(run="r1", amis={"us-east-1": AMI_A})
    assert len(parse(synthetic.manifest([build, dict(build)]))) == 1


def test_digest_is_stable_and_follows_content() -> None:
    one = synthetic.build(run="r1", amis={"us-east-1": AMI_A}, kubelet_version="1.31.2")
    same = synthetic.build(run="r2", amis={"us-west-2": AMI_B}, kubelet_version="1.31.2")
    same["custom_data"] = dict(reversed(list(same["custom_data"].items())))
    other = synthetic.build(run="r3", amis={"eu-west-1": "ami-0aaaaaaaaaaaaaaa1"}, kubelet_version="1.31.3")
    a, b, c = parse(synthetic.manifest([one, same, other]))
    assert a.digest == b.digest != c.digest
    assert a.id != b.id


def good() -> dict:
    return synthetic.manifest([synthetic.build(run="r1", amis={"us-east-1": AMI_A})])


def with_build(**changes: object) -> dict:
    document = good()
    document["builds"][0].update(changes)
    return document


def with_data(**changes: object) -> dict:
    document = good()
    data = document["builds"][0]["custom_data"]
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    return document


BAD = {
    "top-level list": ([], "", "JSON object"),
    "no builds": ({"last_run_uuid": "x"}, "builds", "missing"),
    "builds not a list": ({"builds": {}}, "builds", "must be a list"),
    "builds empty": ({"builds": []}, "builds", "empty"),
    "build not an object": ({"builds": ["x"]}, "builds[0]", "must be an object"),
    "no custom_data": (
        with_build(custom_data=None),
        "builds[0].custom_data.kubernetes_version",
        "--rule 'build=node:kubernetes_version=1.31'",
    ),
    "custom_data a list": (with_build(custom_data=[]), "builds[0].custom_data", "must be an object"),
    "no arch": (with_data(arch=None), "builds[0].custom_data.arch", "missing"),
    "no os": (with_data(os=None), "builds[0].custom_data.os", "missing"),
    "no kubernetes_version": (
        with_data(kubernetes_version=None),
        "builds[0].custom_data.kubernetes_version",
        "missing",
    ),
    "unknown arch": (
        with_data(arch="sparc"),
        "builds[0].custom_data.arch",
        "amd64 and aarch64 accepted); fix it in the Packer template's custom_data",
    ),
    "patch version": (with_data(kubernetes_version="1.31.2"), "builds[0].custom_data.kubernetes_version", "minor"),
    "bad os": (with_data(os="Amazon Linux"), "builds[0].custom_data.os", "not an OS name"),
    "number in custom_data": (with_data(kubelet_version=1.31), "builds[0].custom_data.kubelet_version", "string"),
    "bad account": (with_data(account_id="12345"), "builds[0].custom_data.account_id", "12-digit"),
    "no colon": (with_build(artifact_id="us-east-1ami-1"), "builds[0].artifact_id", "is not region:ami-id"),
    "no ami": (with_build(artifact_id="us-east-1:"), "builds[0].artifact_id", "no AMI id"),
    "bad ami": (with_build(artifact_id="us-east-1:ami-xyz"), "builds[0].artifact_id", "not an AMI id"),
    "bad region": (with_build(artifact_id=f"useast:{AMI_A}"), "builds[0].artifact_id", "not an AWS region"),
    "trailing comma": (with_build(artifact_id=f"us-east-1:{AMI_A},"), "builds[0].artifact_id", "empty entry"),
    "region twice": (
        with_build(artifact_id=f"us-east-1:{AMI_A},us-east-1:{AMI_B}"),
        "builds[0].artifact_id",
        "appears twice",
    ),
    "empty artifact_id": (with_build(artifact_id=""), "builds[0].artifact_id", "non-empty string"),
    "no artifact_id": (with_build(artifact_id=None), "builds[0].artifact_id", "missing"),
    "bad docker digest": (
        with_build(builder_type="docker", artifact_id="sha256:abc"),
        "builds[0].artifact_id",
        "64 hex",
    ),
    "9th region unknown": (
        with_build(artifact_id=f"us-east-1:{AMI_A},us-east-7:{AMI_B}"),
        "builds[0].artifact_id",
        "did you mean us-east-2",
    ),
    "rule-less arch": (with_data(arch=None), "builds[0].custom_data.arch", "--rule 'build=node:arch=arm64'"),
    "build_time text": (with_build(build_time="yesterday"), "builds[0].build_time", "Unix seconds"),
    "no run uuid": (with_build(packer_run_uuid=None), "builds[0].packer_run_uuid", "missing"),
    "last_run_uuid unknown": ({**good(), "last_run_uuid": "nope"}, "last_run_uuid", "matches no build"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_manifest_names_the_field(case: str) -> None:
    document, field, words = BAD[case]
    with pytest.raises(ManifestError) as caught:
        parse(document)
    assert caught.value.field == field
    assert caught.value.path == "m.json"
    assert str(caught.value).startswith(f"m.json: {field}:" if field else "m.json:")
    assert words in str(caught.value)


def test_second_build_is_named_by_index() -> None:
    document = synthetic.manifest(
        [
            synthetic.build(run="r1", amis={"us-east-1": AMI_A}),
            synthetic.build(run="r2", amis={"us-east-1": AMI_B}, arch="ppc"),
        ]
    )
    with pytest.raises(ManifestError, match=r"builds\[1\]\.custom_data\.arch"):
        parse(document)


def test_one_ami_in_two_builds() -> None:
    document = synthetic.manifest(
        [synthetic.build(run="r1", amis={"us-east-1": AMI_A}), synthetic.build(run="r2", amis={"us-east-1": AMI_A})]
    )
    with pytest.raises(ManifestError, match=r"builds\[1\]\.artifact_id: us-east-1:ami-\w+ is also .* builds\[0\]"):
        parse(document)


def test_same_build_key_different_content() -> None:
    one = synthetic.build(run="r1", amis={"us-east-1": AMI_A}, kubelet_version="1.31.2")
    two = synthetic.build(run="r1", amis={"us-east-1": AMI_A}, kubelet_version="1.31.3")
    with pytest.raises(ManifestError, match=r"builds\[1\]: same packer_run_uuid and name as builds\[0\]"):
        parse(synthetic.manifest([one, two]))


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"missing\.json: no such file"):
        read_manifest(tmp_path / "missing.json")
    with pytest.raises(ManifestError, match="is a directory"):
        read_manifest(tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text('{"builds": [')
    with pytest.raises(ManifestError, match=r"broken\.json: not JSON \(.* line 1 column 13\)"):
        read_manifest(broken)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ManifestError, match="not UTF-8"):
        read_manifest(binary)


NINE = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "eu-central-1",
    "ap-northeast-1",
    "ap-southeast-2",
    "sa-east-1",
)


def real_shaped_manifest() -> dict:
    """Written after the manifest post-processor's format (packer/post-processor/manifest: name, builder_type,
    build_time (absent with strip_time), files, artifact_id, packer_run_uuid, custom_data, last_run_uuid): two
    runs of amazon-ebs builds without custom_data, one with a 9-region artifact_id, a googlecompute build in the
    same run, a docker build whose custom_data reuses catalog field names."""
    nine = ",".join(f"{region}:ami-0{index:016x}" for index, region in enumerate(NINE, start=1))
    return {
        "builds": [
            {
                "name": "al2023-x86",
                "builder_type": "amazon-ebs",
                "build_time": 1729000000,
                "files": None,
                "artifact_id": "us-west-2:ami-0aa00000000000001",
                "packer_run_uuid": "7c1d4c2e-run-1",
            },
            {
                "name": "al2023-x86",
                "builder_type": "amazon-ebs",
                "build_time": 1731000000,
                "files": None,
                "artifact_id": nine,
                "packer_run_uuid": "9e2f6a10-run-2",
            },
            {
                "name": "al2023-arm",
                "builder_type": "amazon-ebs",
                "files": None,
                "artifact_id": "us-west-2:ami-0bb00000000000001,eu-west-1:ami-0bb00000000000002",
                "packer_run_uuid": "9e2f6a10-run-2",
            },
            {
                "name": "gce",
                "builder_type": "googlecompute",
                "build_time": 1731000100,
                "files": None,
                "artifact_id": "eks-node-al2023-1-31-v20241109",
                "packer_run_uuid": "9e2f6a10-run-2",
            },
            {
                "name": "local",
                "builder_type": "docker",
                "build_time": 1731000200,
                "files": [{"name": "rootfs.tar", "size": 123}],
                "artifact_id": "sha256:" + "c" * 64,
                "packer_run_uuid": "9e2f6a10-run-2",
                "custom_data": {
                    "kubernetes_version": "1.31",
                    "os": "debian12",
                    "arch": "x86_64",
                    "build_time": "2024-11-07",
                    "name": "nightly",
                    "channel": "beta",
                },
            },
        ],
        "last_run_uuid": "9e2f6a10-run-2",
    }


def test_a_real_shaped_manifest_with_per_build_rules(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(real_shaped_manifest(), indent=2))
    rules = [
        parse_rule("build=al2023-x86:kubernetes_version=1.31,os=al2023,arch=x86_64"),
        parse_rule("build=al2023-arm:kubernetes_version=1.31,os=al2023,arch=arm64,build_time=1731000050"),
    ]
    notes: list[str] = []
    images = read_manifest(path, rules=rules, notes=notes)
    by_key = {image.build_key: image for image in images}
    assert sorted(by_key) == [
        "packer:7c1d4c2e-run-1:al2023-x86",
        "packer:9e2f6a10-run-2:al2023-arm",
        "packer:9e2f6a10-run-2:al2023-x86",
        "packer:9e2f6a10-run-2:local",
    ]
    x86 = by_key["packer:9e2f6a10-run-2:al2023-x86"]
    assert [a.region for a in x86.artifacts] == list(NINE)
    arm = by_key["packer:9e2f6a10-run-2:al2023-arm"]
    assert (arm.arch, arm.build_time) == ("arm64", 1731000050)  # never one default for all builds
    local = by_key["packer:9e2f6a10-run-2:local"]
    assert local.extra == {"custom.build_time": "2024-11-07", "custom.name": "nightly", "custom.channel": "beta"}
    assert local.channel == "candidate" and local.build_time == 1731000200
    assert any("builds[3] (gce, googlecompute): skipped" in note for note in notes)
    assert any("builds[4].custom_data.name: kept as extra component custom.name" in note for note in notes)
    [only_last] = [i for i in read_manifest(path, rules=rules, last_run_only=True) if i.name.startswith("al2023-x86")]
    assert only_last.build_key == "packer:9e2f6a10-run-2:al2023-x86"


def test_a_build_without_facts_is_refused_with_its_fixes(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(real_shaped_manifest()))
    with pytest.raises(ManifestError) as caught:
        read_manifest(path, rules=[parse_rule("build=al2023-x86:kubernetes_version=1.31,os=al2023,arch=x86_64")])
    message = str(caught.value)
    assert caught.value.field == "builds[2].custom_data.kubernetes_version"
    for fix in (
        "custom_data",
        "--ec2",
        "--rule 'ami=AMI_NAME_GLOB:kubernetes_version=1.31'",
        "--rule 'build=al2023-arm:kubernetes_version=1.31'",
    ):
        assert fix in message
    with pytest.raises(ManifestError, match=r"builds\[2\]\.build_time: missing .*strip_time.*build_time=UNIX_SECONDS"):
        read_manifest(path, rules=[parse_rule("build=al2023-*:kubernetes_version=1.31,os=al2023,arch=arm64")])


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("al2023:os=al2023", "expected build=GLOB:KEY=VALUE"),
        ("build=x:os", "'os' is not KEY=VALUE"),
        ("build=x:colour=red", "'colour' is not a field a rule can set"),
        ("name=x:os=al2", "expected build=GLOB"),
        # a rule's value is checked when the rule is read, so the refusal names the rule, not custom_data
        ("build=x:arch=sparc", r"--rule 'build=x:arch=sparc': arch: unknown arch 'sparc'"),
        ("build=x:kubernetes_version=v1.31", "kubernetes_version: 'v1.31' is not a Kubernetes minor version"),
        ("ami=eks-*:os=Amazon Linux", "os: 'Amazon Linux' is not an OS name"),
        ("build=x:build_time=2024-11-07", "build_time: '2024-11-07' is not Unix seconds"),
    ],
)
def test_bad_rules(spec: str, words: str) -> None:
    with pytest.raises(InputError, match=words):
        parse_rule(spec)


def test_a_bad_value_from_ec2_names_ec2_and_the_fix() -> None:
    """A template that tags its AMIs os="Amazon Linux 2": the refusal says the value came from EC2, not custom_data,
    and how to override it (custom_data wins over EC2; a --rule only fills what EC2 left out)."""
    build = with_build(custom_data=None)["builds"][0]

    def ec2(pairs: object) -> dict:
        return {pair: {"kubernetes_version": "1.31", "os": "Amazon Linux 2", "arch": "x86_64"} for pair in pairs}

    with pytest.raises(ManifestError) as caught:
        parse({"builds": [build]}, facts=ec2)
    assert caught.value.field == "builds[0].custom_data.os"
    message = str(caught.value)
    assert (
        f"'Amazon Linux 2' is not an OS name like al2023, al2 or debian12; the value came from EC2 us-east-1:{AMI_A}"
        in message
    )
    assert "set custom_data.os in the template" in message and "--no-ec2 with --rule 'build=node:os=VALUE'" in message
