"""cloud_init: cloud-init with the Ec2 datasource (IMDSv2), the default user, an SSH server with per-instance keys."""

import re

import pytest
import yaml

pytestmark = pytest.mark.cloud_init

CONFIG = "/etc/cloud/cloud.cfg.d/05_nodeforge.cfg"
STAGE_LISTS = ("cloud_init_modules", "cloud_config_modules", "cloud_final_modules")
# Modules of Debian's and Ubuntu's cloud.cfg that cloud-init's amazon variant does not list (upstream
# config/cloud.cfg.tmpl): the Debian stand-in must not run them where an Amazon Linux node would not.
DEBIAN_ONLY_MODULES = {"snap", "grub_dpkg", "apt_pipelining", "apt_configure", "byobu", "fan", "landscape", "lxd"}
# What first boot needs of them: user-data scripts and commands, the default user and its key, host keys, hostname.
FIRST_BOOT_MODULES = {"bootcmd", "write_files", "set_hostname", "users_groups", "ssh", "runcmd", "scripts_user"}
# Those of them that run whatever the user data holds (the others skip without their cloud-config key).
ALWAYS_RUN_MODULES = {"set_hostname", "users_groups", "ssh", "scripts_user"}


def _booted(host) -> bool:
    """True on a booted VM (not a container): where cloud-init and the network service really run."""
    virt = host.run("systemd-detect-virt --container")
    return virt.rc != 0


def test_cloud_init_installed(host):
    assert host.exists("cloud-init")
    assert host.run("cloud-init --version").rc == 0


def test_ec2_datasource_only(host):
    conf = host.file(CONFIG)
    assert conf.exists and conf.user == "root" and conf.mode == 0o644
    data = yaml.safe_load(conf.content_string)
    assert data["datasource_list"] == ["Ec2", "None"]
    assert data["datasource"]["Ec2"]["metadata_urls"] == ["http://169.254.169.254"]
    assert data["disable_root"] is True and data["ssh_pwauth"] is False
    assert data["system_info"]["default_user"]["name"] == "ec2-user"
    assert data["system_info"]["default_user"]["lock_passwd"] is True


@pytest.mark.parametrize("unit", ["cloud-init-local", "cloud-init", "cloud-config", "cloud-final"])
def test_cloud_init_stages_enabled_but_not_in_containers(host, unit):
    assert host.service(unit).is_enabled
    dropin = host.file(f"/etc/systemd/system/{unit}.service.d/10-nodeforge-not-in-container.conf")
    assert "ConditionVirtualization=!container" in dropin.content_string


def test_cloud_init_runs_before_ssh_and_the_agent_after_network(host):
    if not host.file("/etc/systemd/system/nodeforge-bootstrap.service").exists:
        pytest.skip("the bootstrap agent is not installed here (the cloud_init role converged on its own)")
    after = host.run("systemctl show -p After --value nodeforge-bootstrap.service").stdout.split()
    assert "network-online.target" in after


def test_ssh_server_makes_missing_host_keys(host):
    unit = "ssh" if host.file("/lib/systemd/system/ssh.service").exists else "sshd"
    assert host.service(unit).is_enabled
    off = host.file(f"/etc/systemd/system/{unit}.service.d/10-nodeforge-not-in-container.conf")
    assert "ConditionVirtualization=!container" in off.content_string
    dropin = host.file(f"/etc/systemd/system/{unit}.service.d/10-nodeforge-host-keys.conf")
    assert dropin.exists
    lines = dropin.content_string.splitlines()
    # the distribution's `sshd -t` runs after the keys are made (a reset list, then keys, then the test)
    assert lines.index("ExecStartPre=") < lines.index("ExecStartPre=/usr/sbin/sshd -t")
    for key_type in ("ed25519", "ecdsa"):
        assert f"-t {key_type} -N" in dropin.content_string


def test_network_service_enabled_but_not_in_containers(host):
    service = host.service("systemd-networkd")
    assert service.is_enabled
    dropin = host.file("/etc/systemd/system/systemd-networkd.service.d/10-nodeforge-not-in-container.conf")
    assert "ConditionVirtualization=!container" in dropin.content_string


def test_first_boot_ran_from_imds(host):
    """On the booted node: cloud-init finished with the Ec2 datasource, and the default user has the IMDS key."""
    if not _booted(host):
        pytest.skip("cloud-init runs only on a booted instance (this is a container)")
    status = host.run("cloud-init status --long")
    assert "status: done" in status.stdout, status.stdout + status.stderr
    assert "DataSourceEc2" in status.stdout, status.stdout
    keys = host.file("/home/ec2-user/.ssh/authorized_keys")
    assert keys.exists and keys.user == "ec2-user" and keys.mode == 0o600
    assert keys.content_string.strip()


def _module(name: str) -> str:
    return name.replace("-", "_")


def test_stage_modules_as_amazon_ships_them(host):
    """The Debian stand-in runs the amazon variant's module lists (the role writes them); an Amazon Linux AMI keeps
    its own cloud.cfg, which are those."""
    if host.system_info.distribution not in ("debian", "ubuntu"):
        pytest.skip("the AMI's own cloud.cfg lists are kept on Amazon Linux")
    data = yaml.safe_load(host.file(CONFIG).content_string)
    listed = {_module(name) for stage in STAGE_LISTS for name in data[stage]}
    assert not listed & DEBIAN_ONLY_MODULES, sorted(listed & DEBIAN_ONLY_MODULES)
    assert listed >= FIRST_BOOT_MODULES, sorted(FIRST_BOOT_MODULES - listed)


def test_first_boot_ran_only_the_listed_modules(host):
    """On the booted node: the modules cloud-init ran are the configured ones (its log names each module it runs)."""
    if not _booted(host):
        pytest.skip("cloud-init runs only on a booted instance (this is a container)")
    log = host.run("cat /var/log/cloud-init.log")
    assert log.rc == 0, log.stderr
    ran = {_module(name) for name in re.findall(r"Running module (\S+) \(", log.stdout)}
    assert ran >= ALWAYS_RUN_MODULES, sorted(ALWAYS_RUN_MODULES - ran)
    if host.system_info.distribution in ("debian", "ubuntu"):
        assert not ran & DEBIAN_ONLY_MODULES, sorted(ran & DEBIAN_ONLY_MODULES)


def test_network_wait_is_off_in_containers(host):
    dropin = host.file("/etc/systemd/system/systemd-networkd-wait-online.service.d/10-nodeforge-not-in-container.conf")
    assert "ConditionVirtualization=!container" in dropin.content_string


def test_own_hostname_resolves_without_dns(host):
    """nss-myhostname, as AL2023: sudo and friends resolve the instance's hostname with no DNS server."""
    assert "myhostname" in host.file("/etc/nsswitch.conf").content_string
    assert host.run("getent hosts $(hostname)").rc == 0
