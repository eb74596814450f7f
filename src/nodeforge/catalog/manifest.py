"""Read a Packer manifest (post-processor "manifest") into catalog records, checking every field first.

A manifest holds one entry per build, appended run after run; ``last_run_uuid`` names the latest run.
amazon-* builders write ``artifact_id`` as comma-separated ``region:ami-id`` pairs (one per ami_regions copy);
the docker builder writes ``sha256:<hex>`` (or ``repository:tag`` after docker-tag), catalogued as region
"local". ``custom_data`` carries the image's contract: see docs/catalog.md.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nodeforge.catalog.errors import InputError, ManifestError
from nodeforge.catalog.facts import FACT_KEYS
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
from nodeforge.catalog.record import Record
from nodeforge.catalog.regions import problem as region_problem

AMI_BUILDERS = frozenset({"amazon-ebs", "amazon-ebssurrogate", "amazon-instance", "amazon-chroot"})
DOCKER_BUILDERS = frozenset({"docker"})
REQUIRED_KEYS = ("kubernetes_version", "os", "arch")
# custom_data spellings of other tools, read as the contract's key when that key is absent.
ALIASES = {"base_image": "source_image", "source_ami_id": "source_image", "ami_name": "image_name"}
# custom_data keys that collide with catalog fields are kept as extra components under this prefix.
NAMESPACE = "custom."
# What a --rule may set: the contract's keys, the image name and the build time.
RULE_KEYS = FACT_KEYS

FactsProvider = Callable[[Sequence[tuple[str, str]]], dict[tuple[str, str], dict[str, str]]]


class Rule(Record):
    """``--rule``: facts for the builds whose Packer build name (on="build") or AMI name (on="ami") match."""

    spec: str
    on: str
    pattern: str
    values: dict[str, str]


_DOCKER_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_DOCKER_REF_RE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::\w[\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?$"
)


def read_manifest(
    path: Path,
    *,
    rules: Sequence[Rule] = (),
    facts: FactsProvider | None = None,
    last_run_only: bool = False,
    notes: list[str] | None = None,
) -> list[Image]:
    """Every catalogued build of the manifest at ``path``; ManifestError on the first bad field.

    ``facts`` looks up what EC2 says about AMIs (``facts.ec2_facts``); ``rules`` fill what custom_data and EC2
    leave out, build by build; ``notes`` collects what was skipped or filled, one line each.
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
    return parse_manifest(text, source=str(path), rules=rules, facts=facts, last_run_only=last_run_only, notes=notes)


def parse_rule(spec: str) -> Rule:
    """``build=GLOB:KEY=VALUE[,KEY=VALUE...]`` or ``ami=GLOB:...`` (Packer build name or AMI name, fnmatch glob)."""
    head, sep, body = spec.partition(":")
    what, eq, pattern = head.partition("=")
    what = what.strip()
    if not sep or not eq or what not in ("build", "ami") or not pattern.strip():
        raise InputError(
            f"--rule {spec!r}: expected build=GLOB:KEY=VALUE[,KEY=VALUE] or ami=GLOB:KEY=VALUE[,...] "
            "(e.g. 'ami=eks-node-al2023-arm64-1.31-*:os=al2023,arch=arm64')"
        )
    values: dict[str, str] = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key or not value:
            raise InputError(f"--rule {spec!r}: {item!r} is not KEY=VALUE")
        if key not in RULE_KEYS:
            raise InputError(f"--rule {spec!r}: {key!r} is not a field a rule can set ({', '.join(RULE_KEYS)})")
        why = value_problem(key, value)
        if why:
            raise InputError(f"--rule {spec!r}: {key}: {why}")
        values[key] = value
    return Rule(spec=spec, on=what, pattern=pattern.strip(), values=values)


def parse_manifest(
    text: str,
    *,
    source: str,
    rules: Sequence[Rule] = (),
    facts: FactsProvider | None = None,
    last_run_only: bool = False,
    notes: list[str] | None = None,
) -> list[Image]:
    notes = notes if notes is not None else []
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

    parsed: list[_Build] = []
    runs: set[str] = set()
    for index, build in enumerate(builds):
        item = _parse_build(build, f"builds[{index}]", source, notes)
        runs.add(item.run_uuid)
        if item.skipped:
            continue
        if last_run_only and last_run and item.run_uuid != last_run:
            continue
        parsed.append(item)
    if last_run and last_run not in runs:
        raise ManifestError(source, "last_run_uuid", f"{last_run!r} matches no build's packer_run_uuid")

    wanting = [item for item in parsed if item.lacks() and item.builder_type in AMI_BUILDERS]
    described: dict[tuple[str, str], dict[str, str]] = {}
    if facts is not None and wanting:
        described = facts([(a.region, a.artifact_id) for item in wanting for a in item.artifacts])
    used = [False] * len(rules)
    images = [_complete(item, source, rules, used, described, facts is not None, notes) for item in parsed]
    for rule, hit in zip(rules, used, strict=True):
        if not hit:
            notes.append(f"{source}: --rule {rule.spec!r} matched no build that lacked what it sets")
    _check_unique(images, source)
    return _dedupe(images)


class _Build:
    """One manifest build, read but not yet completed with facts from EC2 or rules."""

    def __init__(
        self,
        where: str,
        name: str,
        builder_type: str,
        run_uuid: str,
        artifact_id: str,
        build_time: int | None,
        data: dict[str, str],
        artifacts: tuple[Artifact, ...],
        skipped: bool = False,
    ) -> None:
        self.where, self.name, self.builder_type, self.run_uuid = where, name, builder_type, run_uuid
        self.artifact_id, self.build_time, self.data, self.artifacts = artifact_id, build_time, data, artifacts
        self.skipped = skipped

    def lacks(self) -> list[str]:
        missing = [key for key in REQUIRED_KEYS if not self.data.get(key)]
        if self.build_time is None:
            missing.append("build_time")
        return missing


def _parse_build(build: Any, where: str, source: str, notes: list[str]) -> _Build:
    if not isinstance(build, dict):
        raise ManifestError(source, where, f"must be an object, got {_kind(build)}")
    name = _string(build, "name", where, source)
    builder_type = _string(build, "builder_type", where, source)
    run_uuid = _string(build, "packer_run_uuid", where, source)
    artifact_id = _string(build, "artifact_id", where, source)
    build_time = build.get("build_time")  # absent when the post-processor has strip_time
    if build_time is not None and (isinstance(build_time, bool) or not isinstance(build_time, int) or build_time < 0):
        raise ManifestError(source, f"{where}.build_time", f"must be Unix seconds (an integer), got {build_time!r}")
    if builder_type not in AMI_BUILDERS | DOCKER_BUILDERS:
        supported = ", ".join(sorted(AMI_BUILDERS | DOCKER_BUILDERS))
        notes.append(f"{source}: {where} ({name}, {builder_type}): skipped: the catalog records {supported} builds")
        return _Build(where, name, builder_type, run_uuid, artifact_id, build_time, {}, (), skipped=True)
    data = _custom_data(build.get("custom_data"), f"{where}.custom_data", source, notes)
    account_id = data.get("account_id") or None
    if account_id is not None and not ACCOUNT_RE.match(account_id):
        raise ManifestError(
            source, f"{where}.custom_data.account_id", f"{account_id!r} is not a 12-digit AWS account id"
        )
    if builder_type in AMI_BUILDERS:
        artifacts = _ami_artifacts(artifact_id, f"{where}.artifact_id", source, account_id)
    else:
        artifacts = (_docker_artifact(artifact_id, f"{where}.artifact_id", source),)
    return _Build(where, name, builder_type, run_uuid, artifact_id, build_time, data, artifacts)


def _complete(
    item: _Build,
    source: str,
    rules: Sequence[Rule],
    used: list[bool],
    described: dict[tuple[str, str], dict[str, str]],
    asked_ec2: bool,
    notes: list[str],
) -> Image:
    data, build_time = dict(item.data), item.build_time
    label = f"{source}: {item.where} ({item.name})"
    origins: dict[str, str] = {}  # key -> where a value the manifest lacked came from (EC2; rules are checked early)
    lacking = item.lacks()
    if lacking:
        ec2 = next(
            (
                (a, described[(a.region, a.artifact_id)])
                for a in item.artifacts
                if (a.region, a.artifact_id) in described
            ),
            None,
        )
        if ec2 is not None:
            artifact, found = ec2
            filled = _fill(data, found)
            if build_time is None and found.get("build_time", "").isdigit():
                build_time = int(found["build_time"])
                filled.append("build_time")
            if filled:
                notes.append(f"{label}: {', '.join(filled)} from EC2 {artifact.region}:{artifact.artifact_id}")
                origins.update(dict.fromkeys(filled, f"EC2 {artifact.region}:{artifact.artifact_id}"))
        ami_name = data.get("image_name", "")
        for index, rule in enumerate(rules):
            subject = item.name if rule.on == "build" else ami_name
            if not subject or not fnmatch.fnmatchcase(subject, rule.pattern):
                continue
            filled = _fill(data, rule.values)
            if build_time is None and rule.values.get("build_time", "").isdigit():
                build_time = int(rule.values["build_time"])
                filled.append("build_time")
            if filled:
                used[index] = True
                notes.append(f"{label}: {', '.join(filled)} from --rule {rule.spec!r}")
    for key in REQUIRED_KEYS:
        if not data.get(key):
            raise ManifestError(source, f"{item.where}.custom_data.{key}", _missing(item, key, asked_ec2, described))
    if build_time is None:
        raise ManifestError(source, f"{item.where}.build_time", _missing(item, "build_time", asked_ec2, described))
    return _image(item, data, build_time, source, origins)


def _fill(data: dict[str, str], values: Mapping[str, str]) -> list[str]:
    filled = []
    for key in FACT_KEYS:  # a stable order for the notes
        value = values.get(key)
        if key != "build_time" and value and not data.get(key):
            data[key] = value
            filled.append(key)
    return filled


def _missing(item: _Build, key: str, asked_ec2: bool, described: dict[tuple[str, str], dict[str, str]]) -> str:
    """Why ``key`` is missing, and every way to supply it."""
    amis = ", ".join(f"{a.region}:{a.artifact_id}" for a in item.artifacts[:3])
    if key == "build_time":
        head = "missing (the manifest post-processor ran with strip_time?)"
        value = "UNIX_SECONDS"
    else:
        head = "missing (not in custom_data)"
        value = {"kubernetes_version": "1.31", "os": "al2023", "arch": "arm64"}.get(key, "VALUE")
    fixes = ["add it to the template's manifest custom_data" if key != "build_time" else "drop strip_time"]
    if item.builder_type in AMI_BUILDERS:
        if not asked_ec2:
            fixes.append("let EC2 DescribeImages supply it (--ec2, with AWS credentials or --endpoint-url)")
        elif not any((a.region, a.artifact_id) in described for a in item.artifacts):
            head += f"; EC2 DescribeImages found none of {amis}"
        else:
            head += f"; EC2 has no {key} for {amis} (tags, name or CreationDate)"
        fixes.append(f"--rule 'ami=AMI_NAME_GLOB:{key}={value}'")
    fixes.append(f"--rule 'build={item.name}:{key}={value}'")
    return f"{head}: {'; or '.join(fixes)}"


def value_problem(key: str, value: str) -> str | None:
    """Why ``value`` cannot be the image's ``key`` (the checked facts: version, OS, arch, build time), or None."""
    if key == "kubernetes_version" and not KUBERNETES_VERSION_RE.match(value.strip()):
        return f"{value!r} is not a Kubernetes minor version like 1.31"
    if key == "os" and not OS_RE.match(value.strip().lower()):
        return f"{value!r} is not an OS name like al2023, al2 or debian12"
    if key == "arch" and normalise_arch(value) is None:
        return f"unknown arch {value!r} (x86_64 or arm64; amd64 and aarch64 accepted)"
    if key == "build_time" and not value.strip().isdigit():
        return f"{value!r} is not Unix seconds (an integer)"
    return None


def _image(item: _Build, data: dict[str, str], build_time: int, source: str, origins: Mapping[str, str]) -> Image:
    cd = f"{item.where}.custom_data"
    for key in REQUIRED_KEYS:
        why = value_problem(key, data[key])
        if why is None:
            continue
        origin = origins.get(key)
        if origin is None:
            fix = "fix it in the Packer template's custom_data (a --rule never overrides the manifest)"
        else:
            fix = (
                f"the value came from {origin} (its tags or name): set custom_data.{key} in the template (it wins "
                f"over EC2), or pass --no-ec2 with --rule 'build={item.name}:{key}=VALUE'"
            )
        raise ManifestError(source, f"{cd}.{key}", f"{why}; {fix}")
    kubernetes_version = data["kubernetes_version"].strip()
    os_family = data["os"].strip().lower()
    arch = normalise_arch(data["arch"])
    assert arch is not None  # checked above
    default_name = f"{item.name}-{kubernetes_version}-{os_family}-{arch}-{build_time}"
    if item.builder_type in DOCKER_BUILDERS and not item.artifact_id.startswith("sha256:"):
        default_name = item.artifact_id
    extra = {key: value for key, value in data.items() if key not in KNOWN_KEYS}
    return Image(
        build_key=f"packer:{item.run_uuid}:{item.name}",
        name=data.get("image_name") or default_name,
        builder_type=item.builder_type,
        kubernetes_version=kubernetes_version,
        os=os_family,
        arch=arch,
        build_time=build_time,
        artifacts=item.artifacts,
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


def _custom_data(raw: Any, where: str, source: str, notes: list[str]) -> dict[str, str]:
    if raw is None:
        return {}  # a template without custom_data: facts come from EC2 or rules
    if not isinstance(raw, dict):
        raise ManifestError(source, where, f"must be an object, got {_kind(raw)}")
    data: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(value, str):
            raise ManifestError(source, f"{where}.{key}", f"must be a string (as Packer writes it), got {_kind(value)}")
        if key in RESERVED_KEYS or key.startswith(NAMESPACE):
            # A catalog field of the same name: the user's value is kept, under its own namespace.
            data[NAMESPACE + key.removeprefix(NAMESPACE)] = value
            notes.append(f"{source}: {where}.{key}: kept as extra component {NAMESPACE}{key.removeprefix(NAMESPACE)}")
            continue
        data[key] = value
    for alias, key in ALIASES.items():
        if alias in data and key not in data:
            data[key] = data.pop(alias)
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
        why = region_problem(region) if REGION_RE.match(region) else f"{region!r} is not an AWS region like us-east-1"
        if why:
            raise ManifestError(source, where, f"{why} (in {pair!r})")
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
