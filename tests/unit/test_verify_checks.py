"""`nodeforge verify --cis`: per-check results (ids, titles, status) read from the checks' junit reports."""

from __future__ import annotations

import json

from nodeforge.bake.verify import check_results

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="6" failures="1" skipped="1">
<testcase classname="test_kubelet" name="test_cis_3_2_1_anonymous_auth_disabled[docker://n]"/>
<testcase classname="test_kubelet" name="test_cis_3_1_3_config_permissions[docker://n]"/>
<testcase classname="test_kubelet" name="test_cis_3_2_10_something_new[docker://n]">
  <failure message="AssertionError: assert 420 == 384&#10;more">trace</failure></testcase>
<testcase classname="test_kubelet" name="test_cis_protect_kernel_defaults[docker://n]"/>
<testcase classname="test_kubelet" name="test_cis_hostname_override_not_set[docker://n]">
  <skipped message="not here"/></testcase>
<testcase classname="test_kubelet" name="test_unit_flags[docker://n]"/>
</testsuite></testsuites>
"""


def test_check_results_ids_titles_status(tmp_path):
    junit = tmp_path / "verify-booted.xml"
    junit.write_text(JUNIT)
    results = check_results([junit, tmp_path / "missing.xml"])
    assert [(r.id, r.status) for r in results] == [
        ("3.1.3", "pass"),
        ("3.2.1", "pass"),
        ("3.2.10", "fail"),
        ("legacy", "skip"),
        ("legacy", "pass"),
    ]
    failed = results[2]
    assert failed.title == "something new" and failed.message == "AssertionError: assert 420 == 384"
    assert results[1].title == "anonymous auth disabled"
    assert results[4].title == "protect kernel defaults"


def test_verify_cis_command_prints_table_and_json(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import nodeforge.bake.verify as verify
    from nodeforge.cli import app

    junit = tmp_path / "verify-booted.xml"
    junit.write_text(JUNIT)
    seen = {}

    def fake_verify(image, *, out_dir, markers=None, keep=False):
        seen["markers"] = markers
        return verify.VerifyResult(image, 4, 1, 1, 0.1, tmp_path / "verify.log", [junit])

    monkeypatch.setattr(verify, "verify_image", fake_verify)
    monkeypatch.setenv("NODEFORGE_CACHE", str(tmp_path))
    runner = CliRunner()
    text = runner.invoke(app, ["verify", "img:tag", "--cis"])
    assert text.exit_code == 1  # one check failed
    assert seen["markers"] == "cis"
    assert "3.2.10" in text.stdout and "FAIL" in text.stdout and "anonymous auth disabled" in text.stdout
    result = runner.invoke(app, ["verify", "img:tag", "--cis", "--output", "json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["failed"] == 1 and len(document["checks"]) == 5
    assert runner.invoke(app, ["verify", "img:tag", "--output", "yaml"]).exit_code == 2
