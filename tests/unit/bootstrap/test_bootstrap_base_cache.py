"""The image's containerd config.toml as read at bake time (/etc/nodeforge/containerd-config.json): used at boot only
while config.toml holds the very text it was made from, and the same node configuration either way."""

from __future__ import annotations

import json
import sys

from bootstrap_helpers import INPUTS, snapshot

from nodeforge.bootstrap import containerd, tomlr
from nodeforge.bootstrap.errors import EXIT_OK

BASE = """version = 2
imports = ["/etc/containerd/config.d/*.toml"]
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
sandbox_image = "602401143452.dkr.ecr.us-west-2.amazonaws.com/eks/pause:3.10"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
SystemdCgroup = true

[plugins."io.containerd.grpc.v1.cri".registry]
config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"
"""


def write(root, text=BASE):
    path = root / "etc/containerd/config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def cache(root):
    return root / "etc/nodeforge/containerd-config.json"


def test_cache_follows_config_toml(tmp_path):
    assert containerd.cache_base_config(tmp_path) == "absent"
    write(tmp_path)
    assert containerd.cache_base_config(tmp_path) == "created"
    recorded = json.loads(cache(tmp_path).read_text(encoding="utf-8"))
    assert recorded == {"source": BASE, "config": tomlr.loads(BASE)}
    assert containerd.cache_base_config(tmp_path) == "unchanged"
    write(tmp_path, BASE.replace("3.10", "3.9"))
    assert containerd.cache_base_config(tmp_path) == "updated"
    write(tmp_path, "version = 2\nwhen = 2024-01-01T00:00:00Z\n")  # a TOML date: JSON cannot hold it
    assert containerd.cache_base_config(tmp_path) == "removed"
    assert not cache(tmp_path).exists()
    write(tmp_path)
    assert containerd.cache_base_config(tmp_path) == "created"
    (tmp_path / "etc/containerd/config.toml").unlink()
    assert containerd.cache_base_config(tmp_path) == "removed"
    assert containerd.base_config(tmp_path) == {}


def test_cache_used_only_for_the_text_it_was_made_from(tmp_path, monkeypatch):
    write(tmp_path)
    containerd.cache_base_config(tmp_path)

    def no_parser(text):
        raise AssertionError("config.toml parsed although its bake-time reading matches")

    monkeypatch.setattr(tomlr, "loads", no_parser)
    assert containerd.base_config(tmp_path) == json.loads(cache(tmp_path).read_text())["config"]
    monkeypatch.undo()
    changed = BASE.replace("SystemdCgroup = true", "SystemdCgroup = false")
    write(tmp_path, changed)  # changed after the bake: read from the file itself
    assert containerd.base_config(tmp_path) == tomlr.loads(changed)
    cache(tmp_path).write_text("{not json", encoding="utf-8")
    assert containerd.base_config(tmp_path) == tomlr.loads(changed)


def test_same_files_with_and_without_the_cache(agent, tmp_path):
    """Every dialect writes the same files whether config.toml is read from the cache or parsed."""
    agent_type = type(agent)  # tests/unit/bootstrap/conftest.py's Agent ("conftest" is not one module here)
    for name in ("eksctl-al2.sh", "karpenter-al2023.mime", "mng-al2.mime", "karpenter-bottlerocket.toml"):
        outputs = []
        for cached in (False, True):
            root = tmp_path / f"{name}-{cached}"
            write(root)
            if cached:
                containerd.cache_base_config(root)
            result = agent_type(agent.imds, root).run(
                "--kubelet-version", "1.31", user_data=(INPUTS / name).read_bytes()
            )
            assert result.code == EXIT_OK, result.err
            if cached:
                cache(root).unlink()
            outputs.append(snapshot(root))
        assert outputs[0] == outputs[1], name
        assert "SystemdCgroup = true" in (root / containerd.DROPIN_PATH.lstrip("/")).read_text(), name


def test_no_toml_parser_at_boot_for_shell_and_yaml_user_data(agent, monkeypatch):
    """With the bake-time reading in place, bootstrap.sh and NodeConfig YAML user data need no TOML parser."""
    write(agent.root)
    containerd.cache_base_config(agent.root)
    monkeypatch.setattr(tomlr, "_parser", None)
    monkeypatch.setitem(sys.modules, "tomllib", None)  # any import of a TOML parser fails
    monkeypatch.setitem(sys.modules, "tomli", None)
    for name in ("eksctl-al2.sh", "karpenter-al2023.mime", "mng-al2.mime"):
        result = agent.run("--kubelet-version", "1.31", user_data=(INPUTS / name).read_bytes())
        assert result.code == EXIT_OK, (name, result.err)
