"""hardening: kernel parameters, core dumps, modules, SSH, auditd, permissions, unneeded services."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.hardening

# The security values a hardened node must have (written down here, not read from the role's defaults, so a
# weakened default fails).
HARDENED_SYSCTLS = {
    "kernel.kptr_restrict": 2,
    "kernel.dmesg_restrict": 1,
    "kernel.randomize_va_space": 2,
    "kernel.unprivileged_bpf_disabled": 1,
    "kernel.yama.ptrace_scope": 1,
    "fs.suid_dumpable": 0,
    "fs.protected_hardlinks": 1,
    "fs.protected_symlinks": 1,
    "net.ipv4.conf.all.accept_redirects": 0,
    "net.ipv4.conf.all.send_redirects": 0,
    "net.ipv4.conf.all.accept_source_route": 0,
    "net.ipv4.conf.all.log_martians": 1,
    "net.ipv4.icmp_echo_ignore_broadcasts": 1,
    "net.ipv4.tcp_syncookies": 1,
    "net.ipv6.conf.all.accept_redirects": 0,
}
# Global (not per network namespace) parameters: their running value is checkable from any instance.
GLOBAL_PREFIXES = ("kernel.", "fs.")
PROTECTED_KERNEL_DEFAULTS = {
    "vm.overcommit_memory": "1",
    "vm.panic_on_oom": "0",
    "kernel.panic": "10",
    "kernel.panic_on_oops": "1",
}
SYSCTL_FILE = "/etc/sysctl.d/60-nodeforge-hardening.conf"
SYSCTL_DIRS = ("/usr/lib/sysctl.d", "/run/sysctl.d", "/etc/sysctl.d")
WEAK_CIPHER = re.compile(r"(cbc|arcfour|3des|blowfish|cast128)", re.I)
WEAK_MAC = re.compile(r"(md5|sha1|umac-64|ripemd)", re.I)
WEAK_KEX = re.compile(r"(sha1|group1-|group14-sha1)", re.I)


def sysctl_file_values(content: str) -> dict[str, str]:
    values = {}
    for line in content.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")) and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip().lstrip("-")] = value.strip()
    return values


@pytest.fixture(scope="module")
def effective_sysctl_files(host) -> dict[str, str]:
    """What systemd-sysctl applies at boot: files by name across the sysctl.d dirs, later dirs win, lexical order."""
    by_name: dict[str, str] = {}
    for directory in SYSCTL_DIRS:
        if host.file(directory).is_directory:
            for name in host.file(directory).listdir():
                if name.endswith(".conf"):
                    by_name[name] = f"{directory}/{name}"
    values: dict[str, str] = {}
    for name in sorted(by_name):
        values.update(sysctl_file_values(host.file(by_name[name]).content_string))
    return values


def test_sysctl_file_mode(host):
    conf = host.file(SYSCTL_FILE)
    assert conf.exists and conf.user == "root" and conf.mode == 0o644


@pytest.mark.parametrize(("key", "value"), sorted(HARDENED_SYSCTLS.items()))
def test_sysctl_effective_at_boot(effective_sysctl_files, key, value):
    assert effective_sysctl_files.get(key) == str(value), f"{key} at boot: {effective_sysctl_files.get(key)}"


@pytest.mark.parametrize(("key", "value"), sorted(PROTECTED_KERNEL_DEFAULTS.items()))
def test_protect_kernel_defaults_not_broken(effective_sysctl_files, key, value):
    # node_base sets them (its checks require them); nothing that hardening adds may override them
    actual = effective_sysctl_files.get(key, value)
    assert actual == value, f"{key}={actual} at boot would stop kubelet (protectKernelDefaults)"


def test_rp_filter_not_disabled(effective_sysctl_files):
    # loose (2) by default for the VPC CNI's secondary ENIs; strict (1) allowed; off (0) is not hardened
    assert effective_sysctl_files.get("net.ipv4.conf.all.rp_filter") in {"1", "2"}


@pytest.mark.parametrize("key", sorted(k for k in HARDENED_SYSCTLS if k.startswith(GLOBAL_PREFIXES)), ids=lambda k: k)
def test_sysctl_applied(host, key):
    path = "/proc/sys/" + key.replace(".", "/")
    if not host.file(path).exists:
        pytest.skip(f"this kernel has no {key}")
    assert host.sysctl(key) == HARDENED_SYSCTLS[key]


def test_core_dumps_disabled(host):
    limits = host.file("/etc/security/limits.d/10-nodeforge-no-core.conf")
    assert re.search(r"^\*\s+hard\s+core\s+0$", limits.content_string, re.M)
    coredump = host.file("/etc/systemd/coredump.conf.d/nodeforge.conf").content_string
    assert "Storage=none" in coredump and "ProcessSizeMax=0" in coredump


@pytest.mark.parametrize("module", ["cramfs", "freevxfs", "hfs", "hfsplus", "udf", "dccp", "rds", "tipc"])
def test_module_disabled(host, module):
    conf = host.file("/etc/modprobe.d/nodeforge-hardening.conf").content_string
    assert f"install {module} /bin/false" in conf.splitlines()
    assert f"blacklist {module}" in conf.splitlines()


@pytest.fixture(scope="module")
def sshd_config(host) -> dict[str, str]:
    """The SSH server's effective configuration (`sshd -T`), or skip where no SSH server is installed."""
    if not host.file("/usr/sbin/sshd").exists:
        pytest.skip("no SSH server in this image")
    with host.sudo():
        keys = host.run("ls /etc/ssh/ssh_host_*_key 2>/dev/null").stdout.split()
        if keys:
            out = host.check_output("/usr/sbin/sshd -T")
        else:  # a sysprepped image has no host keys: give sshd a throwaway one
            out = host.check_output(
                "d=$(mktemp -d) && ssh-keygen -q -t ed25519 -N '' -f $d/k && /usr/sbin/sshd -T -h $d/k; rm -rf $d"
            )
    return {key: value for key, _, value in (line.partition(" ") for line in out.splitlines())}


def test_ssh_no_root_login(sshd_config):
    assert sshd_config["permitrootlogin"] == "no"


def test_ssh_no_password_auth(sshd_config):
    assert sshd_config["passwordauthentication"] == "no"
    assert sshd_config["kbdinteractiveauthentication"] == "no"
    assert sshd_config["permitemptypasswords"] == "no"


def test_ssh_limits(sshd_config):
    assert int(sshd_config["maxauthtries"]) <= 4
    assert sshd_config["x11forwarding"] == "no"
    assert sshd_config["permituserenvironment"] == "no"


def test_ssh_modern_algorithms(sshd_config):
    for name, weak in (("ciphers", WEAK_CIPHER), ("macs", WEAK_MAC), ("kexalgorithms", WEAK_KEX)):
        offered = sshd_config[name].split(",")
        assert offered and not [a for a in offered if weak.search(a)], f"{name}: {offered}"


def test_ssh_dropin_mode(host):
    dropin = host.file("/etc/ssh/sshd_config.d/10-nodeforge-hardening.conf")
    if not host.file("/usr/sbin/sshd").exists:
        assert not dropin.exists
        return
    assert dropin.user == "root" and dropin.mode == 0o600


def test_auditd_installed_and_enabled(host):
    assert host.file("/sbin/auditd").exists or host.file("/usr/sbin/auditd").exists
    assert host.service("auditd").is_enabled
    dropin = host.file("/etc/systemd/system/auditd.service.d/10-nodeforge.conf").content_string
    assert "ConditionVirtualization=!container" in dropin


@pytest.mark.parametrize(
    "watch",
    [
        "-w /usr/bin/kubelet -p x -k kubelet",
        "-w /etc/kubernetes -p wa -k kubernetes-config",
        "-w /var/lib/kubelet/kubeconfig -p wa -k kubernetes-config",
        "-w /usr/bin/containerd -p x -k containerd",
        "-w /etc/containerd -p wa -k containerd-config",
    ],
)
def test_audit_rules(host, watch):
    with host.sudo():
        rules = host.file("/etc/audit/rules.d/50-nodeforge.rules")
        assert rules.mode == 0o640 and rules.user == "root"
        assert watch in rules.content_string.splitlines()


@pytest.mark.parametrize(("path", "mode"), [("/etc/kubernetes", 0o750), ("/var/lib/kubelet", 0o700)])
def test_restricted_dirs(host, path, mode):
    directory = host.file(path)
    assert directory.is_directory and directory.user == "root" and directory.group == "root"
    assert directory.mode == mode


@pytest.mark.parametrize("unit", ["rpcbind.service", "avahi-daemon.service", "cups.service", "postfix.service"])
def test_unneeded_service_masked(host, unit):
    state = host.run(f"systemctl is-enabled {unit}").stdout.strip()
    assert state in {"masked", ""} or "not-found" in state or state == "masked-runtime", f"{unit}: {state}"
