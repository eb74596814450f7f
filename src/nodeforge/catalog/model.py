"""The catalog record: one image build, its component manifest, its copies per region and its lifecycle."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cached_property

from nodeforge.catalog.record import Record, factory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Components a record names explicitly (custom_data keys of the Packer manifest); other keys are extras.
CORE_COMPONENTS = ("kubernetes_version", "os", "os_version", "arch")
VERSION_COMPONENTS = ("kubelet_version", "containerd_version", "runc_version", "kernel_version")
PROVENANCE = ("source_image", "git_commit", "template")
# Identify a build or where it lives, not what is in it: kept on the record, not hashed into the digest.
IDENTITY = ("build_id", "image_name", "account_id")
KNOWN_KEYS = (*CORE_COMPONENTS, *VERSION_COMPONENTS, *PROVENANCE, *IDENTITY)
# Names the catalog's own EC2 tags use (nodeforge:<name>); custom_data may not reuse them.
RESERVED_KEYS = ("catalog_id", "build_key", "channel", "status", "digest", "deprecate_at", "build_time", "name")

ARCH_ALIASES = {"x86_64": "x86_64", "amd64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
ARCHES = ("x86_64", "arm64")
STATUSES = ("active", "deprecated", "retired")
ARTIFACT_STATES = ("available", "retired", "missing")
CHANNEL_LADDER = ("candidate", "stable")
DEFAULT_CHANNEL = CHANNEL_LADDER[0]
PROTECTED_CHANNELS = frozenset({"stable"})
LOCAL_REGION = "local"

KUBERNETES_VERSION_RE = re.compile(r"^1\.\d{1,3}$")
OS_RE = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
CHANNEL_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
REGION_RE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
AMI_RE = re.compile(r"^ami-[0-9a-f]{8,17}$")
ACCOUNT_RE = re.compile(r"^\d{12}$")
CATALOG_ID_RE = re.compile(r"^nf-[0-9a-f]{12}$")


def normalise_arch(value: str) -> str | None:
    """x86_64 or arm64 for any accepted spelling (amd64, aarch64), None for an unknown one."""
    return ARCH_ALIASES.get(value.strip().lower())


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_from_epoch(seconds: int) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


def catalog_id_for(build_key: str) -> str:
    import hashlib

    return "nf-" + hashlib.sha256(build_key.encode()).hexdigest()[:12]


class Artifact(Record):
    """Where one build lives: an AMI in a region (or a Docker image, region "local")."""

    region: str
    artifact_id: str
    account_id: str | None = None
    state: str = "available"

    def to_dict(self) -> dict[str, Any]:
        return {"region": self.region, "image_id": self.artifact_id, "account_id": self.account_id, "state": self.state}


class Image(Record):
    """A catalog record. Built from a manifest build or from the tags of a discovered AMI."""

    build_key: str
    name: str
    builder_type: str
    kubernetes_version: str
    os: str
    arch: str
    build_time: int
    artifacts: tuple[Artifact, ...]
    os_version: str | None = None
    kubelet_version: str | None = None
    containerd_version: str | None = None
    runc_version: str | None = None
    kernel_version: str | None = None
    source_image: str | None = None
    git_commit: str | None = None
    template: str | None = None
    build_id: str | None = None
    extra: dict[str, str] = factory(dict)
    origin: str = ""
    id: str = ""
    channel: str = DEFAULT_CHANNEL
    status: str = "active"
    deprecate_at: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", catalog_id_for(self.build_key))

    def components(self) -> dict[str, str]:
        """The component manifest: what is in the image (no ids, no regions), extras included."""
        named = {key: getattr(self, key) for key in (*CORE_COMPONENTS, *VERSION_COMPONENTS, *PROVENANCE)}
        return {key: value for key, value in {**named, **self.extra}.items() if value is not None}

    @cached_property
    def digest(self) -> str:
        """Stable hash of the normalised component manifest: equal content, equal digest."""
        import hashlib

        canonical = json.dumps(self.components(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    def artifact(self, region: str) -> Artifact | None:
        return next((item for item in self.artifacts if item.region == region), None)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(item.region for item in self.artifacts)

    def with_artifacts(self, artifacts: tuple[Artifact, ...]) -> Image:
        return self.replace(artifacts=artifacts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kubernetes_version": self.kubernetes_version,
            "os": self.os,
            "os_version": self.os_version,
            "arch": self.arch,
            "channel": self.channel,
            "status": self.status,
            "deprecate_at": self.deprecate_at,
            "build_time": iso_from_epoch(self.build_time),
            "digest": self.digest,
            "builder_type": self.builder_type,
            "build_key": self.build_key,
            "build_id": self.build_id,
            "origin": self.origin,
            "components": self.components(),
            "regions": {item.region: item.to_dict() for item in self.artifacts},
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class Event(Record):
    """One change in the catalog's history."""

    seq: int
    at: str
    image_id: str | None
    region: str | None
    action: str
    detail: dict[str, Any]
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "image_id": self.image_id,
            "region": self.region,
            "action": self.action,
            "detail": self.detail,
            "actor": self.actor,
        }


def component_diff(a: Image, b: Image) -> list[tuple[str, str | None, str | None]]:
    """(component, value in a, value in b) for every component either image has, in a stable order."""
    left, right = a.components(), b.components()
    order = [*CORE_COMPONENTS, *VERSION_COMPONENTS, *PROVENANCE]
    keys = [k for k in order if k in left or k in right]
    keys += sorted((set(left) | set(right)) - set(order))
    return [(key, left.get(key), right.get(key)) for key in keys]
