"""The instance facts the node configuration needs, read from IMDS."""

from __future__ import annotations

from nodeforge.bootstrap.errors import ImdsError
from nodeforge.bootstrap.imds import ImdsClient
from nodeforge.bootstrap.record import dataclass, field


@dataclass
class InstanceMetadata:
    instance_id: str
    instance_type: str
    availability_zone: str
    region: str
    local_hostname: str
    node_ip: str
    mac: str = ""
    services_domain: str = "amazonaws.com"
    vpc_ipv4_cidrs: list[str] = field(default_factory=list)


def fetch(
    client: ImdsClient, *, ip_family: str, need_vpc_cidrs: bool = False, need_domain: bool = False
) -> InstanceMetadata:
    """Read instance id, type, zone, region, hostname and the node IP (IPv4, or the ENI's IPv6 for ipv6)."""
    zone = client.require("placement/availability-zone")
    region = client.get("placement/region") or zone.rstrip("abcdefghijklmnopqrstuvwxyz")
    mac = ""
    if ip_family == "ipv6" or need_vpc_cidrs:
        mac = client.require("mac")
    if ip_family == "ipv6":
        ipv6s = client.require(f"network/interfaces/macs/{mac}/ipv6s")
        node_ip = ipv6s.split()[0]
    else:
        node_ip = client.require("local-ipv4")
    instance_id = client.require("instance-id")
    hostnames = (client.get("local-hostname") or "").split()
    metadata = InstanceMetadata(
        instance_id=instance_id,
        instance_type=client.require("instance-type"),
        availability_zone=zone,
        region=region,
        local_hostname=hostnames[0] if hostnames else "",
        node_ip=node_ip,
        mac=mac,
    )
    if not metadata.local_hostname:
        raise ImdsError("IMDS has no local-hostname; it is the node name unless featureGates.InstanceIdNodeName")
    if need_vpc_cidrs:
        blocks = client.get(f"network/interfaces/macs/{mac}/vpc-ipv4-cidr-blocks") or ""
        metadata.vpc_ipv4_cidrs = blocks.split()
    if need_domain:
        metadata.services_domain = client.get("services/domain") or "amazonaws.com"
    return metadata
