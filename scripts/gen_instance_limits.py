"""Generate src/nodeforge/bootstrap/data/instance_limits.json from the EC2 instance-type data moto ships.

The table gives, per instance type, what max-pods and kube-reserved need at boot (the node has no AWS SDK to
call DescribeInstanceTypes): ENIs on the default network card, IPv4 addresses per ENI, vCPUs, memory and
whether the type is Nitro (prefix delegation). Run: .venv/bin/python scripts/gen_instance_limits.py [--check]

Sources:
- moto's copy of the EC2 DescribeInstanceTypes answers (the pinned moto in requirements.txt), for every type it has;
- SUPPLEMENT below, for the 22 types of amazon-eks-ami's max-pods tables (the AL2 ``eni-max-pods.txt`` and
  nodeadm's ``instance-info.jsonl``) that moto does not describe. Their ENIs and IPv4 addresses per ENI are the
  ones those tables imply (max pods = ENIs x (IPv4 per ENI - 1) + 2; nodeadm lists the pairs for 16 of them in
  ``addInstanceTypeSupplements`` and instance-info.jsonl); vCPUs and memory are the EC2 instance-type
  specifications (docs.aws.amazon.com/ec2/latest/instancetypes/, previous generation for cr1, hs1, f1, p3).
  ``nitro`` is 0 for Xen types and for bare metal (as moto's Hypervisor field, which is empty on metal).
  bmn-sf1.metal is not a public type: its vCPUs and memory are unknown and recorded as 0.

Checked differences (see docs/bootstrap.md): i7ie.48xlarge / i7ie.metal-48xl and i8ge.48xlarge / i8ge.metal-48xl
have two network cards (moto: 8 + 7 and 12 + 12 ENIs). The table keeps the default card's ENIs, as the VPC CNI
and nodeadm's own generator (``NetworkCards[DefaultNetworkCardIndex].MaximumNetworkInterfaces``) count them:
8 x 49 + 2 = 394 and 12 x 49 + 2 = 590. amazon-eks-ami lists 737 and 1178, which are the instance-wide totals
(15 x 49 + 2, 24 x 49 + 2), i.e. pods on IP addresses of the second card.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.metadata
import json
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUTPUT = REPO / "src" / "nodeforge" / "bootstrap" / "data" / "instance_limits.json"
SOURCE = "ec2/resources/instance_types.json"
FIELDS = ["enis", "ipv4PerEni", "vcpus", "memoryMiB", "nitro"]
GIB = 1024

# Types in amazon-eks-ami's max-pods tables that moto does not describe: [enis, ipv4PerEni, vcpus, memoryMiB, nitro]
# with the max pods amazon-eks-ami lists for them (checked by the generator). Sources: see the module docstring.
SUPPLEMENT: dict[str, tuple[list[int], int]] = {
    "bmn-sf1.metal": ([15, 50, 0, 0, 0], 737),
    "c5a.metal": ([15, 50, 192, 384 * GIB, 0], 737),
    "c5ad.metal": ([15, 50, 192, 384 * GIB, 0], 737),
    "cr1.8xlarge": ([8, 30, 32, 244 * GIB, 0], 234),
    "dl1.24xlarge": ([15, 50, 96, 768 * GIB, 1], 737),
    "f1.2xlarge": ([4, 15, 8, 122 * GIB, 0], 58),
    "f1.4xlarge": ([8, 30, 16, 244 * GIB, 0], 234),
    "f1.16xlarge": ([8, 50, 64, 976 * GIB, 0], 394),
    "g4ad.xlarge": ([2, 4, 4, 16 * GIB, 1], 8),
    "g4ad.2xlarge": ([2, 4, 8, 32 * GIB, 1], 8),
    "g4ad.4xlarge": ([3, 10, 16, 64 * GIB, 1], 29),
    "g4ad.8xlarge": ([4, 15, 32, 128 * GIB, 1], 58),
    "g4ad.16xlarge": ([8, 30, 64, 256 * GIB, 1], 234),
    "hs1.8xlarge": ([8, 30, 16, 117 * GIB, 0], 234),
    "p3.2xlarge": ([4, 15, 8, 61 * GIB, 0], 58),
    "p3.8xlarge": ([8, 30, 32, 244 * GIB, 0], 234),
    "p3.16xlarge": ([8, 30, 64, 488 * GIB, 0], 234),
    "u-6tb1.metal": ([5, 30, 448, 6144 * GIB, 0], 147),
    "u-9tb1.metal": ([5, 30, 448, 9216 * GIB, 0], 147),
    "u-12tb1.metal": ([5, 30, 448, 12288 * GIB, 0], 147),
    "u-18tb1.metal": ([15, 50, 448, 18432 * GIB, 0], 737),
    "u-24tb1.metal": ([15, 50, 448, 24576 * GIB, 0], 737),
}


def load_moto_instance_types() -> dict[str, Any]:
    resources = files("moto")
    for name in (SOURCE, SOURCE + ".gz"):
        resource = resources.joinpath(name)
        if resource.is_file():
            data = resource.read_bytes()
            return json.loads(gzip.decompress(data) if name.endswith(".gz") else data)
    raise SystemExit(f"moto does not ship {SOURCE}[.gz]; install the pinned moto from requirements.txt")


def default_card_enis(network: dict[str, Any]) -> int:
    """ENIs of the default network card (what the VPC CNI uses for pods), else the instance-wide maximum."""
    default_index = network.get("DefaultNetworkCardIndex", 0)
    for card in network.get("NetworkCards", []):
        if card.get("NetworkCardIndex", 0) == default_index and card.get("MaximumNetworkInterfaces"):
            return int(card["MaximumNetworkInterfaces"])
    return int(network.get("MaximumNetworkInterfaces", 0))


def build_table(raw: dict[str, Any]) -> dict[str, list[int]]:
    table: dict[str, list[int]] = {}
    for name in sorted(raw):
        info = raw[name]
        network = info.get("NetworkInfo", {})
        enis = default_card_enis(network)
        ips = int(network.get("Ipv4AddressesPerInterface", 0))
        if enis <= 0 or ips <= 0:
            continue
        table[name] = [
            enis,
            ips,
            int(info.get("VCpuInfo", {}).get("DefaultVCpus", 0)),
            int(info.get("MemoryInfo", {}).get("SizeInMiB", 0)),
            1 if info.get("Hypervisor") == "nitro" else 0,
        ]
    for name, (row, max_pods) in SUPPLEMENT.items():
        if name in table:
            raise SystemExit(f"{name} is now in moto's data: drop it from SUPPLEMENT")
        if row[0] * (row[1] - 1) + 2 != max_pods:
            raise SystemExit(f"SUPPLEMENT {name}: {row[0]} ENIs x ({row[1]} - 1) + 2 is not {max_pods}")
        table[name] = list(row)
    return dict(sorted(table.items()))


def render() -> str:
    raw = load_moto_instance_types()
    document = {
        "source": {
            "package": "moto",
            "version": importlib.metadata.version("moto"),
            "file": f"moto/{SOURCE}.gz",
            "generator": "scripts/gen_instance_limits.py",
            "supplement": "scripts/gen_instance_limits.py SUPPLEMENT: amazon-eks-ami max-pods tables, EC2 specs",
        },
        "fields": FIELDS,
        "types": build_table(raw),
    }
    header = json.dumps({key: document[key] for key in ("source", "fields")}, separators=(",", ":"))[:-1]
    rows = ",\n".join(
        f"{json.dumps(name)}:{json.dumps(row, separators=(',', ':'))}" for name, row in document["types"].items()
    )
    return f'{header},"types":{{\n{rows}\n}}}}\n'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed table is out of date")
    args = parser.parse_args()
    text = render()
    json.loads(text)
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT.relative_to(REPO)} is out of date; run scripts/gen_instance_limits.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}: {len(json.loads(text)['types'])} instance types")
    return 0


if __name__ == "__main__":
    sys.exit(main())
