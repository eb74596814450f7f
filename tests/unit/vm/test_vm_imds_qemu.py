"""The fake IMDS as cloud-init's Ec2 datasource walks it, QEMU's EC2-like command line, SSH targets, assessment."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from nodeforge.bake.verify import parse_ssh_target
from nodeforge.vm import launch, qemu
from nodeforge.vm.imds import FakeImdsServer


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"X-aws-ec2-metadata-token": token} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _token(endpoint: str) -> tuple[int, str]:
    req = urllib.request.Request(
        f"{endpoint}/latest/api/token", method="PUT", headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"}
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


@pytest.fixture
def imds():
    server = FakeImdsServer()
    server.state.public_keys = {"my-key": "ssh-ed25519 AAAAC3Nza test"}
    server.state.user_data = b"#!/bin/bash\necho hi\n"
    with server as state:
        yield state


def test_versions_listings_and_leaves_as_ec2(imds):
    _, token = _token(imds.endpoint)
    status, versions = _get(f"{imds.endpoint}/", token)
    assert status == 200 and "2021-03-23" in versions.split() and "latest" in versions.split()
    status, top = _get(f"{imds.endpoint}/2021-03-23/meta-data/", token)
    names = top.split("\n")
    assert "instance-id" in names and "placement/" in names and "public-keys/" in names and "network/" in names
    assert _get(f"{imds.endpoint}/2021-03-23/meta-data/placement/", token)[1].split("\n") == [
        "availability-zone",
        "region",
    ]
    assert _get(f"{imds.endpoint}/2021-03-23/meta-data/public-keys/", token)[1] == "0=my-key"
    assert _get(f"{imds.endpoint}/2021-03-23/meta-data/public-keys/0/", token)[1] == "openssh-key"
    assert _get(f"{imds.endpoint}/latest/meta-data/public-keys/0/openssh-key", token)[1].startswith("ssh-ed25519")
    assert _get(f"{imds.endpoint}/2021-03-23/user-data", token)[1] == "#!/bin/bash\necho hi\n"
    doc = json.loads(_get(f"{imds.endpoint}/latest/dynamic/instance-identity/document", token)[1])
    assert doc["instanceId"] == imds.metadata["instance-id"] and doc["region"] == "us-west-2"
    assert _get(f"{imds.endpoint}/1999-01-01/meta-data/", token)[0] == 404
    assert _get(f"{imds.endpoint}/latest/meta-data/nothing-here", token)[0] == 404


def test_token_required_by_default(imds):
    assert _get(f"{imds.endpoint}/latest/meta-data/instance-id")[0] == 401
    assert _get(f"{imds.endpoint}/latest/meta-data/instance-id", "forged")[0] == 401


def test_imdsv1_only_refuses_the_token_and_answers_without_one(imds):
    imds.tokens_disabled = True
    assert _token(imds.endpoint)[0] == 403
    assert _get(f"{imds.endpoint}/latest/meta-data/instance-id") == (200, imds.metadata["instance-id"])


def _instance(tmp_path: Path, **kw) -> qemu.Instance:
    return qemu.Instance(image=tmp_path / "disk.img", work_dir=tmp_path / "i", **kw)


def test_qemu_argv_boots_from_disk_alone_with_ec2_identity(tmp_path):
    argv = qemu.qemu_argv(_instance(tmp_path, imds_port=8123, ssh_port=2222), tmp_path / "c.log")
    joined = " ".join(argv)
    assert "-kernel" not in argv and "-initrd" not in argv and "-append" not in argv
    assert "-machine pc" in joined and "pflash" not in joined
    assert "type=1,manufacturer=Amazon EC2,product=m5.large,serial=ec2" in joined
    assert "asset=i-0123456789abcdef0" in joined
    netdev = argv[argv.index("-netdev") + 1]
    assert "net=169.254.0.0/16" in netdev and "restrict=on" in netdev
    assert "guestfwd=tcp:169.254.169.254:80-cmd:" in netdev and "TCP:127.0.0.1:8123" in netdev
    assert "hostfwd=tcp:127.0.0.1:2222-:22" in netdev
    assert f"file={tmp_path / 'i' / 'root-volume.qcow2'},format=qcow2" in joined


def test_qemu_argv_uefi_uses_ovmf_and_its_own_variables(tmp_path):
    argv = qemu.qemu_argv(_instance(tmp_path, firmware="uefi"), tmp_path / "c.log")
    joined = " ".join(argv)
    assert "-machine q35" in joined
    assert f"readonly=on,file={qemu.OVMF_CODE}" in joined
    assert f"file={tmp_path / 'i' / 'efi-vars.fd'}" in joined
    assert "guestfwd" not in joined  # no IMDS port: nothing answers at 169.254.169.254


def test_system_uuid_looks_like_ec2s():
    inst = qemu.Instance(image=Path("x"), work_dir=Path("y"), instance_id="i-0abc")
    uuid = inst.system_uuid()
    assert uuid.startswith("ec2") and len(uuid) == 36 and uuid.count("-") == 4
    assert uuid == qemu.Instance(image=Path("x"), work_dir=Path("z"), instance_id="i-0abc").system_uuid()


def test_unknown_firmware_and_imds_mode_are_refused(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 512)
    with pytest.raises(launch.LaunchError, match="--firmware"):
        launch.launch(launch.LaunchOptions(disk=disk, work_dir=tmp_path, firmware="coreboot"))
    with pytest.raises(launch.LaunchError, match="--imds"):
        launch.launch(launch.LaunchOptions(disk=disk, work_dir=tmp_path, imds="v3"))
    with pytest.raises(launch.LaunchError, match="not found"):
        launch.launch(launch.LaunchOptions(disk=tmp_path / "none.img", work_dir=tmp_path))


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        ("ec2-user@127.0.0.1:2222", ("ec2-user", "127.0.0.1", 2222)),
        ("root@node.example", ("root", "node.example", 22)),
        ("ec2-user@[::1]:2200", ("ec2-user", "::1", 2200)),
    ],
)
def test_ssh_targets(target, parsed):
    assert parse_ssh_target(target) == parsed


@pytest.mark.parametrize("target", ["127.0.0.1:22", "user@", "user@host:0", "user@host:99999", "User Name@h"])
def test_bad_ssh_targets_name_the_target(target):
    with pytest.raises(ValueError, match="--ssh"):
        parse_ssh_target(target)


def _report(**units) -> dict:
    base = {
        "nodeforge-bootstrap.service": {"ActiveState": "active", "Result": "success"},
        "kubelet.service": {"ActiveState": "active", "SubState": "running"},
    }
    base.update(units)
    return {
        "state": "running",
        "failed": [],
        "extra": {"units": base, "kubelet_args": ["--config=x"], "container": {"ran": True}},
    }


def test_assessment_names_what_did_not_happen(tmp_path):
    options = launch.LaunchOptions(disk=tmp_path, work_dir=tmp_path)
    assert launch._assess(_report(), options) == []
    failed = _report(**{"nodeforge-bootstrap.service": {"ActiveState": "failed", "Result": "exit-code"}})
    failed["state"], failed["failed"] = "degraded", ["nodeforge-bootstrap.service"]
    problems = launch._assess(failed, options)
    assert any("degraded" in p for p in problems) and any("nodeforge-bootstrap.service: failed" in p for p in problems)
    no_container = _report()
    no_container["extra"]["container"] = {"ran": False, "detail": "no probe image"}
    assert launch._assess(no_container, options) == ["containerd did not run a container: no probe image"]


def test_dynamic_folder_lists_the_identity_document(imds):
    _, token = _token(imds.endpoint)
    assert _get(f"{imds.endpoint}/2021-03-23/dynamic/", token) == (200, "instance-identity/")
    assert _get(f"{imds.endpoint}/2021-03-23/dynamic/instance-identity/", token) == (200, "document")


def test_in_place_instance_boots_the_image_itself(tmp_path):
    instance = _instance(tmp_path, in_place=True)
    instance.image.parent.mkdir(parents=True, exist_ok=True)
    instance.image.write_bytes(b"\0" * 4096)
    qemu.create_overlay(instance)
    assert not instance.overlay.exists()  # no qcow2: the guest writes the image
    joined = " ".join(qemu.qemu_argv(instance, tmp_path / "c.log"))
    assert f"file={instance.image},format=raw,if=virtio" in joined and "qcow2" not in joined


def test_run_to_report_until_a_console_line(tmp_path):
    console = tmp_path / "console.log"
    script = f"echo 'nodeforge-grub: booting slot b' >> {console}; sleep 30"
    result, proc = qemu.run_to_report(["sh", "-c", script], console, timeout=20, label="t", until="booting slot b")
    assert proc is None and result.report == {} and "booting slot b" in result.console_text
    assert result.seconds < 20
    with pytest.raises(qemu.BootCheckError, match="'never printed'"):
        qemu.run_to_report(["sh", "-c", "exit 0"], console, timeout=20, label="t", until="never printed")


def test_instance_store_disks_are_nvme_with_ec2_serials(tmp_path):
    inst = _instance(tmp_path, instance_store=(1 << 30, 1 << 30), instance_id="i-0abc")
    argv = qemu.qemu_argv(inst, tmp_path / "c.log")
    devices = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-device" and argv[i + 1].startswith("nvme,")]
    serials = [inst.instance_store_serial(0), inst.instance_store_serial(1)]
    assert devices == [f"nvme,drive=store{n},serial={serials[n]}" for n in (0, 1)]
    for serial in serials:  # EC2's form, the NVMe serial field's 20 characters; one per disk and instance
        assert len(serial) == 20 and serial.startswith("AWS") and serial[3:].isalnum() and serial.isupper()
    assert serials[0] != serials[1]
    assert serials[0] != _instance(tmp_path, instance_id="i-0def").instance_store_serial(0)
    joined = " ".join(argv)
    assert f"file={tmp_path / 'i' / 'instance-store-1.img'},format=raw,if=none,id=store1" in joined
    assert "nvme" not in " ".join(qemu.qemu_argv(_instance(tmp_path), tmp_path / "c.log"))


def test_instance_store_files_are_sparse_blank_and_survive_a_restart(tmp_path):
    inst = _instance(tmp_path, instance_store=(8 << 30,))
    inst.work_dir.mkdir(parents=True)
    qemu.create_instance_store(inst)
    disk = inst.instance_store_disk(0)
    assert disk.stat().st_size == 8 << 30 and disk.stat().st_blocks == 0
    with disk.open("r+b") as fh:
        fh.write(b"xfs")
    qemu.create_instance_store(inst)  # the same instance started again (a reboot keeps instance store)
    with disk.open("rb") as fh:
        assert fh.read(3) == b"xfs"


def test_udev_rule_gives_the_name_ec2s_model_number_gives():
    rule = qemu.INSTANCE_STORE_UDEV_RULE
    lines = [line for line in rule.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    assert 'ATTRS{model}=="QEMU NVMe Ctrl"' in lines[0] and 'ATTRS{serial}=="AWS*"' in lines[0]
    # what 60-persistent-storage.rules makes of EC2's model number: nvme-<model, spaces as _>_<serial>
    assert 'SYMLINK+="disk/by-id/nvme-Amazon_EC2_NVMe_Instance_Storage_$attr{serial}"' in lines[0]
    assert qemu.INSTANCE_STORE_UDEV_PATH.startswith("etc/udev/rules.d/") and qemu.INSTANCE_STORE_UDEV_PATH.endswith(
        ".rules"
    )


@pytest.mark.parametrize(
    ("spec", "sizes"),
    [
        ("0", ()),
        ("2", (8 << 30,) * 2),
        ("2x4G", (4 << 30,) * 2),
        ("1x512m", (512 << 20,)),
        ("3x1048576", (1 << 20,) * 3),
    ],
)
def test_parse_instance_store(spec, sizes):
    assert launch.parse_instance_store(spec) == sizes


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("two", "N must be a whole number"),
        ("25", "between 0 and 24"),
        ("2x", "SIZE must be a positive"),
        ("2x0G", "SIZE must be a positive"),
        ("2x4Q", "SIZE must be a positive"),
        ("2x1000", "multiple of 512"),
        ("-1", "N must be a whole number"),
    ],
)
def test_parse_instance_store_refuses_with_the_option_named(spec, why):
    with pytest.raises(launch.LaunchError, match=f"--instance-store '{spec}': .*{why}"):
        launch.parse_instance_store(spec)
