"""The kubelet's image credential provider config (/etc/eks/image-credential-provider/config.json), written for
the node's kubelet version as nodeadm writes it: ecr-credential-provider for every ECR registry host pattern.

The patterns cover ECR in every partition: commercial (IPv4 and dual-stack ``*.dkr-ecr.*.on.aws``), China
(both forms), FIPS (both forms), the ISO partitions (C2S, SC2S, ISO-E ``cloud.adc-e.uk``, ISO-F
``csp.hci.ic.gov``), the European Sovereign Cloud (``amazonaws.eu``) and ECR Public. ``ecr-public.aws.com`` is
matched from kubelet 1.32 on: only ecr-credential-provider 1.32 and later can answer for it.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT = "/etc/eks/image-credential-provider"
CONFIG_PATH = ROOT + "/config.json"
PROVIDER = "ecr-credential-provider"
BINARY_PATH = ROOT + "/" + PROVIDER
ECR_PATTERNS = (
    "*.dkr.ecr.*.amazonaws.com",
    "*.dkr-ecr.*.on.aws",
    "*.dkr.ecr.*.amazonaws.com.cn",
    "*.dkr-ecr.*.on.amazonwebservices.com.cn",
    "*.dkr.ecr-fips.*.amazonaws.com",
    "*.dkr-ecr-fips.*.on.aws",
    "*.dkr.ecr.*.c2s.ic.gov",
    "*.dkr.ecr.*.sc2s.sgov.gov",
    "*.dkr.ecr.*.cloud.adc-e.uk",
    "*.dkr.ecr.*.csp.hci.ic.gov",
    "*.dkr.ecr.*.amazonaws.eu",
    "public.ecr.aws",
)
ECR_PUBLIC_DUAL_STACK = "ecr-public.aws.com"
ECR_PUBLIC_DUAL_STACK_SINCE = (1, 32)


def match_images(kubelet_version: tuple[int, int] | None) -> list[str]:
    """The image patterns for this kubelet (an unknown version gets the newest list)."""
    patterns = list(ECR_PATTERNS)
    if kubelet_version is None or kubelet_version >= ECR_PUBLIC_DUAL_STACK_SINCE:
        patterns.append(ECR_PUBLIC_DUAL_STACK)
    return patterns


def config(kubelet_version: tuple[int, int] | None) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1",
        "kind": "CredentialProviderConfig",
        "providers": [
            {
                "name": PROVIDER,
                "matchImages": match_images(kubelet_version),
                "defaultCacheDuration": "12h0m0s",
                "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
            }
        ],
    }


def render(kubelet_version: tuple[int, int] | None) -> str:
    return json.dumps(config(kubelet_version), indent=2) + "\n"
