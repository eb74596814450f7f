"""Generate src/nodeforge/bootstrap/data/instance_limits.json from the EC2 instance-type data moto ships.

The table gives, per instance type, what max-pods and kube-reserved need at boot (the node has no AWS SDK to
call DescribeInstanceTypes): ENIs on the default network card, IPv4 addresses per ENI, vCPUs, memory and
whether the type is Nitro (prefix delegation). Run: .venv/bin/python scripts/gen_instance_limits.py [--check]
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
    return table


def render() -> str:
    raw = load_moto_instance_types()
    document = {
        "source": {
            "package": "moto",
            "version": importlib.metadata.version("moto"),
            "file": f"moto/{SOURCE}.gz",
            "generator": "scripts/gen_instance_limits.py",
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
