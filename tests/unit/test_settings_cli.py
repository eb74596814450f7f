"""`nodeforge settings validate|render` through typer's CliRunner: exit codes, every error listed, JSON output,
files written as the agent writes them (checked against the agent itself), nothing written on failure."""

from __future__ import annotations

import base64
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from nodeforge import settings_cli
from nodeforge.bootstrap.cli import main as agent_main
from nodeforge.bootstrap.settings_render import OFFLINE_INSTANCE_ID, OFFLINE_IPV4, region_of
from nodeforge.cli import app as nodeforge_app
from nodeforge.vm.imds import FakeImdsServer

INPUTS = Path(__file__).parent / "bootstrap" / "inputs"
CA = (INPUTS / "ca.b64").read_text().strip()
CLUSTER = (
    "[settings.kubernetes]\ncluster-name = 'demo'\n"
    f"api-server = 'https://ABC.gr7.eu-west-1.eks.amazonaws.com'\ncluster-certificate = '{CA}'\n"
)
runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_cli, "out", Console(width=250, no_color=True))
    monkeypatch.setattr(settings_cli, "err", Console(width=250, no_color=True, stderr=True))


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(settings_cli.app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def write(tmp_path: Path, text: str | bytes, name: str = "settings.toml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def files_under(root: Path) -> list[str]:
    return sorted("/" + str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# -- validate ----------------------------------------------------------------------------------------------------


def test_validate_a_valid_file_lists_warnings():
    result = run("validate", str(INPUTS / "karpenter-bottlerocket-nodeclass.toml"))
    assert "karpenter-bottlerocket-nodeclass.toml: valid, 6 warning(s)" in result.stdout
    assert "warning: settings.ntp.time-servers: accepted, not applied by this image" in result.stderr
    assert "neither aws-iam-authenticator" not in result.stderr


def test_validate_json():
    document = json.loads(run("validate", str(INPUTS / "mng-bottlerocket.toml"), "-o", "json").stdout)
    assert document["valid"] is True and document["errors"] == []
    assert "settings.kubernetes.credential-providers" in document["notApplied"]
    assert "settings.kubernetes.standalone-mode: accepted, not applied by this image" in document["warnings"]


def test_validate_lists_every_error(tmp_path):
    path = write(
        tmp_path,
        CLUSTER + "max-pods = 'abc'\nmax-podz = 3\n[settings.kernel.sysctl]\n'../etc/shadow' = '1'\n"
        "[settings.host-containers.admin]\nenabled = 'no'\n[settings.ntpp]\n",
    )
    result = run("validate", str(path), code=1)
    for message in (
        'error: settings.kubernetes.max-pods: must be an integer (got string "abc")',
        "error: settings.kubernetes.max-podz: unknown setting; did you mean settings.kubernetes.max-pods?",
        'error: settings.kernel.sysctl."../etc/shadow": not a sysctl name',
        'error: settings.host-containers.admin.enabled: must be a boolean (got string "no")',
        "error: settings.ntpp: unknown setting; did you mean settings.ntp?",
        "settings.toml: 5 error(s)",
    ):
        assert message in result.stderr
    document = json.loads(run("validate", str(path), "--output", "json", code=1).stdout)
    assert document["valid"] is False and len(document["errors"]) == 5


def test_validate_reports_cluster_fields_with_their_settings_names(tmp_path):
    path = write(tmp_path, "[settings.kubernetes]\napi-server = 'ftp://x'\n")
    errors = json.loads(run("validate", str(path), "-o", "json", code=1).stdout)["errors"]
    assert "settings.kubernetes.cluster-name: required (the EKS cluster name)" in errors
    assert any(e.startswith("settings.kubernetes.api-server: must be an http(s) URL") for e in errors)


def test_validate_cis_sysctl_enforce_and_warn(tmp_path):
    path = write(tmp_path, CLUSTER + "[settings.kernel.sysctl]\n'vm.panic_on_oom' = '1'\n")
    result = run("validate", str(path), code=1)
    assert 'error: CIS: settings.kernel.sysctl."vm.panic_on_oom": must be 0' in result.stderr
    result = run("validate", str(path), "--cis-mode", "warn")
    assert 'warning: CIS: settings.kernel.sysctl."vm.panic_on_oom": must be 0' in result.stderr


def test_validate_unreadable_or_not_toml_exits_2(tmp_path):
    missing = tmp_path / "missing.toml"
    result = run("validate", str(missing), code=2)
    assert f"cannot read {missing}" in result.stderr
    broken = write(tmp_path, "[settings.kubernetes]\ncluster-name = 'a'\nmax-pods = = 3\n", "broken.toml")
    result = run("validate", str(broken), code=2)
    assert f"{broken}: not valid TOML" in result.stderr and "line 3" in result.stderr
    assert json.loads(run("validate", str(broken), "-o", "json", code=2).stdout)["error"].startswith(str(broken))


def test_validate_accepts_gzip_and_base64_as_the_agent_does(tmp_path):
    data = (INPUTS / "mng-bottlerocket.toml").read_bytes()
    path = write(tmp_path, base64.b64encode(gzip.compress(data, mtime=0)), "user-data.b64")
    assert "valid" in run("validate", str(path)).stdout


def test_bad_kubelet_version_exits_2():
    result = run("validate", str(INPUTS / "karpenter-bottlerocket.toml"), "--kubelet-version", "new", code=2)
    assert "--kubelet-version 'new': expected X.Y" in result.stderr


def test_mounted_under_nodeforge():
    result = runner.invoke(nodeforge_app, ["settings", "validate", str(INPUTS / "eksctl-bottlerocket.toml")])
    assert result.exit_code == 0, result.output


# -- render ------------------------------------------------------------------------------------------------------


def test_render_writes_what_the_agent_writes(tmp_path):
    name = "karpenter-bottlerocket-nodeclass.toml"
    out = tmp_path / "out"
    result = run("render", str(INPUTS / name), "--out", str(out), "--kubelet-version", "1.31", "-o", "json")
    listed = json.loads(result.stdout)["files"]
    assert [f["path"] for f in listed if f["action"] == "created"] == [
        "/etc/kubernetes/pki/ca.crt",
        "/etc/kubernetes/kubelet/config.json",
        "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf",
        "/var/lib/kubelet/kubeconfig",
        "/etc/eks/kubelet/environment",
        "/etc/containerd/config.d/00-nodeforge.toml",
        "/etc/containerd/base-runtime-spec.json",
        "/etc/containerd/certs.d/docker.io/hosts.toml",
        "/etc/containerd/certs.d/public.ecr.aws/hosts.toml",
        "/etc/sysctl.d/90-nodeforge-settings.conf",
    ]
    assert files_under(out) == sorted(f["path"] for f in listed)

    # The agent itself, on an instance whose IMDS answers with the facts render makes up, writes the same bytes.
    agent_root = tmp_path / "agent"
    agent_root.mkdir()
    region = region_of("https://4E2A1F0D8B6C3E5A7B9C.gr7.us-west-2.eks.amazonaws.com")
    with FakeImdsServer() as imds:
        imds.metadata.update({
            "instance-id": OFFLINE_INSTANCE_ID, "instance-type": "m5.large", "local-ipv4": OFFLINE_IPV4,
            "placement/availability-zone": f"{region}a", "placement/region": region,
            "local-hostname": f"ip-10-0-0-10.{region}.compute.internal",
        })  # fmt: skip
        code = agent_main(
            ["--user-data", str(INPUTS / name), "--root", str(agent_root), "--imds-endpoint", imds.endpoint,
             "--cpus", "2", "--kubelet-version", "1.31", "--no-start"],
            out=io.StringIO(), err=io.StringIO(),
        )  # fmt: skip
    assert code == 0
    assert files_under(agent_root) == files_under(out)
    for path in files_under(out):
        assert (out / path.lstrip("/")).read_bytes() == (agent_root / path.lstrip("/")).read_bytes(), path
        assert (out / path.lstrip("/")).stat().st_mode == (agent_root / path.lstrip("/")).stat().st_mode, path


def test_render_text_output_and_rerun(tmp_path):
    out = tmp_path / "out"
    result = run("render", str(INPUTS / "terraform-eks-bottlerocket.toml"), "--out", str(out))
    assert "/etc/eks/kubelet/environment" in result.stdout and "6 file(s) changed" in result.stdout
    again = run("render", str(INPUTS / "terraform-eks-bottlerocket.toml"), "--out", str(out))
    assert "0 file(s) changed" in again.stdout


def test_render_writes_nothing_for_invalid_settings(tmp_path):
    out = tmp_path / "out"
    path = write(tmp_path, CLUSTER + "max-pods = 'many'\n")
    result = run("render", str(path), "--out", str(out), code=1)
    assert "settings.kubernetes.max-pods: must be an integer" in result.stderr
    assert "settings.toml: 1 error(s); nothing written" in result.stderr
    assert not out.exists() or files_under(out) == []


def test_render_refuses_cis_sysctls_unless_warn(tmp_path):
    out = tmp_path / "out"
    path = write(tmp_path, CLUSTER + "[settings.kernel.sysctl]\n'kernel.panic' = '0'\n")
    run("render", str(path), "--out", str(out), code=1)
    assert not out.exists() or files_under(out) == []
    run("render", str(path), "--out", str(out), "--cis-mode", "warn")
    assert "kernel.panic = 0\n" in (out / "etc/sysctl.d/90-nodeforge-settings.conf").read_text()


@pytest.mark.parametrize(("version", "plugin"), [(2, "io.containerd.grpc.v1.cri"), (3, "io.containerd.cri.v1.images")])
def test_render_follows_the_containerd_config_under_out(tmp_path, version, plugin):
    out = tmp_path / "out"
    (out / "etc/containerd").mkdir(parents=True)
    (out / "etc/containerd/config.toml").write_text(f"version = {version}\n")
    mirrors = "[[settings.container-registry.mirrors]]\nregistry = 'ghcr.io'\nendpoint = ['https://ghcr-cache.local']\n"
    run("render", str(write(tmp_path, CLUSTER + mirrors)), "--out", str(out))
    dropin = (out / "etc/containerd/config.d/00-nodeforge.toml").read_text()
    assert f'[plugins."{plugin}".registry]\nconfig_path = "/etc/containerd/certs.d"' in dropin
    assert 'server = "https://ghcr.io"' in (out / "etc/containerd/certs.d/ghcr.io/hosts.toml").read_text()


def test_render_write_failure_leaves_nothing(tmp_path):
    out = tmp_path / "out"
    (out / "etc").mkdir(parents=True)
    (out / "etc/sysctl.d").write_text("in the way")
    path = write(tmp_path, CLUSTER + "[settings.kernel.sysctl]\n'net.core.somaxconn' = '1024'\n")
    result = run("render", str(path), "--out", str(out), code=3)
    assert "cannot write /etc/sysctl.d/90-nodeforge-settings.conf" in result.stderr
    assert files_under(out) == ["/etc/sysctl.d"]
