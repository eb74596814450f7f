"""containerd: packages, configuration, service, and a real container run inside the instance."""

import json

import pytest
from conftest import FIXTURES

pytestmark = pytest.mark.containerd


def test_containerd_running(host):
    service = host.service("containerd")
    assert service.is_enabled
    assert service.is_running


def test_ctr_answers(host):
    out = host.check_output("ctr version")
    assert "Server:" in out


def test_runc_present(host):
    assert host.run("runc --version").rc == 0


def test_config_file(host):
    conf = host.file("/etc/containerd/config.toml")
    assert conf.user == "root" and conf.mode == 0o644
    text = conf.content_string
    assert "SystemdCgroup = true" in text
    assert "/etc/containerd/certs.d" in text
    assert "eks/pause" in text


def test_effective_config(host):
    """containerd itself parsed our file: the merged configuration carries our values."""
    dump = host.check_output("containerd config dump")
    assert "SystemdCgroup = true" in dump
    assert 'bin_dir = "/opt/cni/bin"' in dump or 'bin_dirs = ["/opt/cni/bin"]' in dump


def test_cni_plugins(host):
    assert host.file("/etc/cni/net.d").is_directory
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        assert host.file(f"/opt/cni/bin/{plugin}").exists, plugin


def test_registry_hosts_parse(host):
    """Every hosts.toml is valid TOML with at least one mirror host."""
    script = (
        "import json,pathlib,tomllib;"
        "print(json.dumps({str(p): tomllib.loads(p.read_text()) "
        "for p in pathlib.Path('/etc/containerd/certs.d').glob('*/hosts.toml')}))"
    )
    parsed = json.loads(host.check_output(f'python3 -c "{script}"'))
    for path, doc in parsed.items():
        assert doc.get("host"), f"{path} declares no host"


def test_runs_a_container(host, put_file):
    """Import a locally built OCI image and run a container from it with runc."""
    put_file(host, FIXTURES / "busybox-oci.tar", "/var/tmp/nodeforge-fixture-oci.tar")
    try:
        host.check_output("ctr -n nodeforge-test images import /var/tmp/nodeforge-fixture-oci.tar")
        out = host.check_output(
            "ctr -n nodeforge-test run --rm localhost/nodeforge/fixture-busybox:1 nodeforge-smoke echo container-ok"
        )
        assert out.strip() == "container-ok"
    finally:
        host.run("ctr -n nodeforge-test images rm localhost/nodeforge/fixture-busybox:1")
        host.run("rm -f /var/tmp/nodeforge-fixture-oci.tar")


def test_config_imports_dropins(host):
    assert 'imports = ["/etc/containerd/config.d/*.toml"]' in host.file("/etc/containerd/config.toml").content_string
    assert host.file("/etc/containerd/config.d").is_directory


def test_pinned_version_locked(host):
    """Where the scenario pins containerd (containerd_package_version), the package is held at that version."""
    if host.backend.NAME != "ansible":
        pytest.skip("needs the inventory to know the pin")
    pin = host.ansible.get_variables().get("containerd_package_version", "")
    if not pin:
        pytest.skip("containerd not pinned in this scenario")
    assert host.package("containerd").version.startswith(pin)
    assert "hold" in host.check_output("dpkg --get-selections containerd")
