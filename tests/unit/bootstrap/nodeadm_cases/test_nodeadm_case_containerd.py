"""nodeadm e2e cases containerdv1-config, containerdv1-runtime-config-{neuron,nvidia}, containerdv2-config,
containerdv2-runtime-config-{neuron,nvidia} and containerd-base-runtime-spec: the effective containerd
configuration (the image's config.toml plus the agent's drop-in) equals nodeadm's expected config.toml.

The "neuron" cases expect what the runc ones expect (nodeadm has no Neuron runtime any more); they run here
as their own inputs all the same."""

from __future__ import annotations

import pytest
from nodeadm_case_helpers import (
    baked_containerd_config,
    effective_containerd_config,
    image_runc_runtime,
    nodeadm_containerd,
    nodeconfig,
    normalized,
    read_json,
)

from nodeforge.bootstrap import runtimespec
from nodeforge.bootstrap.errors import EXIT_INVALID, EXIT_OK

V2_CONFIG = nodeconfig("""  containerd:
    config: |
      version = 2

      [grpc]
      address = "/run/foo/foo.sock"

      [plugins."io.containerd.grpc.v1.cri".containerd]
      discard_unpacked_layers = false
""")
V2_CONFIG_WITH_SANDBOX = (
    V2_CONFIG
    + """
      [plugins.'io.containerd.grpc.v1.cri']
      sandbox_image = "registry.k8s.io/pause:3.10"
"""
)
V3_CONFIG_IMAGES = nodeconfig("""  containerd:
    config: |
      version = 3

      [grpc]
      address = "/run/foo/foo.sock"

      [plugins.'io.containerd.cri.v1.images']
      discard_unpacked_layers = false
""")
V3_CONFIG_PINNED = nodeconfig("""  containerd:
    config: |
      version = 3

      [grpc]
      address = "/run/foo/foo.sock"

      [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = 'registry.k8s.io/pause:3.10'
""")
CLUSTER_ONLY = nodeconfig()
LOCAL_PAUSE = "localhost/kubernetes/pause:latest"
CONTAINERD_1 = "1.7.27"
CONTAINERD_2 = "2.0.5"


def image(agent, containerd_version, *, nvidia=False):
    path = agent.root / "etc/containerd/config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(baked_containerd_config(containerd_version))
    runc = agent.root / "usr/sbin/runc"  # where the EKS AMIs (and nodeadm's template) have it
    runc.parent.mkdir(parents=True, exist_ok=True)
    runc.write_text("")
    if nvidia:
        (agent.root / "usr/bin").mkdir(parents=True, exist_ok=True)
        (agent.root / "usr/bin/nvidia-container-runtime").write_text("")


def configure(agent, user_data, kubelet):
    result = agent.run("--kubelet-version", kubelet, user_data=user_data)
    assert result.code == EXIT_OK, result.err
    return normalized(effective_containerd_config(agent.root))


@pytest.mark.parametrize("case", ["containerdv1-config", "containerdv1-runtime-config-neuron"])
@pytest.mark.parametrize(("kubelet", "cdi"), [("1.27.0", False), ("1.31.0", False), ("1.32.0", True)])
def test_containerd1_version2_config(agent, case, kubelet, cdi):
    image(agent, CONTAINERD_1)
    effective = configure(agent, V2_CONFIG, kubelet)
    assert effective == nodeadm_containerd(
        version=2, enable_cdi=cdi, sandbox=LOCAL_PAUSE, discard_unpacked_layers=False
    )


def test_containerd1_nvidia_runtime(agent):  # containerdv1-runtime-config-nvidia
    image(agent, CONTAINERD_1, nvidia=True)
    effective = configure(agent, V2_CONFIG, "1.27.0")
    assert image_runc_runtime(effective, 2) == {
        "runtime_type": "io.containerd.runc.v2",
        "options": {"SystemdCgroup": True},
    }
    assert effective == nodeadm_containerd(
        version=2, runtime="nvidia", enable_cdi=False, sandbox=LOCAL_PAUSE, discard_unpacked_layers=False
    )


@pytest.mark.parametrize("nvidia", [False, True], ids=["runc", "nvidia"])
def test_containerd1_refuses_a_version3_config(agent, nvidia):
    image(agent, CONTAINERD_1, nvidia=nvidia)
    result = agent.run("--kubelet-version", "1.32.0", user_data=V3_CONFIG_IMAGES)
    assert result.code == EXIT_INVALID
    assert "spec.containerd.config: a version 3 containerd config cannot be used" in result.err
    assert not (agent.root / "etc/kubernetes/kubelet/config.json").exists()  # nothing written


@pytest.mark.parametrize(
    ("case", "nvidia"),
    [("containerdv2-config", False), ("containerdv2-runtime-config-neuron", False),
     ("containerdv2-runtime-config-nvidia", True)],
)  # fmt: skip
def test_containerd2_converts_a_version2_config(agent, case, nvidia):
    image(agent, CONTAINERD_2, nvidia=nvidia)
    effective = configure(agent, V2_CONFIG_WITH_SANDBOX, "1.32.0")
    if nvidia:
        image_runc_runtime(effective, 3)
    assert effective == nodeadm_containerd(
        version=3,
        runtime="nvidia" if nvidia else "runc",
        enable_cdi=True,
        sandbox="registry.k8s.io/pause:3.10",
        discard_unpacked_layers=False,
    )
    dropin = (agent.root / "etc/containerd/config.d/00-nodeforge.toml").read_text()
    assert "io.containerd.grpc.v1.cri" not in dropin  # converted, not imported as version 2


@pytest.mark.parametrize(
    ("case", "nvidia"),
    [("containerdv2-config", False), ("containerdv2-runtime-config-neuron", False),
     ("containerdv2-runtime-config-nvidia", True)],
)  # fmt: skip
def test_containerd2_version3_config(agent, case, nvidia):
    image(agent, CONTAINERD_2, nvidia=nvidia)
    effective = configure(agent, V3_CONFIG_PINNED, "1.32.0")
    if nvidia:
        image_runc_runtime(effective, 3)
    assert effective == nodeadm_containerd(
        version=3,
        runtime="nvidia" if nvidia else "runc",
        enable_cdi=True,
        sandbox="registry.k8s.io/pause:3.10",
        discard_unpacked_layers=True,
    )


def test_base_runtime_spec(agent):  # containerd-base-runtime-spec
    user_data = nodeconfig("""  containerd:
    baseRuntimeSpec:
      foo: bar
      process:
        rlimits:
          - type: RLIMIT_NOFILE
            soft: 12345
            hard: 12345
""")
    assert agent.run("--kubelet-version", "1.27.0", user_data=user_data).code == EXIT_OK
    spec = read_json(agent.root, runtimespec.PATH)
    assert spec.pop("foo") == "bar"
    assert spec["process"].pop("rlimits") == [{"hard": 12345, "soft": 12345, "type": "RLIMIT_NOFILE"}]
    expected = runtimespec.default_spec()
    del expected["process"]["rlimits"]
    assert spec == expected
    # containerd's default spec, as nodeadm's expected file has it
    assert spec["ociVersion"] == "1.1.0"
    assert len(spec["process"]["capabilities"]["bounding"]) == 14
    assert [m["destination"] for m in spec["mounts"]] == ["/dev", "/dev/mqueue", "/dev/pts", "/proc", "/sys"]
    assert spec["linux"]["resources"] == {"devices": [{"access": "rwm", "allow": False}]}


def test_base_runtime_spec_default_keeps_the_eks_open_files_limit(agent):
    assert agent.run(user_data=nodeconfig()).code == EXIT_OK
    spec = read_json(agent.root, runtimespec.PATH)
    assert spec["process"]["rlimits"] == [{"hard": 1048576, "soft": 65536, "type": "RLIMIT_NOFILE"}]


def test_runc_found_where_installed_or_left_to_containerd(agent):
    image(agent, CONTAINERD_2)
    (agent.root / "usr/sbin/runc").unlink()
    (agent.root / "usr/bin").mkdir(parents=True, exist_ok=True)
    (agent.root / "usr/bin/runc").write_text("")
    options = configure(agent, CLUSTER_ONLY, "1.32.0")["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]
    assert options["runtimes"]["runc"]["options"] == {"BinaryName": "/usr/bin/runc", "SystemdCgroup": True}
    (agent.root / "usr/bin/runc").unlink()
    options = configure(agent, CLUSTER_ONLY, "1.32.0")["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]
    assert options["runtimes"]["runc"]["options"] == {"SystemdCgroup": True}  # containerd finds runc in its PATH
