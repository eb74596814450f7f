"""writer.apply in steps (temporary files, their fsyncs at once, renames, directory fsyncs at once): a failure at
any step leaves the previous files as they were, and no temporary file or new directory behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bootstrap_helpers import INPUTS, snapshot

from nodeforge.bootstrap import writer
from nodeforge.bootstrap.errors import EXIT_OK, EXIT_WRITE
from nodeforge.bootstrap.plan import PlannedFile

FIRST = (INPUTS / "eksctl-al2.sh").read_bytes()
# another cluster, DNS address and labels: the kubelet config, kubeconfig and environment change
SECOND = FIRST.replace(b"eksctl-demo", b"eksctl-other").replace(b"10.100.0.10", b"10.100.0.53")


def files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*"))


def test_every_file_and_directory_is_fsynced(tmp_path, monkeypatch):
    synced: list[str] = []
    real = os.fsync

    def spy(descriptor: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{descriptor}"))  # noqa: PTH115 - Path.readlink: 3.9+
        real(descriptor)

    monkeypatch.setattr(os, "fsync", spy)
    plan = [PlannedFile("/etc/a/one.conf", b"1\n"), PlannedFile("/etc/a/two.conf", b"2\n"), PlannedFile("/b/x", b"x")]
    outcomes = writer.apply(tmp_path, plan)
    assert [outcome.action for outcome in outcomes] == ["created"] * 3
    temporaries = [path for path in synced if path.endswith(".tmp")]
    assert len(temporaries) == 3  # each file's content before its rename
    assert sorted(set(synced) - set(temporaries)) == [str(tmp_path / "b"), str(tmp_path / "etc/a")]
    assert (tmp_path / "etc/a/two.conf").read_bytes() == b"2\n"
    assert not [path for path in tmp_path.rglob("*.tmp")]


@pytest.mark.parametrize("step", ["file-fsync", "rename", "directory-fsync"])
def test_a_failure_at_any_step_leaves_the_previous_files(agent, monkeypatch, step):
    assert agent.run("--kubelet-version", "1.31", user_data=FIRST).code == EXIT_OK
    before = snapshot(agent.root)
    listing = files(agent.root)
    real_fsync, real_replace = os.fsync, Path.replace
    calls = {"fsync": 0}

    def failing_fsync(descriptor: int) -> None:
        is_directory = Path(f"/proc/self/fd/{descriptor}").resolve().is_dir()
        if (step == "file-fsync" and not is_directory) or (step == "directory-fsync" and is_directory):
            calls["fsync"] += 1
            if calls["fsync"] == 2:
                raise OSError(5, "Input/output error")
        real_fsync(descriptor)

    def failing_replace(self: Path, target: Path) -> Path:
        if step == "rename" and Path(target).name == "environment":  # after the kubelet config is replaced
            raise OSError(5, "Input/output error")
        return real_replace(self, target)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    monkeypatch.setattr(Path, "replace", failing_replace)
    result = agent.run("--kubelet-version", "1.31", user_data=SECOND)
    assert result.code == EXIT_WRITE, result.err
    assert "Input/output error" in result.err
    monkeypatch.undo()
    assert snapshot(agent.root) == before
    assert files(agent.root) == listing
    again = agent.run("--kubelet-version", "1.31", user_data=SECOND)  # without the failure: several files change
    assert again.code == EXIT_OK and again.out.count("updated: ") >= 3, again.out


def test_a_failure_on_a_fresh_root_leaves_nothing(agent, monkeypatch):
    real = os.fsync
    calls = []

    def failing(descriptor: int) -> None:
        calls.append(descriptor)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(descriptor)

    monkeypatch.setattr(os, "fsync", failing)
    result = agent.run("--kubelet-version", "1.31", user_data=FIRST)
    assert result.code == EXIT_WRITE, result.err
    assert "No space left on device" in result.err
    assert files(agent.root) == []
