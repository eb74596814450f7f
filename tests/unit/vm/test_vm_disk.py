"""Fast tests for nodeforge.vm.disk: report parsing, build errors, and a tiny real mkfs (no QEMU)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from nodeforge.vm import disk as di

REPORT = {
    "probe": 1,
    "state": "degraded",
    "wait_rc": 1,
    "failed": ["systemd-networkd.service"],
    "units": {"containerd": "active", "kubelet": "inactive"},
    "root": "/dev/vda ext4   rw,relatime,errors=remount-ro",  # findmnt pads columns
    "jobs": [],
    "virt": "qemu",
}


def _console(*reports: dict, noise: str = "[    1.234] random kernel line\n") -> str:
    parts = [noise, "Welcome to Debian\n"]
    for rep in reports:
        parts += [f"\n{di.PROBE_BEGIN}\n", json.dumps(rep), f"\n{di.PROBE_END}\n", noise]
    return "".join(parts).replace("\n", "\r\n")


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _tiny_rootfs(path: Path, *, kernel: bool = True, initrd: bool = True) -> Path:
    with tarfile.open(path, "w") as tar:
        for d in ("etc", "boot", "usr", "usr/bin"):
            _add_dir(tar, d)
        _add(tar, "etc/fstab", b"# UNCONFIGURED FSTAB FOR BASE SYSTEM\n")
        _add(tar, "etc/hosts")
        _add(tar, "etc/hostname")
        _add(tar, ".dockerenv")
        _add(tar, "usr/bin/hello", b"#!/bin/sh\necho hi\n", 0o755)
        if kernel:
            _add(tar, "boot/vmlinuz-6.1.0-9-cloud-amd64", b"old kernel")
            _add(tar, "boot/vmlinuz-6.1.0-10-cloud-amd64", b"new kernel")
        if initrd:
            _add(tar, "boot/initrd.img-6.1.0-9-cloud-amd64", b"old initrd")
            _add(tar, "boot/initrd.img-6.1.0-10-cloud-amd64", b"new initrd")
    return path


# ---------------------------------------------------------------------------------- report parser


def test_parse_report_crlf_and_noise():
    rep = di.parse_probe_report(_console(REPORT))
    assert rep["state"] == "degraded"
    assert rep["failed"] == ["systemd-networkd.service"]
    assert rep["units"] == {"containerd": "active", "kubelet": "inactive"}
    assert rep["root"] == "/dev/vda ext4 rw,relatime,errors=remount-ro"


def test_parse_report_takes_last_complete_report():
    second = {**REPORT, "state": "running", "failed": []}
    rep = di.parse_probe_report(_console(REPORT, second) + f"\r\n{di.PROBE_BEGIN}\r\n{{trunc")
    assert rep["state"] == "running"
    assert rep["failed"] == []


def test_parse_report_ignores_interleaved_kernel_line():
    text = f"{di.PROBE_BEGIN}\n[   40.1] kernel says hi\n{json.dumps(REPORT)}\n{di.PROBE_END}\n"
    assert di.parse_probe_report(text)["units"]["containerd"] == "active"


def test_parse_report_empty_lists_and_missing_fields():
    rep = di.parse_probe_report(f'{di.PROBE_BEGIN}\n{{"state":"running"}}\n{di.PROBE_END}\n')
    assert rep["failed"] == [] and rep["units"] == {} and rep["root"] == ""


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all\n",
        f'{di.PROBE_BEGIN}\n{{"state":"running"}}\n',  # report cut off (no END)
        f'{{"state":"running"}}\n{di.PROBE_END}\n',  # END without BEGIN
        f'{di.PROBE_BEGIN}\n{{"state": running\n{di.PROBE_END}\n',  # bad JSON
        f"{di.PROBE_BEGIN}\n[1, 2]\n{di.PROBE_END}\n",  # not an object
        f"{di.PROBE_BEGIN}\n{di.PROBE_END}\n",  # empty
    ],
)
def test_parse_report_errors(text):
    with pytest.raises(di.ProbeReportError):
        di.parse_probe_report(text)


def test_boot_result_ok():
    kw = {"unit_states": {}, "root_mount": "", "seconds": 1.0, "console_log": Path("x")}
    assert di.BootResult(system_state="running", failed_units=[], **kw).ok
    assert not di.BootResult(system_state="degraded", failed_units=[], **kw).ok
    assert not di.BootResult(system_state="running", failed_units=["a.service"], **kw).ok


def test_qemu_command_is_tcg_without_network(tmp_path):
    img = di.DiskImage(disk=tmp_path / "d,isk.img", kernel=tmp_path / "k", initrd=tmp_path / "i", size_bytes=1)
    cmd = di.qemu_command(img, tmp_path / "console.log", memory_mb=512, cpus=2)
    joined = " ".join(cmd)
    assert cmd[cmd.index("-accel") + 1] == "tcg"
    assert cmd[cmd.index("-nic") + 1] == "none"
    assert "-netdev" not in cmd and "kvm" not in joined and "-cpu" not in cmd
    assert f"file={tmp_path}/d,,isk.img,format=raw,if=virtio,snapshot=on" in cmd
    append = cmd[cmd.index("-append") + 1]
    assert "root=/dev/vda" in append and "console=ttyS0" in append and di.PROBE_CMDLINE_FLAG in append


# ----------------------------------------------------------------------------------- build errors


def test_missing_tar(tmp_path):
    missing = tmp_path / "nope.tar"
    with pytest.raises(di.RootfsTarNotFoundError, match=r"nope\.tar"):
        di.build_disk_image(missing, tmp_path / "out")
    assert isinstance(di.RootfsTarNotFoundError("x"), FileNotFoundError)


@pytest.mark.parametrize(("kernel", "initrd"), [(False, False), (True, False), (False, True)])
def test_tar_without_kernel_or_initrd(tmp_path, kernel, initrd):
    tar = _tiny_rootfs(tmp_path / "rootfs.tar", kernel=kernel, initrd=initrd)
    out = tmp_path / "out"
    with pytest.raises(di.KernelNotFoundError, match=r"rootfs\.tar"):
        di.build_disk_image(tar, out)
    assert sorted(p.name for p in out.iterdir()) == []  # scratch dir and temp files cleaned up


def test_corrupt_tar(tmp_path):
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"this is not a tar archive" * 100)
    with pytest.raises(di.RootfsTarError, match=r"bad\.tar"):
        di.build_disk_image(bad, tmp_path / "out")


def test_invalid_probe_unit_name(tmp_path):
    with pytest.raises(ValueError, match="unit name"):
        di.build_disk_image(tmp_path / "x.tar", tmp_path, probe_units=["evil; reboot"])


# ------------------------------------------------------------------------- tiny real build (mkfs)

needs_root_e2fs = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("debugfs"),
    reason="needs root, mkfs.ext4 and debugfs",
)


def _debugfs_cat(disk: Path, path: str) -> str:
    out = subprocess.run(["debugfs", "-R", f"cat {path}", str(disk)], capture_output=True, text=True, check=True)
    return out.stdout


@needs_root_e2fs
def test_build_tiny_image(tmp_path):
    tar = _tiny_rootfs(tmp_path / "rootfs.tar")
    out = tmp_path / "out"
    image = di.build_disk_image(tar, out, probe_units=["containerd", "kubelet"])

    assert image.kernel_version == "6.1.0-10-cloud-amd64"  # highest version wins, not lexical order
    assert image.kernel.read_bytes() == b"new kernel"
    assert image.initrd.read_bytes() == b"new initrd"
    assert image.size_bytes == image.disk.stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == ["disk.img", "initrd.img", "vmlinuz"]

    fstab = _debugfs_cat(image.disk, "/etc/fstab")
    assert f"LABEL={di.FS_LABEL}\t/\text4" in fstab and "UNCONFIGURED" in fstab
    assert "localhost" in _debugfs_cat(image.disk, "/etc/hosts")
    assert "ConditionKernelCommandLine=nodeforge.bootprobe=1" in _debugfs_cat(
        image.disk, f"/etc/systemd/system/{di.PROBE_UNIT}"
    )
    assert "UNITS='containerd kubelet'" in _debugfs_cat(image.disk, di.PROBE_SCRIPT)
    listing = subprocess.run(
        ["debugfs", "-R", "ls -l /", str(image.disk)], capture_output=True, text=True, check=True
    ).stdout
    assert ".dockerenv" not in listing
    for d in ("proc", "sys", "dev", "run", "tmp"):
        assert f" {d}" in listing
    link = subprocess.run(
        [
            "debugfs",
            "-R",
            f"stat /etc/systemd/system/multi-user.target.wants/{di.PROBE_UNIT}",
            str(image.disk),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"/etc/systemd/system/{di.PROBE_UNIT}" in link
    assert any("dockerenv" in m for m in image.modifications)
    fsck = subprocess.run(["e2fsck", "-fn", str(image.disk)], capture_output=True, text=True, check=False)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


@needs_root_e2fs
def test_build_size_too_small(tmp_path):
    tar = tmp_path / "rootfs.tar"
    _tiny_rootfs(tar)
    with tarfile.open(tar, "a") as t:
        _add(t, "usr/bin/big", os.urandom(3 * 1024 * 1024))
    out = tmp_path / "out"
    with pytest.raises(di.MkfsError, match=r"disk\.img"):
        di.build_disk_image(tar, out, size_mb=2)
    assert list(out.iterdir()) == []


@needs_root_e2fs
def test_mkfs_failure_names_file(tmp_path, monkeypatch):
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "mkfs.ext4").write_text("#!/bin/sh\necho 'mkfs exploded' >&2\nexit 1\n")
    (fake / "mkfs.ext4").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    tar = _tiny_rootfs(tmp_path / "rootfs.tar")
    out = tmp_path / "out"
    with pytest.raises(di.MkfsError, match=r"disk\.img(.|\n)*mkfs exploded"):
        di.build_disk_image(tar, out)
    assert list(out.iterdir()) == []


# ------------------------------------------------------------------- shared pieces (nodeforge.immutable)


def test_parse_report_keeps_extra_facts():
    rep = di.parse_probe_report(_console({**REPORT, "extra": {"root_source": "/dev/mapper/nf-root"}}))
    assert rep["extra"] == {"root_source": "/dev/mapper/nf-root"}


def test_kernel_cmdline_root_args_and_writable_disk(tmp_path):
    line = di.kernel_cmdline(root_args=["root=/dev/mapper/nf-root", "ro"], extra=["x=1"])
    assert line.startswith("root=/dev/mapper/nf-root ro ") and "root=/dev/vda" not in line and line.endswith("x=1")
    img = di.DiskImage(disk=tmp_path / "d.img", kernel=tmp_path / "k", initrd=tmp_path / "i", size_bytes=1)
    cmd = di.qemu_command(img, tmp_path / "c.log", snapshot=False)
    assert f"file={tmp_path}/d.img,format=raw,if=virtio" in cmd
    assert not any("snapshot=on" in arg for arg in cmd)


def test_install_boot_probe_with_extra_script(tmp_path):
    di.install_boot_probe(tmp_path, ["containerd"], extra_script="#!/bin/sh\necho '{}'\n")
    script = (tmp_path / di.PROBE_SCRIPT.lstrip("/")).read_text()
    assert f"[ -x {di.PROBE_EXTRA_SCRIPT} ]" in script and "UNITS='containerd'" in script
    extra = tmp_path / di.PROBE_EXTRA_SCRIPT.lstrip("/")
    assert extra.read_text().startswith("#!/bin/sh") and extra.stat().st_mode & 0o111
    assert (tmp_path / "etc/systemd/system/multi-user.target.wants" / di.PROBE_UNIT).is_symlink()
    with pytest.raises(ValueError, match="unit name"):
        di.install_boot_probe(tmp_path, ["bad unit"])


def test_probe_script_is_valid_sh_with_extra_hook(tmp_path):
    script = tmp_path / "probe"
    script.write_text(di._probe_script(["containerd"]))
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0


def test_extract_rootfs_missing_tar(tmp_path):
    with pytest.raises(di.RootfsTarNotFoundError, match=r"gone\.tar"):
        di.extract_rootfs(tmp_path / "gone.tar", tmp_path)
