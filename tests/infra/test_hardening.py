"""hardening: kernel parameters, core dumps, modules, SSH, auditd, permissions, unneeded services, and the areas of
dev-sec's os_hardening a node adds (login.defs, PAM, SUID/SGID, mounts, cron, accounts, .rhosts/.netrc, legacy
packages, repository signatures, SELinux, Ctrl-Alt-Del). Backend-agnostic: ansible, docker or ssh."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from node_facts import commands_on_path, installed_packages, stat_paths, sysctl_values

pytestmark = pytest.mark.hardening
REPO = Path(__file__).resolve().parents[2]

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
    conf = stat_paths(host, [SYSCTL_FILE])[SYSCTL_FILE]
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


GLOBAL_SYSCTLS = sorted(k for k in HARDENED_SYSCTLS if k.startswith(GLOBAL_PREFIXES))


@pytest.fixture(scope="module")
def running_sysctls(host) -> dict[str, int | str | None]:
    return sysctl_values(host, GLOBAL_SYSCTLS)


@pytest.mark.parametrize("key", GLOBAL_SYSCTLS, ids=lambda k: k)
def test_sysctl_applied(running_sysctls, key):
    if running_sysctls[key] is None:
        pytest.skip(f"this kernel has no {key}")
    assert running_sysctls[key] == HARDENED_SYSCTLS[key]


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
        # sshd -T needs its privilege separation directory, made when the server starts (not in a container)
        host.run("mkdir -p -m 0755 /run/sshd")
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
    stats = stat_paths(host, ["/usr/sbin/sshd", "/etc/ssh/sshd_config.d/10-nodeforge-hardening.conf"])
    dropin = stats["/etc/ssh/sshd_config.d/10-nodeforge-hardening.conf"]
    if not stats["/usr/sbin/sshd"].exists:
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
def test_audit_rules(audit_rules, watch):
    stat, lines = audit_rules
    assert stat.mode == 0o640 and stat.user == "root"
    assert watch in lines


@pytest.fixture(scope="module")
def audit_rules(host):
    path = "/etc/audit/rules.d/50-nodeforge.rules"
    with host.sudo():
        return stat_paths(host, [path])[path], host.check_output(f"cat {path}").splitlines()


@pytest.mark.parametrize(("path", "mode"), [("/etc/kubernetes", 0o750), ("/var/lib/kubelet", 0o700)])
def test_restricted_dirs(host, path, mode):
    directory = stat_paths(host, [path])[path]
    assert directory.kind == "directory" and directory.user == "root" and directory.group == "root"
    assert directory.mode == mode


@pytest.mark.parametrize("unit", ["rpcbind.service", "avahi-daemon.service", "cups.service", "postfix.service"])
def test_unneeded_service_masked(host, unit):
    state = host.run(f"systemctl is-enabled {unit}").stdout.strip()
    assert state in {"masked", ""} or "not-found" in state or state == "masked-runtime", f"{unit}: {state}"


# --- the os_hardening areas (dev-sec) a node adds: each test shows its area applied --------------------------

LOGIN_DEFS_LIMITS = {"PASS_MAX_DAYS": ("<=", 365), "PASS_MIN_DAYS": (">=", 1), "PASS_WARN_AGE": (">=", 7)}
# Accounts dev-sec's os_hardening never locks (os_always_ignore_users).
ALWAYS_IGNORED_ACCOUNTS = {"root", "sync", "shutdown", "halt"}
NOLOGIN_SHELLS = {"/usr/sbin/nologin", "/sbin/nologin", "/bin/false", "/usr/bin/false"}
UID_MIN = 1000
LEGACY_PACKAGES = {
    "debian": ["telnet", "inetutils-telnet", "telnetd", "inetutils-telnetd", "rsh-client", "rsh-server",
               "rsh-redone-client", "rsh-redone-server", "nis", "tftp", "tftp-hpa", "tftpd", "tftpd-hpa",
               "atftp", "atftpd", "talk", "talkd", "inetutils-talk", "xinetd", "openbsd-inetd", "inetutils-inetd"],
    "amzn": ["telnet", "telnet-server", "rsh", "rsh-server", "ypbind", "ypserv", "tftp", "tftp-server", "talk",
             "talk-server", "xinetd"],
}  # fmt: skip
LEGACY_COMMANDS = ["telnet", "rsh", "rlogin", "rcp", "ypbind", "tftp", "talk", "in.telnetd", "in.tftpd", "xinetd"]
# Where the kubelet and containerd keep what they execute: never noexec.
STATE_DIRS = ("/var/lib/kubelet", "/var/lib/containerd", "/run/containerd")
SUID_SGID_LISTS = REPO / "roles/hardening/vars/suid_sgid.yml"


def family(host) -> str:
    return "amzn" if host.system_info.distribution in {"amzn", "amazon"} else host.system_info.distribution


def in_container(host) -> bool:
    return host.run("systemd-detect-virt --container").rc == 0


def accounts(host) -> list[list[str]]:
    return [line.split(":") for line in host.file("/etc/passwd").content_string.splitlines() if line.count(":") == 6]


@pytest.fixture(scope="module")
def shadow(host) -> dict[str, list[str]]:
    with host.sudo():
        text = host.check_output("cat /etc/shadow")
    return {fields[0]: fields for fields in (line.split(":") for line in text.splitlines()) if len(fields) >= 8}


def login_defs(host) -> dict[str, str]:
    values = {}
    for line in host.file("/etc/login.defs").content_string.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#"):
            values[parts[0]] = parts[1]
    return values


def test_login_defs(host):
    values = login_defs(host)
    for key, (op, limit) in LOGIN_DEFS_LIMITS.items():
        value = int(values[key])
        assert value <= limit if op == "<=" else value >= limit, f"login.defs {key} {value}"
    assert values["UMASK"] in {"027", "077"}
    assert values["ENCRYPT_METHOD"] in {"SHA512", "YESCRYPT"}


def test_password_ageing_of_existing_accounts(host, shadow):
    people = [a[0] for a in accounts(host) if int(a[2]) >= UID_MIN and a[0] in shadow]
    usable = [name for name in people if shadow[name][1] and shadow[name][1][0] not in "*!"]
    for name in usable:
        min_days, max_days = shadow[name][3], shadow[name][4]
        assert max_days and int(max_days) <= 365, f"{name}: password valid {max_days} days"
        assert min_days and int(min_days) >= 1, f"{name}: password may change after {min_days} days"


def pam_lines(host, path: str, kind: str) -> list[str]:
    """The modules of one PAM stack type, in order (control and arguments dropped)."""
    modules = []
    for line in host.file(path).content_string.splitlines():
        fields = re.sub(r"\[[^\]]*\]", "CTRL", line).split()
        if fields and fields[0].lstrip("-") == kind and len(fields) >= 3:
            modules.append(f"{fields[2]} {' '.join(fields[3:])}".strip())
    return modules


def first_index(modules: list[str], prefix: str) -> int:
    hits = [i for i, module in enumerate(modules) if module.startswith(prefix)]
    assert hits, f"{prefix} not in {modules}"
    return hits[0]


def pam_stacks(host) -> dict[str, str]:
    if family(host) == "debian":
        return {"auth": "/etc/pam.d/common-auth", "account": "/etc/pam.d/common-account",
                "password": "/etc/pam.d/common-password"}  # fmt: skip
    return {"auth": "/etc/pam.d/system-auth", "account": "/etc/pam.d/system-auth", "password": "/etc/pam.d/system-auth"}


def test_pam_lockout_stack(host):
    stacks = pam_stacks(host)
    auth = pam_lines(host, stacks["auth"], "auth")
    unix = first_index(auth, "pam_unix.so")
    assert first_index(auth, "pam_faillock.so preauth") < unix < first_index(auth, "pam_faillock.so authfail")
    account = pam_lines(host, stacks["account"], "account")
    assert first_index(account, "pam_faillock.so") < first_index(account, "pam_unix.so")


def test_pam_password_quality_stack(host):
    password = pam_lines(host, pam_stacks(host)["password"], "password")
    assert first_index(password, "pam_pwquality.so") < first_index(password, "pam_pwhistory.so")
    assert first_index(password, "pam_pwhistory.so") < first_index(password, "pam_unix.so")
    assert re.search(r"remember=([5-9]|\d\d)", password[first_index(password, "pam_pwhistory.so")])


def conf_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_pam_faillock_settings(host):
    if family(host) == "amzn" and host.system_info.release == "2":
        pytest.skip("AL2's pam_faillock takes its options on the PAM lines (checked by the stack test)")
    values = conf_values(host.file("/etc/security/faillock.conf").content_string)
    assert 0 < int(values["deny"]) <= 5
    assert int(values["unlock_time"]) == 0 or int(values["unlock_time"]) >= 900
    assert "even_deny_root" in values


def test_pam_pwquality_settings(host):
    values = conf_values(host.file("/etc/security/pwquality.conf").content_string)
    assert int(values["minlen"]) >= 14
    assert int(values["minclass"]) >= 4
    modules = host.run("ls /usr/lib*/security/pam_pwquality.so /usr/lib/*/security/pam_pwquality.so 2>/dev/null")
    assert modules.stdout.strip(), "pam_pwquality.so is not installed"


@pytest.fixture(scope="module")
def suid_sgid_lists() -> dict[str, list[str]]:
    return yaml.safe_load(SUID_SGID_LISTS.read_text())


def test_no_unexpected_suid_sgid(host, suid_sgid_lists):
    prune = " -o ".join(f"-path {d}" for d in suid_sgid_lists["hardening_suid_sgid_skipped_dirs"])
    with host.sudo():
        out = host.run(rf"find / -xdev \( {prune} \) -prune -o -type f \( -perm -4000 -o -perm -2000 \) -print")
    found = out.stdout.split()
    allowed = set(suid_sgid_lists["hardening_suid_sgid_system_allowlist"])
    blocked = set(suid_sgid_lists["hardening_suid_sgid_system_blocklist"])
    assert not blocked & allowed
    assert sorted(set(found) - allowed) == [], "SUID/SGID files off the allow list"
    assert "/usr/bin/su" in allowed and "/usr/bin/mount" in allowed and "/usr/bin/pkexec" in blocked


def test_dev_shm_mount_configured(host):
    entries = [line.split() for line in host.file("/etc/fstab").content_string.splitlines()]
    shm = [e for e in entries if len(e) >= 4 and e[1] == "/dev/shm" and not e[0].startswith("#")]
    assert shm, "no /dev/shm entry in /etc/fstab"
    assert {"nosuid", "nodev", "noexec"} <= set(shm[-1][3].split(","))


@pytest.mark.parametrize("unit", ["tmp.mount", "var-tmp.mount"])
def test_tmp_mount_units(host, unit):
    conf = host.file(f"/etc/systemd/system/{unit}").content_string
    options = re.search(r"^Options=(.*)$", conf, re.M)
    assert options and {"nosuid", "nodev", "noexec"} <= set(options.group(1).split(","))
    assert host.run(f"systemctl is-enabled {unit}").stdout.strip() == "enabled"


@pytest.mark.parametrize("path", ["/dev/shm", "/tmp", "/var/tmp"])
def test_mount_options_live(host, path):
    if in_container(host):
        pytest.skip("a container's mounts are its runtime's (the units start on a booted node)")
    mounts = [line.split() for line in host.file("/proc/self/mounts").content_string.splitlines()]
    mine = [m for m in mounts if m[1] == path]
    assert mine, f"{path} is not a mount point"
    assert {"nosuid", "nodev", "noexec"} <= set(mine[-1][3].split(",")), f"{path}: {mine[-1][3]}"


def test_kubelet_and_containerd_state_keep_exec(host):
    # pods' volumes, snapshots and shims run from there: noexec/nosuid there would stop pods
    for line in host.file("/proc/self/mounts").content_string.splitlines():
        fields = line.split()
        if fields[1].startswith(STATE_DIRS) and "/pods/" not in fields[1]:
            assert "noexec" not in fields[3].split(","), f"{fields[1]} is noexec"


def test_cron_restricted(host):
    cron = ["/etc/crontab", *(f"/etc/cron.{d}" for d in ("d", "hourly", "daily", "weekly", "monthly"))]
    tools = ("cron", "at")
    stats = stat_paths(host, cron + [f"/etc/{tool}.{kind}" for tool in tools for kind in ("allow", "deny")])
    for path in cron:
        entry = stats[path]
        if entry.exists:
            assert entry.user == "root" and entry.group == "root" and entry.mode & 0o077 == 0, f"{path} {entry.mode:o}"
    with host.sudo():
        allowed = host.run("cat /etc/cron.allow; echo '|'; cat /etc/at.allow").stdout.split("|")
    for tool, content in zip(tools, allowed, strict=True):
        allow = stats[f"/etc/{tool}.allow"]
        assert allow.exists and allow.user == "root" and allow.mode & 0o037 == 0
        assert content.split() == ["root"], f"/etc/{tool}.allow: {content!r}"
        assert not stats[f"/etc/{tool}.deny"].exists


def test_no_extra_uid0(host):
    assert [a[0] for a in accounts(host) if a[2] == "0"] == ["root"]


def test_system_accounts_locked(host, shadow):
    system = [a for a in accounts(host) if 0 < int(a[2]) < UID_MIN and a[0] not in ALWAYS_IGNORED_ACCOUNTS]
    assert system
    for name, _, _, _, _, _, shell in system:
        assert shell in NOLOGIN_SHELLS, f"{name} has login shell {shell}"
        password = shadow.get(name, ["", "!"])[1]
        assert password.startswith("!") or password.startswith("*"), f"{name} has a usable password"


def test_no_rhosts_netrc(host):
    homes = {a[5] for a in accounts(host) if a[5] not in {"/", ""}}
    paths = [f"{home}/{name}" for home in sorted(homes) for name in (".rhosts", ".shosts", ".netrc")]
    with host.sudo():
        stats = stat_paths(host, [*paths, "/etc/hosts.equiv", "/etc/shosts.equiv"])
    assert [path for path, stat in stats.items() if stat.exists] == []


def test_legacy_packages_removed(host):
    names = LEGACY_PACKAGES.get(family(host), [])
    assert names, f"no legacy package list for {family(host)}"
    assert installed_packages(host, names) == []
    assert commands_on_path(host, LEGACY_COMMANDS) == []


def test_repository_signatures(host):
    if family(host) == "debian":
        sources = host.run("cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null").stdout
        assert not re.search(r"trusted=yes", sources, re.I)
        assert not re.search(r"^\s*Trusted:\s*yes", sources, re.M | re.I)
        dump = host.check_output("apt-config dump")
        assert 'APT::Get::AllowUnauthenticated "false";' in dump
        assert 'Acquire::AllowInsecureRepositories "false";' in dump
    else:
        repos = host.run("cat /etc/yum.repos.d/*.repo 2>/dev/null").stdout
        assert not re.search(r"^\s*gpgcheck\s*=\s*0", repos, re.M)
        main = host.file("/etc/dnf/dnf.conf") if host.file("/etc/dnf/dnf.conf").exists else host.file("/etc/yum.conf")
        assert re.search(r"^gpgcheck\s*=\s*1", main.content_string, re.M)


def test_selinux_state(host):
    if not (family(host) == "amzn" and host.system_info.release == "2023"):
        pytest.skip(f"SELinux is set on Amazon Linux 2023 ({host.system_info.distribution} uses its own MAC)")
    config = conf_values(host.file("/etc/selinux/config").content_string)
    assert config["SELINUX"] in {"permissive", "enforcing"} and config["SELINUXTYPE"] == "targeted"
    if host.file("/sys/fs/selinux/enforce").exists:
        assert host.check_output("getenforce").lower() == config["SELINUX"]


def test_ctrl_alt_del_disabled(host):
    assert host.run("systemctl is-enabled ctrl-alt-del.target").stdout.strip() == "masked"
    burst = host.file("/etc/systemd/system.conf.d/10-nodeforge-ctrl-alt-del.conf").content_string
    assert "CtrlAltDelBurstAction=none" in burst
