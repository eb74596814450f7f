"""The ``nodeforge image`` commands on a tiny sealed root (no QEMU), and the boot checks on a canned report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from immutable_helpers import flip_byte, needs_tools, tiny_rootfs
from typer.testing import CliRunner

from nodeforge.immutable.cli import app
from nodeforge.vm import disk as diskimage
from nodeforge.vm.ab_boot import ImmutableBootResult, evaluate
from nodeforge.vm.ab_disk import read_layout

runner = CliRunner()

FACTS = {
    "root_source": "/dev/mapper/nf-root",
    "root_options": "ro,relatime",
    "dm_table": "0 100 verity 1 254:2 254:2 4096 4096 12 13 sha256 ab cd",
    "dm_status": "0 100 verity V",
    "etc_fstype": "overlay",
    "etc_writable": "yes",
    "var_fstype": "ext4",
    "var_writable": "yes",
    "usr_writable": "no",
    "root_writable": "no",
    "opt_cni_fstype": "overlay",
    "local_settings": "active",
    "kubelet_config_dns": "10.100.0.10",
    "kubelet_config_in_upper": "yes",
    "sealed_kubelet_config_dns": "absent",
    "sealed_missing": "",
}


def _result(facts: dict, state: str = "running") -> diskimage.BootResult:
    return diskimage.BootResult(
        system_state=state,
        failed_units=[],
        unit_states={"containerd": "active"},
        root_mount="/dev/mapper/nf-root erofs ro",
        seconds=30.0,
        console_log=Path("console.log"),
        report={"state": state, "extra": facts},
    )


def test_evaluate_all_pass_and_each_failure():
    checks = evaluate(_result(FACTS), expect_dns="10.100.0.10", units=["containerd"])
    assert all(checks.values()) and len(checks) == 11
    for key, bad, check in [
        ("root_source", "/dev/vda2", "root from dm-verity device"),
        ("dm_status", "0 100 verity C", "dm-verity status verified (V)"),
        ("root_writable", "yes", "root read-only (/ and /usr)"),
        ("etc_fstype", "ext4", "/etc is a writable overlay"),
        ("var_writable", "no", "/var writable (state partition)"),
        ("kubelet_config_dns", "172.20.0.10", "/etc rendered from settings"),
        ("sealed_kubelet_config_dns", "10.100.0.10", "sealed /etc unchanged"),
        ("sealed_missing", "/usr/bin/kubelet ", "node components in the sealed root"),
        ("sealed_missing", "unmountable", "node components in the sealed root"),
    ]:
        result = evaluate(_result({**FACTS, key: bad}), expect_dns="10.100.0.10", units=["containerd"])
        assert not result[check], key
    assert not evaluate(_result(FACTS, "degraded"), expect_dns=None, units=[])["system running, no failed units"]
    no_facts = evaluate(_result({}), expect_dns=None, units=[])  # a probe without the sealed-root extras
    assert [name for name, passed in no_facts.items() if passed] == ["system running, no failed units"]


def test_evaluate_settings_from_imds_needs_the_bootstrap_unit():
    boot = _result(FACTS)
    boot.unit_states["nodeforge-bootstrap"] = "active"
    units = ["containerd", "nodeforge-bootstrap"]
    checks = evaluate(boot, expect_dns="10.100.0.10", units=units, source="imds")
    assert all(checks.values()) and "/etc rendered from the IMDS user data" in checks
    boot.unit_states["nodeforge-bootstrap"] = "failed"
    checks = evaluate(boot, expect_dns="10.100.0.10", units=units, source="imds")
    assert not checks["/etc rendered from the IMDS user data"] and not checks["nodeforge-bootstrap active"]


def test_boot_result_to_dict():
    boot = _result(FACTS)
    checks = evaluate(boot, expect_dns="10.100.0.10", units=["containerd"])
    result = ImmutableBootResult(Path("d.img"), "a", "ab" * 32, False, "", boot, checks)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ok"] and data["facts"]["root_source"] == "/dev/mapper/nf-root"


@needs_tools
def test_cli_flow(tmp_path):
    tar = tiny_rootfs(tmp_path / "rootfs.tar")
    sealed = tmp_path / "sealed"
    res = runner.invoke(app, ["seal", str(tar), "--out", str(sealed)])
    assert res.exit_code == 0, res.output
    assert "root hash" in res.output
    res = runner.invoke(app, ["verify", str(sealed)])
    assert res.exit_code == 0 and "verified" in res.output, res.output

    disk = tmp_path / "disk.img"
    res = runner.invoke(app, ["disk", "create", str(sealed), "--out", str(disk), "--state-mb", "16"])
    assert res.exit_code == 0 and "NF-ROOT-A" in res.output, res.output
    res = runner.invoke(app, ["status", str(disk), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["selected"] == "a"

    res = runner.invoke(app, ["update", str(disk), str(sealed)])
    assert res.exit_code == 0 and "slot B pending" in res.output, res.output
    res = runner.invoke(app, ["status", str(disk)])
    assert res.exit_code == 0 and "pending" in res.output, res.output
    res = runner.invoke(app, ["mark-successful", str(disk)])
    assert res.exit_code == 0 and "slot B marked successful" in res.output, res.output
    res = runner.invoke(app, ["rollback", str(disk)])
    assert res.exit_code == 0 and "slot A active" in res.output, res.output

    flip_byte(sealed / "root.img", 5000)
    res = runner.invoke(app, ["verify", str(sealed)])
    assert res.exit_code == 1 and "root.img" in res.output, res.output
    res = runner.invoke(app, ["update", str(disk), str(sealed)])
    assert res.exit_code == 1 and "stays active" in res.output, res.output


@pytest.mark.parametrize(
    "argv",
    [
        ["seal", "missing.tar", "--out", "o"],
        ["verify", "no-such-dir"],
        ["status", "no-such-disk.img"],
        ["rollback", "no-such-disk.img"],
    ],
)
def test_cli_errors_exit_1_naming_the_file(tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, argv)
    assert res.exit_code == 1, res.output
    assert argv[1].split("/")[0] in res.output.replace("\n", "")


@needs_tools
def test_keygen_seal_signed_disk_create(tmp_path):
    key = tmp_path / "keys" / "build.key"
    result = runner.invoke(app, ["keygen", str(key)])
    assert result.exit_code == 0, result.output
    assert key.is_file() and key.with_suffix(".pub").is_file() and "sha256:" in result.output
    again = runner.invoke(app, ["keygen", str(key)])
    assert again.exit_code == 1 and "exists already" in again.output
    tar = tiny_rootfs(tmp_path / "r.tar")
    out = tmp_path / "sealed"
    result = runner.invoke(
        app, ["seal", str(tar), "--out", str(out), "--signing-key", str(key), "--source-date-epoch", "1700000000"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "seal.json").read_text())
    assert (
        record["signature"]["key"] in " ".join(result.output.split())
        or record["signature"]["key"][:20] in result.output
    )
    assert record["inputs"]["source_date_epoch"] == 1700000000
    other = tmp_path / "other.key"
    runner.invoke(app, ["keygen", str(other)])
    disk = tmp_path / "disk.img"
    result = runner.invoke(
        app,
        [
            "disk",
            "create",
            str(out),
            "--out",
            str(disk),
            "--state-mb",
            "16",
            "--public-key",
            str(other.with_suffix(".pub")),
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_layout(disk).public_key() == other.with_suffix(".pub").read_text()
    bad = runner.invoke(
        app, ["seal", str(tar), "--out", str(tmp_path / "x"), "--signing-key", str(tmp_path / "nope.key")]
    )
    # rich wraps the message at a space or inside a long path, by the path's length: compare without whitespace
    assert bad.exit_code == 1 and "nope.key:signingkeynotfound" in "".join(bad.output.split())


def test_boot_refuses_bad_options_before_starting_a_vm(tmp_path):
    disk = tmp_path / "d.img"
    res = runner.invoke(app, ["boot", str(disk), "--firmware", "coreboot"])
    assert res.exit_code == 2 and "--firmware 'coreboot'" in res.output
    res = runner.invoke(app, ["boot", str(disk), "--user-data", str(tmp_path / "nope.toml")])
    assert res.exit_code == 2 and "nope.toml" in "".join(res.output.split("\n"))  # rich wraps long paths
    res = runner.invoke(app, ["boot", str(disk)])
    assert res.exit_code == 1 and "d.img: disk image not found" in " ".join(res.output.split())
