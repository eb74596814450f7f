"""The roles' Amazon Linux paths, exercised as far as this machine allows: with Amazon Linux facts, each role
resolves its OS-specific variables (dnf/yum package names, chrony paths, versionlock plugin) and renders its
OS-dependent files, and the containerd configuration means the same as the one the Debian instances run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "tests" / "resources" / "amazon_render.yml"

# (distribution, major version, os family, architecture, containerd version the OS ships)
TARGETS = {
    "al2023-x86_64": ("Amazon", "2023", "RedHat", "x86_64", "2.1.5"),
    "al2023-arm64": ("Amazon", "2023", "RedHat", "aarch64", "2.1.5"),
    "al2-x86_64": ("Amazon", "2", "RedHat", "x86_64", "1.7.27"),
    "debian12": ("Debian", "12", "Debian", "x86_64", "1.6.20"),
}


def render(name: str, tmp_path: Path) -> tuple[dict, dict, str]:
    distribution, major, family, arch, containerd = TARGETS[name]
    out = tmp_path / name
    extra = {
        "ansible_facts": {
            "distribution": distribution,
            "distribution_major_version": major,
            "os_family": family,
            "architecture": arch,
        },
        "render_containerd_version": containerd,
        "render_dir": str(out),
    }
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), str(PLAYBOOK), "-e", json.dumps(extra)],
        capture_output=True, text=True, cwd=REPO, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    resolved = json.loads((out / "resolved.json").read_text())
    config = tomllib.loads((out / "containerd-config.toml").read_text())
    return resolved, config, (out / "chrony.conf").read_text()


def effective(config: dict) -> dict:
    """The settings that matter, whichever schema (version 2 for containerd 1.x, 3 for 2.x) carries them."""
    plugins = config["plugins"]
    if config["version"] == 3:
        images, runtime = plugins["io.containerd.cri.v1.images"], plugins["io.containerd.cri.v1.runtime"]
        runc = runtime["containerd"]["runtimes"]["runc"]
        return {
            "sandbox": images["pinned_images"]["sandbox"],
            "systemd_cgroup": runc["options"]["SystemdCgroup"],
            "runtime_type": runc["runtime_type"],
            "cni_bin": runtime["cni"]["bin_dirs"],
            "cni_conf": runtime["cni"]["conf_dir"],
            "registry_config_path": images["registry"]["config_path"],
            "imports": config["imports"],
        }
    cri = plugins["io.containerd.grpc.v1.cri"]
    runc = cri["containerd"]["runtimes"]["runc"]
    return {
        "sandbox": cri["sandbox_image"],
        "systemd_cgroup": runc["options"]["SystemdCgroup"],
        "runtime_type": runc["runtime_type"],
        "cni_bin": [cri["cni"]["bin_dir"]],
        "cni_conf": cri["cni"]["conf_dir"],
        "registry_config_path": cri["registry"]["config_path"],
        "imports": config["imports"],
    }


@pytest.fixture(scope="module")
def debian(tmp_path_factory):
    return render("debian12", tmp_path_factory.mktemp("render"))


@pytest.mark.parametrize("name", ["al2023-x86_64", "al2023-arm64", "al2-x86_64"])
def test_amazon_linux_paths(name, tmp_path, debian):
    resolved, config, chrony = render(name, tmp_path)
    _, debian_config, debian_chrony = debian
    # dnf/yum package names and Amazon Linux file locations
    assert "conntrack-tools" in resolved["node_base_os_packages"]
    assert resolved["node_base_chrony_config_path"] == "/etc/chrony.conf"
    assert resolved["node_base_chrony_service"] == "chronyd"
    assert resolved["containerd_version_separator"] == "-"
    assert resolved["containerd_versionlock_packages"] == (
        ["python3-dnf-plugin-versionlock"] if "al2023" in name else ["yum-plugin-versionlock"]
    )
    assert resolved["containerd_os_cni_packages"] == []  # the VPC CNI brings its plugins on Amazon Linux
    assert resolved["sysprep_package_cache_dirs"] == ["/var/cache/dnf", "/var/cache/yum"]
    # AL2: rpm and yum commands instead of the package modules; the agent runs on python3.8 (target_python
    # installs it), PyYAML for it from pip
    al2 = "al2023" not in name
    assert (resolved["os_packages_yum_cli"], resolved["image_manifest_rpm_cli"]) == (al2, al2)
    assert resolved["bootstrap_agent_interpreter"] == ("/usr/bin/python3.8" if al2 else "/usr/bin/python3")
    assert resolved["bootstrap_agent_os_pip_packages"] == (["PyYAML>=5.4,<7"] if al2 else [])
    wrapper = (tmp_path / name / "nodeforge-bootstrap").read_text()
    lib = "/usr/lib/nodeforge"
    assert f'exec {resolved["bootstrap_agent_interpreter"]} -I -c \'import sys; sys.path.insert(0, "{lib}")' in wrapper
    assert resolved["bootstrap_agent_os_packages"] == (["python3", "python3-pyyaml"] if "al2023" in name else [])
    # AL2: containerd and runc come from the amazon-linux-extras "docker" topic, enabled first
    assert resolved["containerd_os_extras_topics"] == ([] if "al2023" in name else ["docker"])
    # containerd 2.x (AL2023) gets the version 3 schema, 1.x the version 2 schema; both mean what Debian's means
    assert config["version"] == (3 if "al2023" in name else 2)
    assert effective(config) == effective(debian_config)

    # the same time sync configuration, with Amazon Linux's drift file location
    def servers(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("driftfile")]

    assert servers(chrony) == servers(debian_chrony)
    assert "driftfile /var/lib/chrony/drift" in chrony


def test_debian_paths(debian):
    resolved, config, _ = debian
    assert resolved["node_base_chrony_config_path"] == "/etc/chrony/chrony.conf"
    assert resolved["containerd_os_cni_packages"] == ["containernetworking-plugins"]
    assert resolved["containerd_os_extras_topics"] == []
    assert config["version"] == 2
    assert (resolved["os_packages_yum_cli"], resolved["image_manifest_rpm_cli"]) == (False, False)
    assert resolved["bootstrap_agent_interpreter"] == "/usr/bin/python3"


# Stand-ins for AL2's rpm and yum: log every call; chrony is installed, the others are not.
FAKE_RPM = """#!/bin/sh
echo "rpm $*" >> "$NODEFORGE_CALLS"
if [ "$1" = -qa ]; then
  printf 'kernel 5.10.240\\nkernel 5.10.245\\ncontainerd 1.7.27\\nrunc 1.3.3\\n'; exit 0
fi
shift; rc=0
for name in "$@"; do
  if [ "$name" = chrony ]; then echo "chrony-4.2-5.amzn2.0.5.x86_64"
  else echo "package $name is not installed"; rc=$((rc+1)); fi
done
exit $rc
"""
FAKE_YUM = '#!/bin/sh\necho "yum $*" >> "$NODEFORGE_CALLS"\n'
AL2_FACTS = {"distribution": "Amazon", "distribution_major_version": "2", "os_family": "RedHat"}


@pytest.mark.parametrize("check", [True, False])
def test_al2_package_tasks_run_without_the_yum_module(tmp_path, check):
    """ansible-core 2.19 has no yum module: on AL2 the roles use rpm -q and yum install, here run for real
    against stand-in commands. Check mode runs the rpm queries only; a real run installs only what is missing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("rpm", FAKE_RPM), ("yum", FAKE_YUM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls.log"
    calls.touch()
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_FORCE_COLOR="0",
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        NODEFORGE_CALLS=str(calls),
    )
    extra = {"ansible_facts": AL2_FACTS, "render_dir": str(tmp_path)}
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), str(REPO / "tests/resources/al2_check.yml")]
    argv += ["-e", json.dumps(extra)] + (["--check"] if check else [])
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    logged = calls.read_text().splitlines()
    assert "rpm -q chrony conntrack-tools containerd-1.7.27" in logged
    assert "rpm -qa --qf %{NAME} %{VERSION}" in logged
    installs = [line for line in logged if line.startswith("yum")]
    assert installs == ([] if check else ["yum install -y conntrack-tools containerd-1.7.27"])
    packages = json.loads((tmp_path / "al2-check.json").read_text())["packages"]
    assert packages == {"containerd": "1.7.27", "kernel": "5.10.245", "runc": "1.3.3"}
