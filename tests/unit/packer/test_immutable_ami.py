"""packer/immutable-ami (the immutable node as an AMI, amazon-ebssurrogate), checked offline: the real template
parsed with python-hcl2; a copy without what Packer 1.6.6 lacks validated by it; a dry run (null source) of its
local packing step and manifest; and scripts/write-disk.sh run against a loop device, as on the builder."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from packer_legacy import (
    LEGACY_DROPPED_BLOCKS,
    LEGACY_DROPPED_SOURCE_ARGUMENTS,
    LEGACY_DROPPED_SOURCE_BLOCKS,
    derive_legacy_copy,
)
from packer_support import PACKER_DIR, load_template, needs_packer, run_packer, variable_blocks

AMI_DIR = PACKER_DIR / "immutable-ami"
WRITE_DISK = AMI_DIR / "scripts" / "write-disk.sh"
# Arguments of amazon-ebssurrogate newer than 1.6.6, beyond those the eks-node copy drops already.
AMI_EXTRA_DROPPED = {"boot_mode": "UEFI boot mode of the AMI"}
HASH_A = "a" * 64


@pytest.fixture(scope="module")
def ami_template():
    return load_template(AMI_DIR)


def source(template):
    return template["source"][0]["amazon-ebssurrogate"]["immutable"]


def test_ami_is_uefi_ena_imdsv2_encrypted(ami_template):
    src = source(ami_template)
    assert src["boot_mode"] == "uefi" and src["ena_support"] is True and src["imds_support"] == "v2.0"
    assert src["ami_virtualization_type"] == "hvm" and src["ami_architecture"] == "x86_64"
    assert src["encrypt_boot"] is True and src["kms_key_id"] == "${var.kms_key_id}"
    (launch,) = (
        src["launch_block_device_mappings"]
        if isinstance(src["launch_block_device_mappings"], list)
        else [src["launch_block_device_mappings"]]
    )
    root = src["ami_root_device"][0] if isinstance(src["ami_root_device"], list) else src["ami_root_device"]
    assert launch["encrypted"] is True and launch["device_name"] == root["source_device_name"] == "/dev/xvdf"
    assert root["device_name"] == "/dev/xvda" and root["volume_size"] == launch["volume_size"]
    meta = src["metadata_options"][0] if isinstance(src["metadata_options"], list) else src["metadata_options"]
    assert meta["http_tokens"] == "required"  # the builder instance too


def test_plugin_and_manifest_contract(ami_template):
    plugins = ami_template["packer"][0]["required_plugins"][0]
    assert plugins["amazon"]["source"] == "github.com/hashicorp/amazon"
    (build,) = ami_template["build"]
    post = build["post-processors"][0]["post-processor"][0]["manifest"]
    custom = post["custom_data"]
    assert {"kubernetes_version", "os", "arch", "root_hash", "variant"} <= set(custom)
    assert custom["os"] == "debian12-immutable" and custom["variant"] == "immutable"
    script = build["provisioner"][2]["shell"]
    assert script["script"] == "${path.root}/scripts/write-disk.sh"
    assert "NODEFORGE_DISK_SHA256=${var.disk_sha256}" in script["environment_vars"]
    assert set(variable_blocks(ami_template)) >= {"disk_image", "disk_sha256", "root_hash", "kms_key_id"}


@pytest.fixture
def legacy_ami(tmp_path):
    target = tmp_path / "packer" / "immutable-ami"
    removed = derive_legacy_copy(AMI_DIR, target, AMI_EXTRA_DROPPED)
    (tmp_path / "disk.img").write_bytes(b"\0" * 4096)
    return tmp_path, removed


def ami_vars(**overrides: str) -> list[str]:
    values = {"disk_image": "disk.img", "disk_sha256": "0" * 64, "root_hash": HASH_A, **overrides}
    return [arg for name, value in values.items() for arg in ("-var", f"{name}={value}")]


@needs_packer
def test_legacy_copy_validates(legacy_ami, ami_template):
    root, removed = legacy_ami
    expected = {*LEGACY_DROPPED_BLOCKS, *AMI_EXTRA_DROPPED, "imds_support", "metadata_options"}
    assert sorted(removed) == sorted(expected)
    assert set(removed) <= {*LEGACY_DROPPED_BLOCKS, *LEGACY_DROPPED_SOURCE_ARGUMENTS, *LEGACY_DROPPED_SOURCE_BLOCKS,
                            *AMI_EXTRA_DROPPED}  # fmt: skip
    copy = load_template(root / "packer" / "immutable-ami")
    for key in ("variable", "locals", "build"):
        assert copy[key] == ami_template[key]
    proc = run_packer(["validate", *ami_vars(), "packer/immutable-ami"], cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@needs_packer
@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("disk_sha256", "not-a-hash", "disk_sha256 value must be a sha256"),
        ("root_hash", "A" * 63 + "z", "root_hash value must be the sealed root"),
        ("volume_size", "1", "volume_size value must be between"),
    ],
)
def test_bad_inputs_rejected(legacy_ami, name, value, message):
    root, _ = legacy_ami
    proc = run_packer(["validate", *ami_vars(**{name: value}), "packer/immutable-ami"], cwd=root)
    assert proc.returncode != 0 and message in " ".join((proc.stdout + proc.stderr).split())


def sparse_disk(path: Path, size: int = 8 << 20) -> str:
    """A small GPT disk image with holes (sfdisk), as `nodeforge image disk create` makes; returns its sha256."""
    with path.open("wb") as fh:
        fh.truncate(size)
    script = 'label: gpt\nsize=2048, name="NF-BOOTCFG"\nname="NF-STATE"\n'
    subprocess.run(["sfdisk", "--quiet", str(path)], input=script, text=True, check=True, capture_output=True)
    with path.open("r+b") as fh:
        fh.seek(3 << 20)
        fh.write(b"nodeforge slot data" * 100)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@needs_packer
def test_dry_run_packs_the_disk_and_writes_the_manifest(tmp_path):
    """The template's own shell-local step and manifest, with a null source instead of the AWS builder."""
    target = tmp_path / "packer" / "immutable-ami"
    derive_legacy_copy(AMI_DIR, target, AMI_EXTRA_DROPPED)
    (target / "sources.pkr.hcl").write_text('source "null" "immutable" {\n  communicator = "none"\n}\n')
    build = target / "build.pkr.hcl"
    text = build.read_text().replace("source.amazon-ebssurrogate.immutable", "source.null.immutable")
    start, end = text.index('  provisioner "file"'), text.index("  post-processors")
    build.write_text(text[:start] + text[end:])  # no instance to upload to or run the write script on
    disk = tmp_path / "disk.img"
    sha = sparse_disk(disk)
    args = ["build", *ami_vars(disk_image=str(disk), disk_sha256=sha, signing_key="sha256:" + "b" * 64)]
    proc = run_packer([*args, "-var", "manifest_path=build/manifest.json", "packer/immutable-ami"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = json.loads((tmp_path / "build" / "manifest.json").read_text())["builds"]
    custom = built["custom_data"]
    assert custom["root_hash"] == HASH_A and custom["disk_sha256"] == sha and custom["boot_mode"] == "uefi"
    assert all(isinstance(v, str) for v in custom.values())
    (packed,) = (tmp_path / "build" / "immutable-ami").glob("disk-*.tar.gz")
    assert packed.name == f"disk-{sha[:12]}.tar.gz" and packed.stat().st_size < disk.stat().st_size // 10
    with tarfile.open(fileobj=gzip.open(packed)) as tar:
        assert tar.extractfile("disk.img").read() == disk.read_bytes()
    # a disk that does not match disk_sha256 stops the build before anything is uploaded
    args = ["build", *ami_vars(disk_image=str(disk), disk_sha256="c" * 64)]
    proc = run_packer([*args, "-var", "manifest_path=build/m2.json", "packer/immutable-ami"], cwd=tmp_path)
    assert proc.returncode != 0 and not (tmp_path / "build" / "m2.json").exists()


needs_loop = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("losetup") or not Path("/dev/loop-control").exists(),
    reason="needs root and loop devices",
)


@pytest.fixture
def loop_volume(tmp_path):
    backing = tmp_path / "volume.img"
    with backing.open("wb") as fh:
        fh.truncate(16 << 20)  # larger than the disk, as the EBS volume is
    dev = subprocess.run(["losetup", "-f", "--show", str(backing)], capture_output=True, text=True, check=True)
    device = dev.stdout.strip()
    yield device, backing
    subprocess.run(["losetup", "-d", device], check=False)


def write_disk(upload: Path, sha: str, device: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NODEFORGE_UPLOAD": str(upload), "NODEFORGE_DISK_SHA256": sha, "NODEFORGE_DEVICE": device}
    return subprocess.run(["sh", str(WRITE_DISK)], capture_output=True, text=True, env=env, check=False)


@needs_loop
def test_write_disk_script_on_a_loop_device(tmp_path, loop_volume):
    device, backing = loop_volume
    disk = tmp_path / "disk.img"
    sha = sparse_disk(disk)
    upload = tmp_path / "up.tar.gz"
    subprocess.run(["tar", "--sparse", "-czf", str(upload), "-C", str(tmp_path), "disk.img"], check=True)

    bad = write_disk(upload, "d" * 64, device)
    assert bad.returncode != 0 and backing.read_bytes() == bytes(16 << 20)  # nothing written

    proc = write_disk(upload, sha, device)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"sha256 {sha}" in proc.stdout
    volume = backing.read_bytes()
    image = disk.read_bytes()
    assert volume[4096 : 3 << 20] == image[4096 : 3 << 20]  # partitions' content as written (GPT headers moved)
    assert b"nodeforge slot data" in volume[3 << 20 : 4 << 20]
    table = json.loads(subprocess.run(["sfdisk", "--json", str(backing)], capture_output=True, check=True).stdout)
    assert [p["name"] for p in table["partitiontable"]["partitions"]] == ["NF-BOOTCFG", "NF-STATE"]
    assert volume[-512 : -512 + 8] == b"EFI PART"  # backup GPT header moved to the volume's last sector
