"""The boot probe's cloud-init status, read from cloud-init's state files instead of running `cloud-init status`."""

from __future__ import annotations

import json
from pathlib import Path

from nodeforge.vm.node_probe import _cloud_init_status

# /run/cloud-init/status.json and result.json as Debian 12's cloud-init (22.4.2) left them after a first boot of the
# baked image with the Karpenter user data; `cloud-init status --long` printed "status: done" and
# "detail: DataSourceEc2Local" for them.
STATUS = {
    "v1": {
        "datasource": "DataSourceEc2Local",
        "init": {"errors": [], "finished": 1796083877.1567698, "start": 1796083867.5695539},
        "init-local": {"errors": [], "finished": 1796083861.5094073, "start": 1796083858.109875},
        "modules-config": {"errors": [], "finished": 1796083896.0448854, "start": 1796083891.7518387},
        "modules-final": {"errors": [], "finished": 1796083902.4608378, "start": 1796083900.1630878},
        "modules-init": {"errors": [], "finished": None, "start": None},
        "stage": None,
    }
}
RESULT = {"v1": {"datasource": "DataSourceEc2Local", "errors": []}}


def _run_dir(tmp_path: Path, status: object = STATUS, result: object = RESULT) -> Path:
    for name, body in (("status.json", status), ("result.json", result)):
        if body is not None:
            (tmp_path / name).write_text(body if isinstance(body, str) else json.dumps(body))
    return tmp_path


def test_finished_first_boot_is_done_with_its_datasource(tmp_path):
    assert _cloud_init_status(_run_dir(tmp_path)) == ["status: done", "detail: DataSourceEc2Local"]


def test_no_result_yet_is_running(tmp_path):
    assert _cloud_init_status(_run_dir(tmp_path, result=None))[0] == "status: running"


def test_a_stage_error_is_an_error_naming_the_stage(tmp_path):
    status = json.loads(json.dumps(STATUS))
    status["v1"]["modules-final"]["errors"] = ["('scripts_user', RuntimeError('runparts: 1 failures'))"]
    result = {"v1": {"datasource": "DataSourceEc2Local", "errors": ["('scripts_user', ...)"]}}
    lines = _cloud_init_status(_run_dir(tmp_path, status, result))
    assert lines[0] == "status: error"
    assert lines[2].startswith("errors: modules-final: ('scripts_user'"), lines


def test_result_errors_count_when_no_stage_names_them(tmp_path):
    result = {"v1": {"datasource": "DataSourceEc2Local", "errors": ["no datasource"]}}
    assert _cloud_init_status(_run_dir(tmp_path, result=result))[::2] == ["status: error", "errors: no datasource"]


def test_disabled_by_the_generator(tmp_path):
    (tmp_path / "disabled").touch()
    assert _cloud_init_status(_run_dir(tmp_path)) == ["status: disabled"]


def test_missing_or_unreadable_state_is_not_started(tmp_path):
    assert _cloud_init_status(tmp_path) == ["status: not started"]
    assert _cloud_init_status(_run_dir(tmp_path, status="{not json", result=None)) == ["status: not started"]
    assert _cloud_init_status(_run_dir(tmp_path, status=["v1"], result=None)) == ["status: not started"]


def test_no_container_flag_skips_the_container_run(monkeypatch, capsys, tmp_path):
    """The bad-launch re-reads ask for units, journal and files only: no container import and run on the node."""
    from nodeforge.vm import node_probe

    image = tmp_path / "busybox-oci.tar"
    image.write_bytes(b"")
    monkeypatch.setattr(node_probe, "PROBE_IMAGE", str(image))
    calls: list[str] = []
    monkeypatch.setattr(node_probe, "_run", lambda cmd, timeout=60: (calls.append(cmd[0]) or 1, ""))
    node_probe.main([])
    assert "ctr" in calls  # the image is there: the full report imports and runs it
    calls.clear()
    node_probe.main(["--no-container"])
    report = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert report["container"] == {"ran": False, "detail": "not asked (--no-container)"}
    assert "ctr" not in calls and "journalctl" in calls
