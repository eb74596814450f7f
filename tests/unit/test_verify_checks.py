"""`nodeforge verify --cis`: per-check results (ids, titles, status) read from the checks' junit reports."""

from __future__ import annotations

from nodeforge.verify import check_results

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
