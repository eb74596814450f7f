"""node_base: kernel modules, sysctls, swap, time sync, journald."""

from __future__ import annotations

import pytest
from node_facts import PathStat, stat_paths, sysctl_values

pytestmark = pytest.mark.node_base

EXPECTED_SYSCTLS = {
    "net.ipv4.ip_forward": 1,
    "net.bridge.bridge-nf-call-iptables": 1,
    "net.bridge.bridge-nf-call-ip6tables": 1,
    "fs.inotify.max_user_watches": 524288,
    "fs.inotify.max_user_instances": 8192,
    "kernel.pid_max": 4194304,
    # the values kubelet's protectKernelDefaults insists on
    "vm.overcommit_memory": 1,
    "vm.panic_on_oom": 0,
    "kernel.panic": 10,
    "kernel.panic_on_oops": 1,
}


def test_modules_persisted(host):
    conf = host.file("/etc/modules-load.d/kubernetes.conf")
    assert conf.exists and conf.user == "root" and conf.mode == 0o644
    assert {"overlay", "br_netfilter"} <= set(conf.content_string.split())


SYSCTL_CONF = "/etc/sysctl.d/99-kubernetes.conf"


@pytest.fixture(scope="module")
def sysctl_conf(host) -> tuple[PathStat, list[str]]:
    lines = host.file(SYSCTL_CONF).content_string.replace(" ", "").splitlines()
    return stat_paths(host, [SYSCTL_CONF])[SYSCTL_CONF], lines


@pytest.fixture(scope="module")
def running_sysctls(host) -> dict[str, int | str | None]:
    return sysctl_values(host, sorted(EXPECTED_SYSCTLS))


@pytest.mark.parametrize(("key", "value"), sorted(EXPECTED_SYSCTLS.items()))
def test_sysctl_persisted(sysctl_conf, key, value):
    conf, lines = sysctl_conf
    assert conf.mode == 0o644 and conf.user == "root"
    assert f"{key}={value}" in lines


@pytest.mark.parametrize(("key", "value"), sorted(EXPECTED_SYSCTLS.items()))
def test_sysctl_applied(running_sysctls, key, value):
    assert running_sysctls[key] == value


def test_swap_off(host):
    assert len(host.file("/proc/swaps").content_string.strip().splitlines()) == 1


def test_chrony_configured(host):
    assert host.package("chrony").is_installed
    conf = host.file("/etc/chrony/chrony.conf")
    servers = [line.split()[1] for line in conf.content_string.splitlines() if line.startswith("server ")]
    assert servers, "no NTP server configured"
    assert "pool.ntp.org" not in conf.content_string
    assert host.service("chrony").is_enabled


def test_journald_limits(host):
    conf = host.file("/etc/systemd/journald.conf.d/90-nodeforge.conf")
    assert conf.mode == 0o644
    assert "SystemMaxUse=" in conf.content_string


@pytest.mark.parametrize("package", ["conntrack", "socat", "iptables", "ethtool", "mdadm", "xfsprogs"])
def test_node_packages(host, package):
    assert host.package(package).is_installed


def test_local_storage_tools(host):
    """What the agent runs for instance.localStorage (RAID0/RAID10 with mdadm, XFS file systems) is on the node."""
    for command in ("mdadm --version", "mkfs.xfs -V", "blkid --version"):
        result = host.run(command)
        assert result.rc == 0, f"{command}: {result.stderr}"


def test_no_mail_server_pulled_in(host):
    """mdadm recommends a mail server; node_base installs without recommends, so none comes with it."""
    assert not host.exists("sendmail")
    assert not host.package("exim4-base").is_installed
