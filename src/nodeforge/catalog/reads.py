"""The catalog's read commands (list, latest, show, diff, history, export) without typer, rich or boto3.

Both front ends call these: the typer app (``nodeforge.catalog.cli``) and the fast dispatcher
(``nodeforge.catalog.fast``) that ``nodeforge catalog <read command>`` goes through, so a read starts in a few
tens of milliseconds and both print the same thing. Option checks raise InputError naming the option.
"""

from __future__ import annotations

from nodeforge.catalog import render
from nodeforge.catalog.errors import InputError, NotFoundError
from nodeforge.catalog.model import (
    KUBERNETES_VERSION_RE,
    LOCAL_REGION,
    STATUSES,
    Image,
    component_diff,
    iso_from_epoch,
    normalise_arch,
)
from nodeforge.catalog.regions import check_region
from nodeforge.catalog.store import Catalog, ImageFilter

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing/pathlib at run time: read commands start fast
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

READ_COMMANDS = ("list", "latest", "show", "diff", "history", "export")


# -- option checks -----------------------------------------------------------------------------------------


def version_option(value: str | None, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InputError("--kubernetes-version is required (e.g. 1.31)")
        return None
    if not KUBERNETES_VERSION_RE.match(value):
        raise InputError(f"--kubernetes-version {value!r}: give a minor version like 1.31")
    return value


def arch_option(value: str | None) -> str | None:
    if value is None:
        return None
    arch = normalise_arch(value)
    if arch is None:
        raise InputError(f"--arch {value!r}: use x86_64 or arm64 (amd64, aarch64 accepted)")
    return arch


def os_option(value: str | None, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise InputError("--os is required (e.g. al2023)")
        return None
    return value.strip().lower()


def region_option(value: str | None) -> str | None:
    """An AWS region botocore knows, or 'local' (Docker images)."""
    if value is None:
        return None
    return check_region(value, allow_local=True)


def summary(image: Image) -> dict[str, Any]:
    return {
        "name": image.name,
        "kubernetes_version": image.kubernetes_version,
        "os": image.os,
        "arch": image.arch,
        "channel": image.channel,
        "status": image.status,
        "build_time": iso_from_epoch(image.build_time),
        "digest": image.digest,
    }


# -- commands ----------------------------------------------------------------------------------------------


def list_images(
    *,
    kubernetes_version: str | None = None,
    os: str | None = None,
    arch: str | None = None,
    region: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    limit: int | None = None,
    db: Path | None = None,
    json_output: bool = False,
) -> None:
    if status is not None and status not in STATUSES:
        raise InputError(f"--status {status!r}: use one of {', '.join(STATUSES)}")
    where = ImageFilter(
        version_option(kubernetes_version),
        os_option(os),
        arch_option(arch),
        region_option(region),
        channel,
        status,
        limit,
    )
    with Catalog.open(db, create=False) as catalog:
        images = catalog.list(where)
    if json_output:
        render.emit_json([image.to_dict() for image in images])
        return
    render.emit(render.images_table(images, title=f"{len(images)} image(s)"))


def latest(
    *,
    kubernetes_version: str | None,
    os: str | None,
    arch: str = "x86_64",
    region: str | None,
    channel: str = "stable",
    db: Path | None = None,
    json_output: bool = False,
) -> None:
    version = version_option(kubernetes_version, required=True)
    os_family = os_option(os, required=True)
    if region is None:
        raise InputError("--region is required (e.g. us-east-1)")
    region_option(region)
    arch_name = arch_option(arch)
    assert version and os_family and arch_name
    with Catalog.open(db, create=False) as catalog:
        found = catalog.latest(kubernetes_version=version, os=os_family, arch=arch_name, region=region, channel=channel)
    if found is None:
        raise NotFoundError(f"no usable image for kubernetes {version} {os_family} {arch_name} in {region}, {channel}")
    image, artifact = found
    if json_output:
        render.emit_json({"image_id": artifact.artifact_id, "region": region, "catalog_id": image.id, **summary(image)})
        return
    built = iso_from_epoch(image.build_time)
    render.emit(f"{artifact.artifact_id}  {image.name}  ({image.id}, {image.channel}, built {built})")


def show(ref: str, *, db: Path | None = None, json_output: bool = False) -> None:
    with Catalog.open(db, create=False) as catalog:
        image = catalog.resolve(ref)
    if json_output:
        render.emit_json(image.to_dict())
        return
    render.emit(render.image_tables(image))


def diff(a: str, b: str, *, all_: bool = False, db: Path | None = None, json_output: bool = False) -> None:
    with Catalog.open(db, create=False) as catalog:
        left, right = catalog.resolve(a), catalog.resolve(b)
    rows = component_diff(left, right)
    changed = [row for row in rows if row[1] != row[2]]
    if json_output:
        render.emit_json(
            {
                "a": left.id,
                "b": right.id,
                "changed": {key: {"a": av, "b": bv} for key, av, bv in changed},
                "same": {key: av for key, av, bv in rows if av == bv},
            }
        )
        return
    if not changed and not all_:
        render.emit(f"{left.id} and {right.id} have the same component manifest ({left.digest})")
        return
    render.emit(render.diff_table(left, right, rows if all_ else changed))


def history(
    ref: str | None = None, *, limit: int | None = None, db: Path | None = None, json_output: bool = False
) -> None:
    with Catalog.open(db, create=False) as catalog:
        image_id = catalog.resolve(ref).id if ref else None
        events = catalog.history(image_id, limit)
    if json_output:
        render.emit_json([event.to_dict() for event in events])
        return
    render.emit(render.events_table(events))


def export(
    target: str,
    ref: str | None = None,
    *,
    kubernetes_version: str | None = None,
    os: str | None = None,
    arch: str | None = None,
    channel: str = "stable",
    region: Sequence[str] | None = None,
    by: str = "id",
    name: str | None = None,
    managed: bool = True,
    cluster: str | None = None,
    ami_family: str | None = None,
    db: Path | None = None,
    json_output: bool = False,
) -> None:
    from nodeforge.catalog import export as exporter

    if target not in ("karpenter", "eksctl"):
        raise InputError(f"export target {target!r}: use karpenter or eksctl")
    regions = [r for r in (region or []) if region_option(r)]
    with Catalog.open(db, create=False) as catalog:
        if ref:
            selection = exporter.select_image(catalog.resolve(ref), regions)
        else:
            version = version_option(kubernetes_version, required=True)
            os_family = os_option(os, required=True)
            assert version and os_family
            selection = exporter.select_latest(
                catalog,
                kubernetes_version=version,
                os=os_family,
                channel=channel,
                arch=arch_option(arch),
                regions=regions,
            )
    if target == "karpenter":
        documents = exporter.karpenter(selection, by=by, name=name)
    else:
        documents = exporter.eksctl(selection, managed=managed, name=name, cluster=cluster, ami_family=ami_family)
    if json_output:
        render.emit_json([{"note": note, "document": document} for note, document in documents])
        return
    render.emit(exporter.to_yaml(documents))


def catalog_regions(catalog: Catalog) -> list[str]:
    rows = catalog.conn.execute(
        "SELECT DISTINCT region FROM artifacts WHERE region != ? ORDER BY region", (LOCAL_REGION,)
    )
    return [row[0] for row in rows]
