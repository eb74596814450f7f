"""`nodeforge launch` and `nodeforge verify --ssh`: bad input is refused before anything boots, naming the input."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from nodeforge.cli import app

runner = CliRunner()


def test_launch_of_a_missing_image_names_it(tmp_path):
    result = runner.invoke(app, ["launch", str(tmp_path / "nope.tar")])
    assert result.exit_code == 2
    assert "nope.tar: no such image" in result.output


def test_launch_refuses_a_file_that_is_neither_disk_nor_tar(tmp_path):
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 4096)
    result = runner.invoke(app, ["launch", str(junk)])
    assert result.exit_code == 2
    assert "neither a bootable disk image" in result.output


def test_launch_refuses_unknown_firmware_and_imds_mode(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 510 + b"\x55\xaa")
    result = runner.invoke(app, ["launch", str(disk), "--firmware", "coreboot"])
    assert result.exit_code == 2 and "--firmware" in result.output
    result = runner.invoke(app, ["launch", str(disk), "--imds", "v3"])
    assert result.exit_code == 2 and "--imds" in result.output


def test_launch_refuses_a_bad_instance_store(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 510 + b"\x55\xaa")
    result = runner.invoke(app, ["launch", str(disk), "--instance-store", "2x4Q"])
    assert result.exit_code == 2 and "--instance-store '2x4Q': SIZE must be" in result.output


def test_launch_refuses_unreadable_user_data(tmp_path):
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\0" * 510 + b"\x55\xaa")
    result = runner.invoke(app, ["launch", str(disk), "--user-data", str(tmp_path / "missing.mime")])
    assert result.exit_code == 2 and "missing.mime" in result.output


def test_verify_needs_an_image_or_ssh_but_not_both():
    assert runner.invoke(app, ["verify"]).exit_code == 2
    result = runner.invoke(app, ["verify", "nodeforge/node:x", "--ssh", "ec2-user@127.0.0.1:22"])
    assert result.exit_code == 2


def test_verify_ssh_refuses_a_bad_target_and_a_missing_key(tmp_path):
    result = runner.invoke(app, ["verify", "--ssh", "127.0.0.1:22"])
    assert result.exit_code == 2 and "USER@HOST" in " ".join(result.output.split())
    result = runner.invoke(app, ["verify", "--ssh", "ec2-user@127.0.0.1:22", "-i", str(tmp_path / "nokey")])
    assert result.exit_code == 2 and "nosuchkeyfile" in re.sub(r"[\s│]", "", result.output)


def test_launch_summary_lists_the_instance_store_as_the_node_reported():
    from nodeforge.vm.launch_cli import _local_storage_summary

    storage = {  # the shape node_probe reports (from a RAID0 first boot)
        "disks": {"nvme-Amazon_EC2_NVMe_Instance_Storage_AWS0": "/dev/nvme0n1"},
        "arrays": {"kubernetes": {"device": "/dev/md127", "level": "raid0", "members": ["nvme0n1"], "fstype": "xfs"}},
        "mounts": [
            {"target": "/mnt/k8s-disks/0", "device": "9:127", "root": "/", "fstype": "xfs", "source": "/dev/md127"},
            {
                "target": "/var/lib/kubelet",
                "device": "9:127",
                "root": "/kubelet",
                "fstype": "xfs",
                "source": "/dev/md127",
            },
        ],
    }
    assert _local_storage_summary(storage) == [
        "disk nvme-Amazon_EC2_NVMe_Instance_Storage_AWS0 -> /dev/nvme0n1",
        "/dev/md/kubernetes: raid0 of nvme0n1, xfs",
        "/mnt/k8s-disks/0: /dev/md127 (xfs)",
        "/var/lib/kubelet: /dev/md127/kubelet (xfs)",
    ]
    assert _local_storage_summary({}) == []
