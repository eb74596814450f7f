"""Read a Packer manifest (post-processor "manifest") into catalog records, checking every field first.

A manifest holds one entry per build, appended run after run; ``last_run_uuid`` names the latest run.
amazon-* builders write ``artifact_id`` as comma-separated ``region:ami-id`` pairs (one per ami_regions copy);
the docker builder writes ``sha256:<hex>`` (or ``repository:tag`` after docker-tag), catalogued as region
"local". ``custom_data`` carries the image's contract: see docs/catalog.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nodeforge.catalog.errors import ManifestError
from nodeforge.catalog.model import (
    ACCOUNT_RE,
    AMI_RE,
    KNOWN_KEYS,
    KUBERNETES_VERSION_RE,
    LOCAL_REGION,
    OS_RE,
    REGION_RE,
    RESERVED_KEYS,
    Artifact,
    Image,
    normalise_arch,
)

AMI_BUILDERS = frozenset({"amazon-ebs", "amazon-ebssurrogate", "amazon-instance", "amazon-chroot"})
DOCKER_BUILDERS = frozenset({"docker"})
REQUIRED_KEYS = ("kubernetes_version", "os", "arch")
# custom_data spellings of other tools, read as the contract's key when that key is absent.
ALIASES = {"base_image": "source_image"}

_DOCKER_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOCKER_REF_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::\w[\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


def read_manifest(path: Path, *, defaults: Mapping[str, str] | None = None, last_run_only: bool = False) -> list[Image]:
    """Every build of the manifest at ``path`` as a catalog record; ManifestError on the first bad field.

    ``defaults`` fill custom_data keys a build lacks (e.g. os and arch for a template that does not set them);
    ``last_run_only`` keeps the builds of ``last_run_uuid`` only.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(path, "", "no such file") from None
    except IsADirectoryError:
        raise ManifestError(path, "", "is a directory, not a manifest file") from None
    except UnicodeDecodeError:
        raise ManifestError(path, "", "not UTF-8 text") from None
    except OSError as exc:
        raise ManifestError(path, "", f"cannot read: {exc.strerror}") from None
    return parse_manifest(text, source=str(path), defaults=defaults, last_run_only=last_run_only)


def parse_manifest(
    text: str, *, source: str, defaults: Mapping[str, str] | None = None, last_run_only: bool = False
) -> list[Image]:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(source, "", f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(document, dict):
        raise ManifestError(source, "", "expected a JSON object with a 'builds' list")
    builds = document.get("builds")
    if builds is None:
        raise ManifestError(source, "builds", "missing: not a Packer manifest")
    if not isinstance(builds, list):
        raise ManifestError(source, "builds", f"must be a list, got {_kind(builds)}")
    if not builds:
        raise ManifestError(source, "builds", "is empty: no build to ingest")
    last_run = document.get("last_run_uuid")
    if last_run is not None and not isinstance(last_run, str):
        raise ManifestError(source, "last_run_uuid", f"must be a string, got {_kind(last_run)}")

    images: list[Image] = []
    runs: list[str] = []
    for index, build in enumerate(builds):
        image, run = _parse_build(build, f"builds[{index}]", source, defaults or {})
        images.append(image)
        runs.append(run)
    if last_run and last_run not in runs:
        raise ManifestError(source, "last_run_uuid", f"{last_run!r} matches no build's packer_run_uuid")
    _check_unique(images, source)
    if last_run_only and last_run:
        images = [image for image, run in zip(images, runs, strict=True) if run == last_run]
    return _dedupe(images)


def _parse_build(build: Any, where: str, source: str, defaults: Mapping[str, str]) -> tuple[Image, str]:
    if not isinstance(build, dict):
        raise ManifestError(source, where, f"must be an object, got {_kind(build)}")
    name = _string(build, "name", where, source)
    builder_type = _string(build, "builder_type", where, source)
    run_uuid = _string(build, "packer_run_uuid", where, source)
    artifact_id = _string(build, "artifact_id", where, source)
    build_time = build.get("build_time")
    if build_time is None:
        raise ManifestError(source, f"{where}.build_time", "missing")
    if isinstance(build_time, bool) or not isinstance(build_time, int) or build_time < 0:
        raise ManifestError(source, f"{where}.build_time", f"must be Unix seconds (an integer), got {build_time!r}")

    data = _custom_data(build.get("custom_data"), f"{where}.custom_data", source, defaults)
    cd = f"{where}.custom_data"
    for key in REQUIRED_KEYS:
        if not data.get(key):
            raise ManifestError(source, f"{cd}.{key}", "missing (required by the catalog's custom_data contract)")
    kubernetes_version = data["kubernetes_version"].strip()
    if not KUBERNETES_VERSION_RE.match(kubernetes_version):
        raise ManifestError(
            source, f"{cd}.kubernetes_version", f"{kubernetes_version!r} is not a Kubernetes minor version like 1.31"
        )
    os_family = data["os"].strip().lower()
    if not OS_RE.match(os_family):
        raise ManifestError(source, f"{cd}.os", f"{data['os']!r} is not an OS name like al2023, al2 or debian12")
    arch = normalise_arch(data["arch"])
    if arch is None:
        raise ManifestError(
            source, f"{cd}.arch", f"unknown arch {data['arch']!r} (x86_64 or arm64; amd64 and aarch64 accepted)"
        )
    account_id = data.get("account_id") or None
    if account_id is not None and not ACCOUNT_RE.match(account_id):
        raise ManifestError(source, f"{cd}.account_id", f"{account_id!r} is not a 12-digit AWS account id")

    if builder_type in AMI_BUILDERS:
        artifacts = _ami_artifacts(artifact_id, f"{where}.artifact_id", source, account_id)
    elif builder_type in DOCKER_BUILDERS:
        artifacts = (_docker_artifact(artifact_id, f"{where}.artifact_id", source),)
    else:
        supported = ", ".join(sorted(AMI_BUILDERS | DOCKER_BUILDERS))
        raise ManifestError(source, f"{where}.builder_type", f"unsupported builder {builder_type!r} ({supported})")

    default_name = f"{name}-{kubernetes_version}-{os_family}-{arch}-{build_time}"
    if builder_type in DOCKER_BUILDERS and not artifact_id.startswith("sha256:"):
        default_name = artifact_id
    extra = {key: value for key, value in data.items() if key not in KNOWN_KEYS}
    image = Image(
        build_key=f"packer:{run_uuid}:{name}",
        name=data.get("image_name") or default_name,
        builder_type=builder_type,
        kubernetes_version=kubernetes_version,
        os=os_family,
        arch=arch,
        build_time=build_time,
        artifacts=artifacts,
        os_version=data.get("os_version") or None,
        kubelet_version=data.get("kubelet_version") or None,
        containerd_version=data.get("containerd_version") or None,
        runc_version=data.get("runc_version") or None,
        kernel_version=data.get("kernel_version") or None,
        source_image=data.get("source_image") or None,
        git_commit=data.get("git_commit") or None,
        template=data.get("template") or None,
        build_id=data.get("build_id") or None,
        extra=extra,
        origin=source,
    )
    return image, run_uuid


def _custom_data(raw: Any, where: str, source: str, defaults: Mapping[str, str]) -> dict[str, str]:
    if raw is None:
        if not defaults:
            raise ManifestError(source, where, "missing: needs kubernetes_version, os and arch")
        raw = {}
    if not isinstance(raw, dict):
        raise ManifestError(source, where, f"must be an object, got {_kind(raw)}")
    data: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ManifestError(source, f"{where}.{key}", f"must be a string (as Packer writes it), got {_kind(value)}")
        if key in RESERVED_KEYS:
            raise ManifestError(source, f"{where}.{key}", "is reserved for the catalog's own tags; rename it")
        data[key] = value
    for alias, key in ALIASES.items():
        if alias in data and key not in data:
            data[key] = data.pop(alias)
    for key, value in defaults.items():
        data.setdefault(key, value)
    return data


def _ami_artifacts(value: str, where: str, source: str, account_id: str | None) -> tuple[Artifact, ...]:
    artifacts: list[Artifact] = []
    for part in value.split(","):
        pair = part.strip()
        if not pair:
            raise ManifestError(source, where, f"{value!r} has an empty entry (expected region:ami-id[,region:ami-id])")
        region, sep, ami = pair.partition(":")
        if not sep:
            raise ManifestError(source, where, f"{pair!r} is not region:ami-id")
        if not ami:
            raise ManifestError(source, where, f"{pair!r} has no AMI id after the region")
        if not REGION_RE.match(region):
            raise ManifestError(source, where, f"{region!r} in {pair!r} is not an AWS region like us-east-1")
        if not AMI_RE.match(ami):
            raise ManifestError(source, where, f"{ami!r} in {pair!r} is not an AMI id like ami-0abc12345678def90")
        if any(item.region == region for item in artifacts):
            raise ManifestError(source, where, f"region {region} appears twice")
        artifacts.append(Artifact(region=region, artifact_id=ami, account_id=account_id))
    return tuple(artifacts)


def _docker_artifact(value: str, where: str, source: str) -> Artifact:
    value = value.strip()
    if value.startswith("sha256:"):
        if not _DOCKER_DIGEST_RE.match(value):
            raise ManifestError(source, where, f"{value!r} is not sha256:<64 hex digits>")
    elif not _DOCKER_REF_RE.match(value):
        raise ManifestError(source, where, f"{value!r} is neither sha256:<hex> nor a Docker image reference")
    return Artifact(region=LOCAL_REGION, artifact_id=value)


def _check_unique(images: list[Image], source: str) -> None:
    """The same build twice must say the same thing; an AMI may belong to one build only."""
    by_key: dict[str, tuple[int, Image]] = {}
    by_artifact: dict[tuple[str, str], int] = {}
    for index, image in enumerate(images):
        seen = by_key.get(image.build_key)
        if seen is not None:
            if (seen[1].digest, seen[1].artifacts) != (image.digest, image.artifacts):
                raise ManifestError(
                    source, f"builds[{index}]", f"same packer_run_uuid and name as builds[{seen[0]}], different content"
                )
            continue
        by_key[image.build_key] = (index, image)
        for artifact in image.artifacts:
            other = by_artifact.setdefault((artifact.region, artifact.artifact_id), index)
            if other != index:
                raise ManifestError(
                    source,
                    f"builds[{index}].artifact_id",
                    f"{artifact.region}:{artifact.artifact_id} is also the artifact of builds[{other}]",
                )


def _dedupe(images: list[Image]) -> list[Image]:
    unique: dict[str, Image] = {}
    for image in images:
        unique.setdefault(image.build_key, image)
    return list(unique.values())


def _string(build: dict[str, Any], key: str, where: str, source: str) -> str:
    value = build.get(key)
    if value is None:
        raise ManifestError(source, f"{where}.{key}", "missing")
    if not isinstance(value, str) or not value.strip():
        raise ManifestError(source, f"{where}.{key}", f"must be a non-empty string, got {value!r}")
    return value.strip()


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
