"""max-pods and kube-reserved, as the EKS AMIs compute them.

Standard (nodeadm and the AL2 eni-max-pods.txt): ENIs on the default network card x (IPv4 per ENI - 1) + 2.
``calculator`` mode follows max-pods-calculator.sh: optional custom networking (one ENI fewer), prefix
delegation on Nitro (x16 addresses per slot) and a ceiling of 110 pods up to 30 vCPUs, 250 above.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from nodeforge.bootstrap.record import dataclass

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "data" / "instance_limits.json"
DEFAULT_MAX_PODS = 110  # kubelet's default, nodeadm's fallback for unknown instance types
IPS_PER_PREFIX = 16
CEILING_LOW_CPU = 110
CEILING_HIGH_CPU = 250
HIGH_CPU_THRESHOLD = 30


@dataclass(frozen=True)
class InstanceLimits:
    instance_type: str
    enis: int
    ipv4_per_eni: int
    vcpus: int
    memory_mib: int
    nitro: bool


@lru_cache(maxsize=1)
def _text() -> str:
    return DATA_FILE.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return json.loads(_text())


def _row(instance_type: str) -> list[int] | None:
    """The type's row. scripts/gen_instance_limits.py writes one type per line: its line is parsed, not the whole
    table (a run needs one row of a thousand); a type not found that way is looked up in the whole table."""
    text = _text()
    key = "\n" + json.dumps(instance_type) + ":["
    start = text.find(key)
    if start < 0:
        return _table()["types"].get(instance_type)
    return json.loads(text[start + len(key) - 1 : text.index("]", start) + 1])


def table_source() -> dict[str, str]:
    return dict(_table()["source"])


def lookup(instance_type: str) -> InstanceLimits | None:
    row = _row(instance_type)
    if row is None:
        return None
    enis, ips, vcpus, memory, nitro = row
    return InstanceLimits(instance_type, enis, ips, vcpus, memory, bool(nitro))


def standard_max_pods(limits: InstanceLimits) -> int:
    return limits.enis * (limits.ipv4_per_eni - 1) + 2


def calculator_max_pods(
    limits: InstanceLimits, *, prefix_delegation: bool = False, custom_networking: bool = False, max_enis: int = 0
) -> int:
    """max-pods-calculator.sh: ENI cap, custom networking, prefix delegation (Nitro only), vCPU ceiling."""
    enis = min(max_enis, limits.enis) if max_enis > 0 else limits.enis
    if custom_networking:
        enis -= 1
    if prefix_delegation and limits.nitro:
        pods = enis * ((limits.ipv4_per_eni - 1) * IPS_PER_PREFIX) + 2
    else:
        pods = enis * (limits.ipv4_per_eni - 1) + 2
    ceiling = CEILING_HIGH_CPU if limits.vcpus > HIGH_CPU_THRESHOLD else CEILING_LOW_CPU
    return min(ceiling, pods)


def expression_max_pods(expression: str, limits: InstanceLimits) -> int:
    """nodeadm's maxPodsExpression (integer CEL subset); raises ValueError when it cannot be evaluated."""
    from nodeforge.bootstrap.celexpr import evaluate

    variables = {"default_enis": limits.enis, "ips_per_eni": limits.ipv4_per_eni, "max_pods": standard_max_pods(limits)}
    return evaluate(expression, variables)


def cpu_millicores_to_reserve(cpus: int) -> int:
    """6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% of every core above 4."""
    total = cpus * 1000
    bounds = (0, 1000, 2000, 4000, total)
    per_ten_thousand = (600, 100, 50, 25)
    reserved = 0
    for index, share in enumerate(per_ten_thousand):
        start, end = bounds[index], bounds[index + 1]
        if total > start:
            reserved += (min(total, end) - start) * share // 10000
    return reserved


def memory_mebibytes_to_reserve(max_pods: int) -> int:
    return 11 * max_pods + 255


def kube_reserved(max_pods: int, cpus: int) -> dict[str, str]:
    return {
        "cpu": f"{cpu_millicores_to_reserve(cpus)}m",
        "ephemeral-storage": "1Gi",
        "memory": f"{memory_mebibytes_to_reserve(max_pods)}Mi",
    }
