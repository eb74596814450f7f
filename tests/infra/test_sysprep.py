"""sysprep: what a baked image must not carry."""

import pytest

pytestmark = pytest.mark.sysprep


def test_no_ssh_host_keys(host):
    assert host.run("ls /etc/ssh/ssh_host_* 2>/dev/null").stdout.strip() == ""


def test_no_authorized_keys(host):
    found = host.run("find /root /home -name 'authorized_keys*' 2>/dev/null").stdout.strip()
    assert found == ""


def test_machine_id_empty(host):
    assert host.file("/etc/machine-id").content_string == ""


def test_no_cloud_init_state(host):
    assert host.run("find /var/lib/cloud -mindepth 1 2>/dev/null").stdout.strip() == ""


def test_no_shell_history(host):
    found = host.run("find /root /home -maxdepth 3 -name '.*_history' 2>/dev/null").stdout.strip()
    assert found == ""


def test_no_package_caches(host):
    found = host.run(
        "find /var/cache/apt /var/lib/apt/lists /var/cache/dnf /var/cache/yum -type f ! -name lock 2>/dev/null"
    ).stdout.strip()
    assert found == ""


def test_logs_empty(host):
    """No log file has content, and no rotated log is left (the journal is written by a running system)."""
    found = host.run(
        "find /var/log -path /var/log/journal -prune -o -type f \\( -size +0 -o -name '*.gz' \\) -print"
    ).stdout.strip()
    assert found == ""


def test_syslog_daemon_stopped_until_next_boot(host, image_state_only):
    """A syslog daemon would copy the build's remaining steps (sudo, uploads) from the journal into /var/log."""
    units = [u for u in ("rsyslog.service", "syslog-ng.service") if host.run(f"systemctl cat {u}").rc == 0]
    if not units:
        pytest.skip("no syslog daemon installed")
    for unit in units:
        service = host.service(unit)
        assert service.is_enabled, f"{unit} must stay enabled (it runs again from the next boot)"
        assert not service.is_running, f"{unit} still running after sysprep"
    host.run("logger -p authpriv.notice nodeforge-sysprep-probe")
    written = host.run("sleep 1; grep -rl nodeforge-sysprep-probe /var/log --exclude-dir=journal").stdout.strip()
    assert written == "", f"a log line written after sysprep reached {written}"


def test_no_leftover_temp_files(host):
    assert host.run("find /var/tmp -mindepth 1 ! -name 'systemd-private-*' -maxdepth 1").stdout.strip() == ""


def test_no_package_proxy(host):
    """The build's package cache is not kept: no proxy for apt, dnf/yum or logins (the hygiene scan's rule)."""
    from nodeforge.bake.hygiene import proxy_setting

    if host.exists("apt-config"):
        dump = host.check_output("apt-config dump")
        proxies = [line for line in dump.splitlines() if "::proxy" in line.lower() and '"direct"' not in line.lower()]
        assert proxies == [], proxies
    listed = host.run(
        "find /etc/apt/apt.conf /etc/apt/apt.conf.d /etc/environment /etc/profile.d /etc/dnf/dnf.conf /etc/yum.conf "
        "/etc/yum.repos.d -maxdepth 1 -type f 2>/dev/null"
    ).stdout.split()
    assert "/etc/environment" in listed or not host.file("/etc/environment").exists
    found = {path: proxy_setting(path, host.file(path).content) for path in listed}
    assert {path: setting for path, setting in found.items() if setting} == {}
