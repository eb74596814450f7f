"""Image hygiene scan: every rule fires on a dirty root, nothing fires on a clean one."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from nodeforge.bake.hygiene import (
    RULES,
    HygieneError,
    SuidSgidPolicy,
    proxy_setting,
    scan_rootfs_tar,
    suid_sgid_allowlist,
    suid_sgid_policy,
)
from nodeforge.cli import app

KEY = (
    b"-----BEGIN OPENSSH PRIVATE KEY-----\n"
    b"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
    b"-----END OPENSSH PRIVATE KEY-----\n"
)
REPO = Path(__file__).resolve().parents[2]
# AWS's documented example key id, with the EXAMPLE suffix dropped so it counts as real
FAKE_KEY_ID = b"AKIAIOSFODNN7ABCDEFG"


def add(tar: tarfile.TarFile, name: str, data: bytes = b"", mode: int = 0o644, kind: bytes = tarfile.REGTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.type = mode, kind
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def make_tar(path: Path, entries: list[tuple]) -> Path:
    with tarfile.open(path, "w") as tar:
        add(tar, "./", kind=tarfile.DIRTYPE, mode=0o755)
        add(tar, "./tmp", kind=tarfile.DIRTYPE, mode=0o1777)
        add(tar, "./var/tmp", kind=tarfile.DIRTYPE, mode=0o1777)
        add(tar, "./etc/machine-id", b"")
        add(tar, "./usr/bin/true", b"\x7fELF...", mode=0o755)
        for entry in entries:
            add(tar, *entry)
    return path


DIRTY = [
    ("./etc/ssh/ssh_host_ed25519_key", KEY, 0o600),
    ("./etc/ssh/ssh_host_ed25519_key.pub", b"ssh-ed25519 AAAA host"),
    ("./root/.ssh/authorized_keys", b"ssh-ed25519 AAAA user"),
    ("./var/lib/dbus/machine-id", b"0123456789abcdef0123456789abcdef\n"),
    ("./var/lib/cloud/instances/i-0123/boot-finished", b"done"),
    ("./root/.bash_history", b"aws configure\n"),
    ("./var/cache/apt/archives/kubelet_1.31_amd64.deb", b"!<arch>"),
    ("./var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease", b"Origin: Debian"),
    ("./var/log/cloud-init.log", b"boot\n"),
    ("./opt/app/deploy.pem", KEY),
    ("./home/ec2-user/.aws/credentials", b"[default]\n"),
    ("./etc/profile.d/env.sh", b"export AWS_ACCESS_KEY_ID=" + FAKE_KEY_ID + b"\n"),
    ("./etc/app.conf", b"aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzzzzzzzz\n"),
    ("./etc/kubernetes/world.conf", b"x", 0o666),
    ("./opt/shared", b"", 0o777, tarfile.DIRTYPE),
    ("./root/.rhosts", b"+ +\n", 0o600),
    ("./etc/hosts.equiv", b"+\n"),
    ("./home/ec2-user/.netrc", b"machine example.invalid login me password secret\n", 0o600),
    ("./usr/local/bin/helper", b"\x7fELF", 0o4755),
    ("./usr/bin/wall", b"\x7fELF", 0o2755),
    (
        "./etc/passwd",
        b"root:x:0:0:root:/root:/bin/bash\ntoor:x:0:0::/root:/bin/sh\nbin:x:2:2::/bin:/usr/sbin/nologin\n",
    ),
    ("./etc/apt/apt.conf.d/01proxy", b'Acquire::http::Proxy "http://127.0.0.1:3142";\n'),
]


def test_every_rule_fires_on_a_dirty_root(tmp_path):
    result = scan_rootfs_tar(make_tar(tmp_path / "dirty.tar", DIRTY))
    fired = {f.rule for f in result.findings}
    assert fired == set(RULES), f"rules that did not fire: {set(RULES) - fired}"
    paths = {(f.rule, f.path) for f in result.findings}
    assert ("private-key", "/opt/app/deploy.pem") in paths
    assert ("aws-credentials", "/etc/profile.d/env.sh") in paths
    assert ("aws-credentials", "/etc/app.conf") in paths
    assert ("world-writable", "/opt/shared") in paths
    assert ("machine-id", "/var/lib/dbus/machine-id") in paths
    assert {("rhosts", "/root/.rhosts"), ("rhosts", "/etc/hosts.equiv"), ("netrc", "/home/ec2-user/.netrc")} <= paths
    assert {("suid-sgid", "/usr/local/bin/helper"), ("suid-sgid", "/usr/bin/wall")} <= paths
    uid0 = [f for f in result.findings if f.rule == "extra-uid0"]
    assert [f.detail for f in uid0] == ["account toor has uid 0"]
    assert not result.to_dict()["clean"]


def test_clean_root_has_no_findings(tmp_path):
    clean = [
        ("./etc/ssh/sshd_config", b"PermitRootLogin no\n"),
        ("./var/log/journal", b"", 0o2755, tarfile.DIRTYPE),
        ("./var/log/wtmp", b""),
        ("./var/lib/apt/lists/lock", b""),
        ("./usr/share/doc/aws/example", b"AKIAIOSFODNN7EXAMPLE\n"),  # AWS's documented example id
        ("./usr/lib/libtls.so", b"-----BEGIN RSA PRIVATE KEY-----\x00%s\x00"),  # a format string, not a key
        ("./tmp/scratch", b"x", 0o666),
        ("./usr/bin/link", b"", 0o777, tarfile.SYMTYPE),
        ("./usr/bin/su", b"\x7fELF", 0o4755),  # on the hardening role's allow list
        ("./usr/sbin/unix_chkpwd", b"\x7fELF", 0o2755),
        ("./var/log/journal/x", b"", 0o2755, tarfile.DIRTYPE),  # SGID directories are not programs
        ("./etc/passwd", b"root:x:0:0:root:/root:/bin/bash\nbin:x:2:2::/bin:/usr/sbin/nologin\n"),
        ("./etc/netrc.d", b"", 0o755, tarfile.DIRTYPE),
        ("./etc/apt/apt.conf.d/70debconf", b'DPkg::Pre-Install-Pkgs {"/usr/sbin/dpkg-preconfigure --apt || true";};\n'),
        (
            "./etc/apt/apt.conf.d/99direct",
            b'Acquire::http::Proxy "DIRECT";\n// Acquire::http::Proxy "http://x:3142";\n',
        ),
        ("./etc/environment", b'PATH="/usr/local/bin:/usr/bin"\nno_proxy=localhost\n'),
        ("./etc/dnf/dnf.conf", b"[main]\nproxy=_none_\n"),
        ("./usr/share/doc/apt/examples/configure-index", b'Acquire::http::Proxy "http://127.0.0.1:3142";\n'),
    ]
    result = scan_rootfs_tar(make_tar(tmp_path / "clean.tar", clean))
    assert result.findings == [], result.findings
    assert result.to_dict()["clean"]


def test_packaged_test_vectors_are_reported_apart(tmp_path):
    """A key inside a file a package installed unchanged is the distribution's; a modified one is a finding."""
    digest = hashlib.md5(KEY, usedforsecurity=False).hexdigest()
    md5sums = f"{digest}  usr/lib/libgnutls.so.30\n{digest}  usr/lib/libchanged.so\n".encode()
    entries = [
        ("./var/lib/dpkg/info/libgnutls30.md5sums", md5sums),
        ("./usr/lib/libgnutls.so.30", KEY),
        ("./usr/lib/libchanged.so", KEY + b"tampered"),
    ]
    result = scan_rootfs_tar(make_tar(tmp_path / "vendor.tar", entries))
    assert result.vendor_keys == ["/usr/lib/libgnutls.so.30"]
    assert [(f.rule, f.path) for f in result.findings] == [("private-key", "/usr/lib/libchanged.so")]


def test_suid_sgid_allowlist_is_the_roles(tmp_path):
    """One list: the scan accepts exactly what the hardening role lets keep its bits."""
    role = yaml.safe_load((REPO / "roles/hardening/vars/suid_sgid.yml").read_text())
    assert suid_sgid_allowlist() == frozenset(role["hardening_suid_sgid_system_allowlist"])
    assert not suid_sgid_allowlist() & set(role["hardening_suid_sgid_system_blocklist"])
    # a file the role's block list names is a finding; an explicit allow list replaces the role's
    tar = make_tar(tmp_path / "keysign.tar", [("./usr/lib/openssh/ssh-keysign", b"\x7fELF", 0o4711)])
    assert [f.rule for f in scan_rootfs_tar(tar).findings] == ["suid-sgid"]
    assert scan_rootfs_tar(tar, SuidSgidPolicy(frozenset({"/usr/lib/openssh/ssh-keysign"}))).findings == []
    # container images' layers are the images', not the node's
    assert suid_sgid_policy().skipped_dirs == tuple(role["hardening_suid_sgid_skipped_dirs"])
    layer = "./var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/usr/bin/newgrp"
    assert scan_rootfs_tar(make_tar(tmp_path / "layer.tar", [(layer, b"\x7fELF", 0o4755)])).findings == []


def test_bad_allowlist_names_the_file(tmp_path):
    bad = tmp_path / "suid_sgid.yml"
    bad.write_text("hardening_suid_sgid_system_allowlist: [usr/bin/su]\nhardening_suid_sgid_skipped_dirs: []\n")
    with pytest.raises(HygieneError, match=r"suid_sgid\.yml: hardening_suid_sgid_system_allowlist must be"):
        suid_sgid_allowlist(bad)
    with pytest.raises(HygieneError, match=r"missing\.yml: cannot read"):
        suid_sgid_allowlist(tmp_path / "missing.yml")


def test_missing_and_bad_tar_name_the_file(tmp_path):
    with pytest.raises(HygieneError, match=r"missing\.tar: no such file"):
        scan_rootfs_tar(tmp_path / "missing.tar")
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    with pytest.raises(HygieneError, match=r"bad\.tar: not a readable tar"):
        scan_rootfs_tar(bad)


def test_scan_command(tmp_path):
    runner = CliRunner()
    dirty = make_tar(tmp_path / "dirty.tar", DIRTY)
    result = runner.invoke(app, ["scan", str(dirty), "--output", "json"])
    assert result.exit_code == 1
    assert '"rule": "ssh-host-key"' in result.stdout
    clean = make_tar(tmp_path / "clean.tar", [])
    result = runner.invoke(app, ["scan", str(clean)])
    assert result.exit_code == 0, result.stdout
    assert "0 findings" in result.stdout
    assert runner.invoke(app, ["scan", str(tmp_path / "nope.tar")]).exit_code == 2
    suid = make_tar(tmp_path / "suid.tar", [("./opt/tool", b"\x7fELF", 0o4755)])
    assert runner.invoke(app, ["scan", str(suid)]).exit_code == 1
    assert runner.invoke(app, ["scan", str(suid), "--allow-suid", "/opt/tool"]).exit_code == 0
    assert runner.invoke(app, ["scan", str(suid), "--allow-suid", "opt/tool"]).exit_code == 2


@pytest.mark.parametrize("python", ["3.8.18", "3.11.7"])
def test_scan_of_a_streamed_root_on_the_instance_interpreter(tmp_path, python):
    """On a build instance the scan reads `tar -C / -cf - .` on stdin, with the node's own Python (AL2: 3.8)."""
    import json
    import subprocess

    interpreter = Path.home() / ".pyenv" / "versions" / python / "bin" / "python3"
    if not interpreter.exists():
        pytest.skip(f"no CPython {python} here")
    script = Path(__file__).resolve().parents[2] / "src" / "nodeforge" / "bake" / "hygiene.py"

    def stream(files: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    dirty = stream({"./root/.bash_history": b"ls\n", "./etc/os-release": b"ID=amzn\n"})
    proc = subprocess.run([interpreter, script, "-"], input=dirty, capture_output=True, check=False)
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert [(f["rule"], f["path"]) for f in result["findings"]] == [("shell-history", "/root/.bash_history")]
    clean = subprocess.run([interpreter, script, "-"], input=stream({"./etc/os-release": b"x"}), capture_output=True)
    assert clean.returncode == 0 and json.loads(clean.stdout)["clean"] is True
    broken = subprocess.run([interpreter, script, "-"], input=b"not a tar", capture_output=True, check=False)
    assert broken.returncode == 2 and b"hygiene:" in broken.stderr


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("etc/apt/apt.conf", b'Acquire::http::Proxy "http://127.0.0.1:3142";'),
        ("etc/apt/apt.conf.d/02cache", b'Acquire::https::Proxy::deb.debian.org "http://cache:3142";'),
        ("etc/apt/apt.conf.d/02nested", b'Acquire {\n  http {\n    Proxy "http://10.0.0.1:3142";\n  };\n};\n'),
        ("etc/apt/apt.conf.d/02indented", b'  acquire::http::proxy "http://cache:3142";'),
        ("etc/dnf/dnf.conf", b"[main]\nproxy=http://cache:3128\n"),
        ("etc/yum.repos.d/amzn2.repo", b"[amzn2-core]\nproxy = http://cache:3128\n"),
        ("etc/environment", b'http_proxy="http://127.0.0.1:3142"\n'),
        ("etc/profile.d/proxy.sh", b"export HTTPS_PROXY=http://cache:3128\n"),
    ],
)
def test_proxy_settings_are_findings(path, content):
    """Every way apt, dnf/yum or the environment can keep a proxy is found; the finding shows the setting."""
    finding = proxy_setting(path, content)
    assert finding is not None and "proxy" in finding.lower(), (path, finding)


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("etc/apt/apt.conf.d/99direct", b'Acquire::http::Proxy "DIRECT";'),
        ("etc/apt/apt.conf.d/99commented", b'// Acquire::http::Proxy "http://cache:3142";\n# Proxy "x";'),
        ("etc/apt/apt.conf.d/99detect", b'Acquire::http::Proxy-Auto-Detect "";'),
        ("etc/dnf/dnf.conf", b"[main]\nproxy=_none_\n"),
        ("etc/environment", b"no_proxy=localhost,169.254.169.254\n"),
        ("etc/default/apt-cacher-ng", b'http_proxy="http://cache:3142"\n'),  # not a file apt or a login reads
    ],
)
def test_no_proxy_setting_is_no_finding(path, content):
    assert proxy_setting(path, content) is None
