"""Helpers of the nodeadm conformance suite: amazon-eks-ami's nodeadm/test/e2e/cases, each expressed by us as the
same input and the same expected outcome, compared semantically (JSON/YAML/TOML parsed, systemd files as lines).

The instance is nodeadm's e2e IMDS mock (m4.xlarge, us-west-2f, i-1234567890abcdef0), with 2 CPUs.

Deliberate differences, listed in docs/bootstrap.md ("Differences from nodeadm") and checked here rather than
ignored:
- config.json carries three CIS settings nodeadm leaves to the kubelet's defaults (CIS_KUBELET_EXTRAS);
- the containerd configuration is the image's config.toml plus the agent's drop-in: ``imports`` (how the drop-in
  is read) is extra; the image's own runc runtime stays defined next to nvidia; ``cni.bin_dir`` is written
  ``bin_dirs`` on containerd 2 (its name since 2.1; containerd migrates one into the other).
"""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import yaml

REPO = Path(__file__).resolve().parents[4]
CA = "Y2VydGlmaWNhdGVBdXRob3JpdHk="
CLUSTER = f"""---
apiVersion: node.eks.aws/v1alpha1
kind: NodeConfig
spec:
  cluster:
    name: my-cluster
    apiServerEndpoint: https://example.com
    certificateAuthority: {CA}
    cidr: 10.100.0.0/16
"""
CIS_KUBELET_EXTRAS = {
    "makeIPTablesUtilChains": True,
    "rotateCertificates": True,
    "streamingConnectionIdleTimeout": "4h0m0s",
}
TLS_CIPHERS = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
]


def nodeconfig(extra: str = "", cluster: str = CLUSTER) -> str:
    return cluster + extra


def kubelet_config(*, max_pods: int, reserved_memory: str, kubelet: tuple[int, int]) -> dict[str, Any]:
    """The config.json nodeadm's e2e cases expect on the mock instance (its defaults plus the node's values)."""
    gates: dict[str, bool] = {"RotateKubeletServerCertificate": True}
    config: dict[str, Any] = {
        "kind": "KubeletConfiguration",
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "address": "0.0.0.0",
        "authentication": {
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
            "webhook": {"enabled": True, "cacheTTL": "2m0s"},
            "anonymous": {"enabled": False},
        },
        "authorization": {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "5m0s", "cacheUnauthorizedTTL": "30s"}},
        "cgroupDriver": "systemd",
        "cgroupRoot": "/",
        "clusterDomain": "cluster.local",
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "featureGates": gates,
        "hairpinMode": "hairpin-veth",
        "protectKernelDefaults": True,
        "readOnlyPort": 0,
        "logging": {"verbosity": 2},
        "serializeImagePulls": False,
        "serverTLSBootstrap": True,
        "tlsCipherSuites": TLS_CIPHERS,
        "clusterDNS": ["10.100.0.10"],
        "maxPods": max_pods,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "10%", "nodefs.inodesFree": "5%"},
        "kubeReserved": {"cpu": "70m", "ephemeral-storage": "1Gi", "memory": reserved_memory},
        "systemReservedCgroup": "/system",
        "kubeReservedCgroup": "/runtime",
        "providerID": "aws:///us-west-2f/i-1234567890abcdef0",
    }
    if kubelet >= (1, 33):
        gates["DynamicResourceAllocation"] = True
    if kubelet >= (1, 34):
        gates["MutableCSINodeAllocatableCount"] = True
        config["shutdownGracePeriod"] = "2m30s"
        config["shutdownGracePeriodCriticalPods"] = "30s"
    return config


def read_json(root: Path, path: str) -> Any:
    return json.loads((root / path.lstrip("/")).read_text(encoding="utf-8"))


def read_yaml(root: Path, path: str) -> Any:
    return yaml.safe_load((root / path.lstrip("/")).read_text(encoding="utf-8"))


def assert_kubelet_config(root: Path, expected: dict[str, Any]) -> None:
    actual = read_json(root, "/etc/kubernetes/kubelet/config.json")
    for key, value in CIS_KUBELET_EXTRAS.items():
        assert actual.pop(key) == value, key
    assert actual == expected


def systemd_lines(text: str) -> list[str]:
    """A systemd configuration file's meaningful lines (comments and blank lines dropped)."""
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith(("#", ";"))]


# -- containerd ---------------------------------------------------------------------------------------------------


def baked_containerd_config(containerd_version: str, sandbox: str = "localhost/kubernetes/pause:latest") -> str:
    """The config.toml roles/containerd bakes for this containerd version (its defaults; the sandbox image set to
    nodeadm's e2e one: the pause image is the image's choice, here made equal to compare the rest)."""
    role = REPO / "roles" / "containerd"
    variables = yaml.safe_load((role / "defaults" / "main.yml").read_text(encoding="utf-8"))
    variables.update(
        containerd_installed_version=containerd_version, containerd_sandbox_image=sandbox, ansible_managed="test"
    )
    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)

    def version_test(value: str, other: str, operator: str) -> bool:
        left, right = (tuple(int(part) for part in v.split(".")[:3]) for v in (value, other))
        return {">=": left >= right, "<": left < right}[operator]

    environment.tests["version"] = version_test
    template = environment.from_string((role / "templates" / "config.toml.j2").read_text(encoding="utf-8"))
    return template.render(**variables)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def effective_containerd_config(root: Path) -> dict[str, Any]:
    """config.toml with the files its ``imports`` name merged in, as containerd merges them: version 2 (containerd
    1.x) replaces each imported plugin's whole section; version 3 (2.x) merges sections key by key. The result
    must not depend on which: the agent writes complete sections."""
    main = tomllib.loads((root / "etc/containerd/config.toml").read_text(encoding="utf-8"))
    results = []
    for whole_sections in (True, False):
        merged = copy.deepcopy(main)
        for pattern in main.get("imports", []):
            for path in sorted((root / "etc").parent.glob(pattern.lstrip("/"))):
                imported = tomllib.loads(path.read_text(encoding="utf-8"))
                plugins = imported.pop("plugins", {})
                merged = _deep_merge(merged, imported)
                target = merged.setdefault("plugins", {})
                for name, section in plugins.items():
                    target[name] = section if whole_sections else _deep_merge(target.get(name, {}), section)
        results.append(merged)
    assert results[0] == results[1], "the drop-in's plugin sections are incomplete for containerd 1.x"
    effective = results[0]
    effective.pop("imports", None)  # deliberate: how the drop-in is read
    return effective


def normalized(config: dict[str, Any]) -> dict[str, Any]:
    """``cni.bin_dir = X`` written as ``cni.bin_dirs = [X]`` (containerd 2.1's name for it)."""
    config = copy.deepcopy(config)
    runtime = config.get("plugins", {}).get("io.containerd.cri.v1.runtime", {})
    cni = runtime.get("cni", {})
    if "bin_dir" in cni:
        cni["bin_dirs"] = [cni.pop("bin_dir")]
    return config


def nodeadm_containerd(
    *,
    version: int,
    runtime: str = "runc",
    enable_cdi: bool,
    sandbox: str,
    discard_unpacked_layers: bool,
    grpc_address: str = "/run/foo/foo.sock",
) -> dict[str, Any]:
    """The settings of nodeadm's expected config.toml for a case (for containerd 2 with a converted version 2
    config, the values of its `containerd config migrate` dump that differ from containerd's defaults, plus those
    nodeadm's template sets)."""
    binary = {"runc": "/usr/sbin/runc", "nvidia": "/usr/bin/nvidia-container-runtime"}[runtime]
    runtimes = {
        runtime: {
            "base_runtime_spec": "/etc/containerd/base-runtime-spec.json",
            "runtime_type": "io.containerd.runc.v2",
            "options": {"BinaryName": binary, "SystemdCgroup": True},
        }
    }
    cni = {"bin_dir": "/opt/cni/bin", "conf_dir": "/etc/cni/net.d"}
    registry = {"config_path": "/etc/containerd/certs.d:/etc/docker/certs.d"}
    top = {
        "root": "/var/lib/containerd",
        "state": "/run/containerd",
        "version": version,
        "grpc": {"address": grpc_address},
    }
    if version == 2:
        plugins = {
            "io.containerd.grpc.v1.cri": {
                "enable_cdi": enable_cdi,
                "sandbox_image": sandbox,
                "cni": cni,
                "containerd": {
                    "default_runtime_name": runtime,
                    "discard_unpacked_layers": discard_unpacked_layers,
                    "runtimes": runtimes,
                },
                "registry": registry,
            }
        }
    else:
        plugins = {
            "io.containerd.cri.v1.images": {
                "discard_unpacked_layers": discard_unpacked_layers,
                "pinned_images": {"sandbox": sandbox},
                "registry": registry,
            },
            "io.containerd.cri.v1.runtime": {
                "enable_cdi": enable_cdi,
                "cni": cni,
                "containerd": {"default_runtime_name": runtime, "runtimes": runtimes},
            },
        }
    return normalized({**top, "plugins": plugins})


def image_runc_runtime(effective: dict[str, Any], version: int) -> dict[str, Any]:
    """Removes and returns the image's own runc runtime (kept next to nvidia: a deliberate difference)."""
    plugin = "io.containerd.grpc.v1.cri" if version == 2 else "io.containerd.cri.v1.runtime"
    return effective["plugins"][plugin]["containerd"]["runtimes"].pop("runc")
