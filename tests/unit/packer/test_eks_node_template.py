"""packer/eks-node read with python-hcl2 and resolved in Python for every OS x arch: the invariants of the AMI."""

from __future__ import annotations

import fnmatch
import gzip
import json
import posixpath
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from packer_hcl_eval import Scope, resolve
from packer_support import (
    ARCHES,
    COMBOS,
    FAKE_SOURCE_AMI,
    KUBERNETES_DIR,
    LOCAL_TEMPLATE,
    OSES,
    REPO,
    TEMPLATE_DIR,
    default_variables,
    load_hcl,
    local_exprs,
    variable_blocks,
)

from nodeforge import packer_vars

TAG_KEYS = (
    "Name",
    "os",
    "os_version",
    "arch",
    "kubernetes_version",
    "kubelet_version",
    "containerd_version",
    "runc_version",
    "source_ami",
    "build_id",
    "git_commit",
    "template",
)
CONTRACT_REQUIRED = ("kubernetes_version", "os", "arch")
CONTRACT_KEYS = (
    *CONTRACT_REQUIRED,
    "os_version",
    "kubelet_version",
    "containerd_version",
    "runc_version",
    "kernel_version",
    "source_image",
    "git_commit",
    "template",
    "build_id",
    "image_name",
)


def the_source(template: dict[str, Any]) -> dict[str, Any]:
    sources = [body for block in template["source"] for body in block.get("amazon-ebs", {}).values()]
    assert len(sources) == 1, "one amazon-ebs source"
    return sources[0]


def the_build(template: dict[str, Any]) -> dict[str, Any]:
    assert len(template["build"]) == 1
    return template["build"][0]


def provisioners(build: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [body[kind] for body in build.get("provisioner", []) if kind in body]


def post_processor(build: dict[str, Any], kind: str, index: int | None = None) -> dict[str, Any]:
    """The one post-processor of that kind, or the index-th of several."""
    found = [
        item[kind]
        for chain in build.get("post-processors", [])
        for item in chain.get("post-processor", [])
        if kind in item
    ]
    found += [item[kind] for item in build.get("post-processor", []) if kind in item]
    if index is not None:
        return found[index]
    assert len(found) == 1, f"one {kind} post-processor"
    return found[0]


def resolved_source(template: dict[str, Any], resolver: Any, **overrides: Any) -> dict[str, Any]:
    _, value = resolver(**overrides)
    source = dict(the_source(template))
    dynamic = source.pop("dynamic", [])
    resolved = value(source)
    # dynamic "source_ami_filter": one block per for_each item, source_ami_filter.value bound to the item.
    for block in dynamic:
        for name, body in block.items():
            items = value(body["for_each"])
            resolved[name] = []
            for item in items:
                scope, _ = resolver(**overrides)
                scope.extra[name] = {"value": item}
                resolved[name] += [resolve(content, scope) for content in body["content"]]
    return resolved


# --- variables ----------------------------------------------------------------------------------------------


def test_every_variable_has_type_description_and_validation(template):
    variables = variable_blocks(template)
    assert len(variables) >= 25
    for name, body in variables.items():
        assert body.get("type"), f"{name}: no type"
        assert len(body.get("description", "")) > 10, f"{name}: no description"
        validations = body.get("validation", [])
        assert validations, f"{name}: no validation"
        for validation in validations:
            assert validation.get("condition"), f"{name}: empty condition"
            message = validation.get("error_message", "")
            assert message.startswith(f"The {name} "), f"{name}: the message must name the variable: {message!r}"
            assert message.endswith("."), f"{name}: error_message must be a sentence"


def test_build_selection_variables(template):
    variables = variable_blocks(template)
    for name in ("kubernetes_version", "kubelet_version", "kubelet_build_date"):
        assert "default" not in variables[name], f"{name} comes from packer/kubernetes/<minor>.pkrvars.hcl"
    assert variables["os"]["default"] == "al2023"
    assert variables["arch"]["default"] == "x86_64"
    assert variables["time_sync_servers"]["default"] == ["169.254.169.123"]
    assert variables["containerd_package_version"]["default"] == ""


def test_plugins_required(template):
    (packer,) = template["packer"]
    plugins = {name: spec for block in packer["required_plugins"] for name, spec in block.items()}
    assert plugins["amazon"] == {"version": ">= 1.3.0", "source": "github.com/hashicorp/amazon"}
    assert plugins["ansible"] == {"version": ">= 1.1.0", "source": "github.com/hashicorp/ansible"}


# --- the source, for every OS x arch -------------------------------------------------------------------------


@pytest.mark.parametrize(("os_name", "arch"), COMBOS)
def test_build_instance_and_ami(template, resolver, os_name, arch):
    source = resolved_source(template, resolver, os=os_name, arch=arch)

    (metadata,) = source["metadata_options"]
    assert metadata == {"http_endpoint": "enabled", "http_tokens": "required", "http_put_response_hop_limit": 1}
    assert source["imds_support"] == "v2.0"
    assert source["temporary_key_pair_type"] == "ed25519"
    assert source["communicator"] == "ssh"
    assert source["ssh_username"] == "ec2-user"
    assert source["instance_type"] == {"x86_64": "m6i.large", "arm64": "m6g.large"}[arch]

    assert source["encrypt_boot"] is True
    (volume,) = source["launch_block_device_mappings"]
    assert volume["device_name"] == "/dev/xvda"
    assert volume["volume_type"] == "gp3"
    assert volume["encrypted"] is True
    assert (volume["volume_size"], volume["iops"], volume["throughput"]) == (20, 3000, 125)
    assert source["associate_public_ip_address"] is None, "unset: the subnet's default"
    assert source["security_group_ids"] == [] and source["custom_endpoint_ec2"] == ""
    assert source["user_data"] == "", "no user data unless session_manager"
    assert source["subnet_filter"] == [] and source["vpc_filter"] == []
    (polling,) = source["aws_polling"]
    assert polling["delay_seconds"] * polling["max_attempts"] == 4 * 3600, "AMI copies may take 4 hours"
    assert volume["delete_on_termination"] is True
    assert source["kms_key_id"] == volume["kms_key_id"] == ""
    assert source["region_kms_key_ids"] == {}
    assert source["snapshot_users"] == source["ami_users"] == []
    assert source["ami_virtualization_type"] == "hvm"
    assert source["ena_support"] is True

    assert source["source_ami"] == ""
    (ami_filter,) = source["source_ami_filter"]
    assert ami_filter["owners"] == ["amazon"]
    assert ami_filter["most_recent"] is True
    filters = ami_filter["filters"]
    assert filters["architecture"] == arch
    assert filters["root-device-type"] == "ebs"
    assert filters["virtualization-type"] == "hvm"
    expected_name = {
        "al2023": f"al2023-ami-minimal-2023.*-kernel-6.1-{arch}",
        "al2": f"amzn2-ami-kernel-5.10-hvm-2.0.*-{arch}-gp2",
    }[os_name]
    assert filters["name"] == expected_name

    image_name = source["ami_name"]
    assert image_name == f"nodeforge-eks-node-1.31-{os_name}-{arch}-20250102T030405Z"
    assert re.fullmatch(r"[A-Za-z0-9()\[\]./'@_ -]{3,128}", image_name), "EC2 AMI name rules"
    assert len(source["ami_description"]) <= 255


@pytest.mark.parametrize(("os_name", "arch"), COMBOS)
def test_tags_on_ami_snapshots_and_instance(template, resolver, os_name, arch):
    source = resolved_source(template, resolver, os=os_name, arch=arch, git_commit="0123abcd", build_id="b42")
    tags = source["tags"]
    assert source["snapshot_tags"] == tags
    assert set(TAG_KEYS) <= set(tags)
    assert tags["os"] == os_name
    assert tags["os_version"] == {"al2023": "2023", "al2": "2"}[os_name]
    assert tags["arch"] == arch
    assert tags["kubernetes_version"] == "1.31"
    assert tags["kubelet_version"] == "1.31.3"
    # measured versions: placeholders until the last post-processor tags the AMIs from the component manifest
    for key in ("containerd_version", "runc_version", "kernel_version"):
        assert tags[key] == "pending-component-manifest"
    assert tags["source_ami"] == "{{ .SourceAMI }}"
    assert tags["build_id"] == "b42"
    assert tags["git_commit"] == "0123abcd"
    assert tags["template"] == "eks-node"
    assert tags["Name"] == source["ami_name"]
    assert not any(key.startswith("nodeforge:") for key in tags), "nodeforge:* tags belong to the catalog"
    assert len(tags) <= 50 and all(len(value) <= 256 for value in tags.values())
    for run_tags in (source["run_tags"], source["run_volume_tags"]):
        assert set(TAG_KEYS) <= set(run_tags)
        assert run_tags["Name"].endswith("-builder")


def test_tags_carry_pinned_containerd_and_extra_tags(template, resolver):
    source = resolved_source(
        template, resolver, containerd_package_version="1.7.27", extra_tags={"team": "platform", "os": "spoof"}
    )
    assert source["tags"]["containerd_version"] == "pending-component-manifest", "the measured version is tagged"
    assert source["tags"]["team"] == "platform"
    assert source["tags"]["os"] == "al2023", "the template's own tags win"


def test_network_and_volume_options(template, resolver):
    source = resolved_source(
        template,
        resolver,
        associate_public_ip_address="false",
        security_group_ids=["sg-0123456789abcdef0"],
        subnet_filter={"tag:Name": "build-*"},
        vpc_filter={"tag:Name": "build"},
        ec2_endpoint="https://ec2.vpce.example",
        source_ami_owners=["123456789012"],
        root_volume_type="io2",
        root_volume_iops=8000,
    )
    assert source["associate_public_ip_address"] is False
    assert source["security_group_ids"] == ["sg-0123456789abcdef0"]
    assert source["subnet_filter"] == [{"filters": {"tag:Name": "build-*"}, "most_free": True}]
    assert source["vpc_filter"] == [{"filters": {"tag:Name": "build"}}]
    assert source["custom_endpoint_ec2"] == "https://ec2.vpce.example"
    assert source["source_ami_filter"][0]["owners"] == ["123456789012"]
    (volume,) = source["launch_block_device_mappings"]
    assert (volume["volume_type"], volume["iops"], volume["throughput"]) == ("io2", 8000, None)
    (volume,) = resolved_source(template, resolver, root_volume_type="gp2")["launch_block_device_mappings"]
    assert (volume["volume_type"], volume["iops"], volume["throughput"]) == ("gp2", None, None)


def test_session_manager_starts_the_agent_from_user_data(template, resolver):
    source = resolved_source(template, resolver, ssh_interface="session_manager", iam_instance_profile="builder")
    assert source["ssh_interface"] == "session_manager" and source["iam_instance_profile"] == "builder"
    lines = source["user_data"].splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "dnf install -y amazon-ssm-agent || yum install -y amazon-ssm-agent" in lines[1]
    assert lines[2] == "systemctl enable --now amazon-ssm-agent"


def test_source_ami_id_replaces_the_filter(template, resolver):
    source = resolved_source(template, resolver, source_ami_id=FAKE_SOURCE_AMI)
    assert source["source_ami"] == FAKE_SOURCE_AMI
    assert source["source_ami_filter"] == []


@pytest.mark.parametrize("region", ["us-east-1", "af-south-1", "ap-east-1", "us-gov-west-1", "cn-northwest-1"])
def test_amazon_owns_the_source_in_every_region(template, resolver, region):
    """The owner alias: opt-in regions, GovCloud and China publish Amazon Linux from other accounts."""
    (ami_filter,) = resolved_source(template, resolver, region=region)["source_ami_filter"]
    assert ami_filter["owners"] == ["amazon"]


def moto_amazon_linux_images() -> dict[str, list[dict[str, Any]]]:
    """Region -> Amazon Linux images of moto's recorded copy of the public AMI catalogue (offline)."""
    moto = pytest.importorskip("moto")
    directory = Path(moto.__file__).parent / "ec2" / "resources" / "latest_amis"
    images = {}
    for path in sorted(directory.glob("*.json.gz")):
        entries = json.loads(gzip.decompress(path.read_bytes()))
        images[path.name.removesuffix(".json.gz")] = [
            image for image in entries if image["name"].startswith(("al2023-", "amzn2-"))
        ]
    if not images:
        pytest.skip("moto has no recorded AMI catalogue")
    return images


@pytest.mark.parametrize(("os_name", "arch"), COMBOS)
def test_source_filter_finds_one_image_per_region(template, resolver, os_name, arch):
    """The name pattern, against the Amazon Linux AMI names moto recorded from every region (no AWS call)."""
    (ami_filter,) = resolved_source(template, resolver, os=os_name, arch=arch)["source_ami_filter"]
    filters = ami_filter["filters"]
    regions = moto_amazon_linux_images()
    assert len(regions) >= 20
    for region, images in regions.items():
        found = [image for image in images if fnmatch.fnmatchcase(image["name"], filters["name"])]
        assert len(found) == 1, f"{region}: {[image['name'] for image in found]}"
        (image,) = found
        assert image["architecture"] == filters["architecture"]
        assert image["root_device_type"] == filters["root-device-type"]
        assert image["virtualization_type"] == filters["virtualization-type"]
        assert image["root_device_name"] == "/dev/xvda", "the launch block device mapping's device"


def test_encryption_and_sharing_follow_the_variables(template, resolver):
    source = resolved_source(
        template,
        resolver,
        kms_key_id="alias/nodeforge",
        ami_regions=["eu-west-1"],
        region_kms_key_ids={"eu-west-1": "alias/nodeforge"},
        ami_users=["123456789012"],
        root_volume_size=100,
        root_volume_iops=6000,
        root_volume_throughput=500,
    )
    (volume,) = source["launch_block_device_mappings"]
    assert volume["kms_key_id"] == source["kms_key_id"] == "alias/nodeforge"
    assert (volume["volume_size"], volume["iops"], volume["throughput"]) == (100, 6000, 500)
    assert source["ami_regions"] == ["eu-west-1"]
    assert source["region_kms_key_ids"] == {"eu-west-1": "alias/nodeforge"}
    assert source["ami_users"] == source["snapshot_users"] == ["123456789012"]


# --- provisioning: the local bake's playbook -----------------------------------------------------------------


def local_template_playbook() -> str:
    local = load_hcl(LOCAL_TEMPLATE)
    (ansible,) = provisioners(local["build"][0], "ansible")
    scope = Scope(
        variables=default_variables(local), local_exprs=local_exprs(local), path_root=str(LOCAL_TEMPLATE.parent)
    )
    return posixpath.normpath(resolve(ansible["playbook_file"], scope))


@pytest.mark.parametrize(("os_name", "arch"), COMBOS)
def test_same_playbook_as_the_local_bake(template, resolver, os_name, arch):
    _, value = resolver(os=os_name, arch=arch)
    ansible, sysprep = provisioners(the_build(template), "ansible")
    sysprep = value(sysprep)
    assert posixpath.normpath(sysprep["playbook_file"]) == str(REPO / "playbooks" / "sysprep.yml")
    assert json.loads(sysprep["extra_arguments"][1]) == {
        "ansible_python_interpreter": {"al2023": "/usr/bin/python3", "al2": "/usr/bin/python3.8"}[os_name]
    }
    ansible = value(ansible)
    playbook = posixpath.normpath(ansible["playbook_file"])
    assert playbook == local_template_playbook() == str(REPO / "playbooks" / "node.yml")
    assert ansible["use_proxy"] is False
    assert ansible["user"] == "ec2-user"
    env = dict(item.split("=", 1) for item in ansible["ansible_env_vars"])
    assert Path(posixpath.normpath(env["ANSIBLE_CONFIG"])) == REPO / "ansible.cfg"
    assert Path(posixpath.normpath(env["ANSIBLE_ROLES_PATH"])) == REPO / "roles"

    flag, payload = ansible["extra_arguments"]
    assert flag == "--extra-vars"
    extra_vars = json.loads(payload)
    assert extra_vars == {
        "nodeforge_kubernetes_version": "1.31",
        "nodeforge_artifact_source": "https://amazon-eks.s3.us-west-2.amazonaws.com",
        "kubelet_version": "1.31.3",
        "kubelet_build_date": "2024-12-12",
        "containerd_package_version": "",
        "node_base_time_sync_servers": ["169.254.169.123"],
        "ansible_python_interpreter": {"al2023": "/usr/bin/python3", "al2": "/usr/bin/python3.8"}[os_name],
        "nodeforge_sysprep": False,
        "containerd_sandbox_image_archive_source": "https://amazon-eks.s3.us-west-2.amazonaws.com",
        "containerd_sandbox_image_archive_path": "",
    }


def role_inputs() -> set[str]:
    names: set[str] = set()
    for spec in (REPO / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names |= set(entry.get("options", {}))
    return names


def test_extra_vars_are_declared_inputs(template, resolver):
    """Each --extra-vars name is a role input (argument_specs) or a playbook input: no typo goes unnoticed."""
    _, value = resolver()
    extra_vars = value(local_exprs(template)["ansible_extra_vars"])
    playbook = (REPO / "playbooks" / "node.yml").read_text()
    inputs = role_inputs()
    for name in extra_vars:
        if name == "ansible_python_interpreter":
            continue
        assert name in inputs or f"{name} " in playbook or f"{name}\n" in playbook, f"{name} is no role input"


def test_components_manifest_path_is_the_roles(template, resolver):
    defaults = REPO / "roles" / "image_manifest" / "defaults" / "main.yml"
    if not defaults.exists():
        pytest.skip("roles/image_manifest not present")
    _, value = resolver()
    remote = value(local_exprs(template)["image_components_remote_path"])
    assert remote == yaml.safe_load(defaults.read_text())["image_manifest_path"]
    download, _upload = provisioners(the_build(template), "file")
    download = value(download)
    assert download == {
        "direction": "download",
        "source": remote,
        "destination": "build/eks-node/nodeforge-eks-node-1.31-al2023-x86_64-20250102T030405Z.components.json",
    }


def test_the_build_verifies_itself_before_the_ami_is_registered(template, resolver):
    """Order: node playbook (no sysprep) -> component manifest -> verify-build over SSH (tests/infra, CIS) ->
    sysprep playbook -> hygiene scan on the instance. Each step fails the build on failure; the AMI is registered
    only after the last provisioner."""
    _, value = resolver(os="al2")
    build = the_build(template)
    order = [next(iter(item)) for item in build["provisioner"]]
    assert order == ["shell", "ansible", "file", "shell-local", "ansible", "file", "shell"]
    (verify,) = provisioners(build, "shell-local")
    script = "\n".join(value(verify)["inline"])
    assert script.startswith("set -e\n"), "a failing verify-build fails the step"
    assert "<<'NODEFORGE_BUILD_KEY'\n${build.SSHPrivateKey}\nNODEFORGE_BUILD_KEY" in script
    assert (
        "nodeforge verify-build 'ssh://${build.User}@${build.Host}:${build.Port}' --ssh-key \"$key\" --sudo "
        "--no-sysprep-checks --no-hygiene --out 'build/eks-node/nodeforge-eks-node-1.31-al2-x86_64-20250102T030405Z"
        ".verify'"
    ) in script
    _, upload = provisioners(build, "file")
    upload = value(upload)
    assert Path(posixpath.normpath(upload["source"])) == REPO / "src" / "nodeforge" / "bake" / "hygiene.py"
    _, scan = provisioners(build, "shell")
    (command,) = value(scan)["inline"]
    assert command == (
        "sudo sh -c 'tar --one-file-system --numeric-owner -C / -cf - . | /usr/bin/python3.8 "
        f"{upload['destination']} -'; status=$?; rm -f {upload['destination']}; exit $status"
    )
    assert upload["destination"].startswith("/dev/shm/"), "a tmpfs: the scanner itself never lands in the image"


# --- the manifest contract -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("os_name", "arch"), COMBOS)
def test_manifest_custom_data_contract(template, resolver, os_name, arch):
    _, value = resolver(os=os_name, arch=arch, git_commit="0123abcd")
    manifest = value(post_processor(the_build(template), "manifest"))
    assert manifest["output"] == "build/eks-node/manifest.json"
    data = manifest["custom_data"]
    assert set(CONTRACT_KEYS) <= set(data)
    assert all(isinstance(item, str) for item in data.values()), data
    assert all(data[key] for key in CONTRACT_REQUIRED)
    assert data["kubernetes_version"] == "1.31"
    assert (data["os"], data["arch"]) == (os_name, arch)
    assert data["os_version"] == {"al2023": "2023", "al2": "2"}[os_name]
    assert data["kubelet_version"] == "1.31.3"
    assert data["source_image"] == FAKE_SOURCE_AMI
    assert data["template"] == "eks-node"
    assert data["git_commit"] == "0123abcd"
    assert data["image_name"] == f"nodeforge-eks-node-1.31-{os_name}-{arch}-20250102T030405Z"
    assert data["build_id"] == "20250102T030405Z"
    assert (data["kernel_version"], data["runc_version"], data["containerd_version"]) == ("", "", "")

    merge = value(post_processor(the_build(template), "shell-local", 0))
    (command,) = merge["inline"]
    assert "scripts/merge_versions.py" in command
    assert (TEMPLATE_DIR / "scripts" / "merge_versions.py").is_file()
    (tag,) = value(post_processor(the_build(template), "shell-local", 1))["inline"]
    assert tag == "nodeforge tag-images 'build/eks-node/manifest.json' '20250102T030405Z'", "tags after the merge"


def test_catalog_ingests_the_manifest(template, resolver):
    """The custom_data, as Packer would write it, read by the catalog (when the catalog module is present).

    Each OS x arch is its own `packer build` run, appending one build to the manifest.
    """
    catalog = pytest.importorskip("nodeforge.catalog.manifest")
    builds = []
    for index, (os_name, arch) in enumerate(COMBOS):
        _, value = resolver(os=os_name, arch=arch, build_id=f"b{index}")
        data = value(post_processor(the_build(template), "manifest"))["custom_data"]
        builds.append(
            {
                "name": "eks-node",
                "builder_type": "amazon-ebs",
                "build_time": 1735787045,
                "files": None,
                "artifact_id": f"us-west-2:ami-0{index}23456789abcdef",
                "packer_run_uuid": f"7b0c1f1e-0000-4000-8000-00000000000{index}",
                "custom_data": data,
            }
        )
    document = {"builds": builds, "last_run_uuid": builds[-1]["packer_run_uuid"]}
    images = catalog.parse_manifest(json.dumps(document), source="test")
    assert sorted((image.os, image.arch) for image in images) == sorted(COMBOS)
    assert {image.template for image in images} == {"eks-node"}


# --- per-minor vars files and the Python mirrors -------------------------------------------------------------


def test_vars_files_match_kubelet_releases():
    releases = yaml.safe_load((REPO / "roles" / "kubelet" / "defaults" / "main.yml").read_text())["kubelet_releases"]
    files = {path.name.removesuffix(".pkrvars.hcl"): path for path in KUBERNETES_DIR.glob("*.pkrvars.hcl")}
    assert set(files) == {str(minor) for minor in releases}, "one vars file per kubelet_releases entry, no more"
    for minor, entry in releases.items():
        values = load_hcl(files[str(minor)])
        assert values == {
            "kubernetes_version": str(minor),
            "kubelet_version": str(entry["version"]),
            "kubelet_build_date": str(entry["build_date"]),
        }, files[str(minor)]
        assert packer_vars.read_vars_file(files[str(minor)]) == values, "the CLI reads the same values"


def test_python_mirrors_agree_with_the_template(template, resolver):
    variables = variable_blocks(template)
    for name, default in packer_vars.TEMPLATE_DEFAULTS.items():
        assert variables[name]["default"] == default, name
    for condition_of, choices in (("os", packer_vars.OS_CHOICES), ("arch", packer_vars.ARCH_CHOICES)):
        assert repr(list(choices)).replace("'", '"') in variables[condition_of]["validation"][0]["condition"]
    assert set(packer_vars.OS_CHOICES) == set(OSES)
    assert set(packer_vars.ARCH_CHOICES) == set(ARCHES)
    for region in ("us-west-2", "us-gov-east-1", "cn-north-1"):
        for os_name, arch in COMBOS:
            scope, _ = resolver(os=os_name, arch=arch, region=region)
            derived = packer_vars.derived_settings(os_name, arch)
            assert derived == {
                "instance_type": scope.local("instance_type"),
                "source_ami_name": scope.local("source_ami_name"),
                "source_ami_owner": scope.local("source_ami_owners")[0],
                "os_version": scope.local("os_setting")["os_version"],
                "ssh_username": scope.local("ssh_username"),
            }


def test_docs_list_every_variable(template):
    docs = (REPO / "docs" / "packer.md").read_text()
    table = {line.split("|")[1].strip().strip("`") for line in docs.splitlines() if line.startswith("| `")}
    assert set(variable_blocks(template)) <= table
