"""`nodeforge catalog ...`: the image catalog on the command line (mounted by nodeforge.cli).

Every command takes ``--db`` (default $NODEFORGE_CATALOG or ~/.local/share/nodeforge/catalog.db) and
``--output table|json``. Exit codes: 0 ok, 1 failed, 2 bad input, 3 not found, 4 conflict, 5 refused.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from nodeforge.catalog import reads, render
from nodeforge.catalog.aws import AwsContext
from nodeforge.catalog.deprecation import deprecate_in_aws, parse_date
from nodeforge.catalog.discover import check_regions, discover_region
from nodeforge.catalog.errors import AwsError, CatalogError, InputError, NotFoundError
from nodeforge.catalog.manifest import read_manifest
from nodeforge.catalog.model import CHANNEL_LADDER, LOCAL_REGION, Image, iso
from nodeforge.catalog.publish import check_prefix, publish, publish_regions
from nodeforge.catalog.retire import retire, retire_targets
from nodeforge.catalog.store import Catalog

app = typer.Typer(help="BYOS image catalog: record, query, promote and retire every image built.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


class Output(StrEnum):
    table = "table"
    json = "json"


class ExportFormat(StrEnum):
    yaml = "yaml"
    json = "json"


class ExportTarget(StrEnum):
    karpenter = "karpenter"
    eksctl = "eksctl"


class SelectBy(StrEnum):
    id = "id"
    tags = "tags"


DbOpt = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="Catalog file (default $NODEFORGE_CATALOG or ~/.local/share/nodeforge/catalog.db)",
        show_default=False,
    ),
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table for people, json for scripts")]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint-url", help="AWS endpoint (moto, LocalStack); default: boto3's, incl. AWS_ENDPOINT_URL"),
]
VersionOpt = Annotated[str | None, typer.Option("--kubernetes-version", "-k", help="Kubernetes minor, e.g. 1.31")]
OsOpt = Annotated[str | None, typer.Option("--os", help="OS family, e.g. al2023")]
ArchOpt = Annotated[str | None, typer.Option("--arch", help="x86_64 or arm64 (amd64, aarch64 accepted)")]
ChannelOpt = Annotated[str, typer.Option("--channel", help="Channel, e.g. candidate or stable")]
RegionsOpt = Annotated[list[str] | None, typer.Option("--region", help="AWS region; repeat for several")]
RefArg = Annotated[str, typer.Argument(help="Catalog id (or unique prefix), AMI id, Docker reference or image name")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (kept in the history)")]


@app.callback()
def main() -> None:
    """Record, query, promote and retire every image built (Packer manifests, EC2 tags, SSM parameters)."""


def command(func: F) -> F:
    """Run a command; CatalogError becomes a message (and a JSON error document) with its exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CatalogError as exc:
            _report(exc, kwargs.get("output"))
            raise typer.Exit(exc.exit_code) from exc
        except sqlite3.Error as exc:  # e.g. still locked by another writer after the busy timeout
            failure = CatalogError(f"catalog database: {exc}")
            _report(failure, kwargs.get("output"))
            raise typer.Exit(failure.exit_code) from exc

    return wrapper  # type: ignore[return-value]


def _report(exc: CatalogError, output: object) -> None:
    if output in (Output.json, ExportFormat.json):
        render.emit_json({"error": str(exc), "kind": type(exc).__name__})
    err.print(f"[red]error:[/red] {escape(str(exc))}")


# -- option checks -----------------------------------------------------------------------------------------


_version = reads.version_option
_arch = reads.arch_option
_os = reads.os_option
_region = reads.region_option


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"{option} {item!r}: expected KEY=VALUE")
        pairs[key.strip()] = value.strip()
    return pairs


@contextmanager
def _progress(description: str, total: int) -> Iterator[Callable[[str], None]]:
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(description, total=total)

        def advance(region: str) -> None:
            progress.update(task, advance=1, description=f"{description}: {region} done")

        yield advance


# -- commands ----------------------------------------------------------------------------------------------


AWS_CONFIG_ENV = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_ROLE_ARN")


def aws_configured(endpoint_url: str | None) -> bool:
    """The AWS backend counts as configured with --endpoint-url or boto3's usual environment variables."""
    import os

    return bool(endpoint_url) or any(os.environ.get(name) for name in AWS_CONFIG_ENV)


@app.command("ingest")
@command
def ingest_cmd(
    manifests: Annotated[list[Path], typer.Argument(help="Packer manifest.json files")],
    rule: Annotated[
        list[str] | None,
        typer.Option(
            "--rule",
            help="Facts for builds that lack them: build=GLOB:KEY=VALUE[,...] (Packer build name) or "
            "ami=GLOB:KEY=VALUE[,...] (AMI name), e.g. 'ami=eks-node-al2023-arm64-1.31-*:os=al2023'; repeatable",
        ),
    ] = None,
    ec2: Annotated[
        bool | None,
        typer.Option(
            "--ec2/--no-ec2",
            help="Ask EC2 DescribeImages what builds lack (default: when AWS is configured: --endpoint-url, "
            "AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)",
            show_default=False,
        ),
    ] = None,
    default: Annotated[list[str] | None, typer.Option("--default", hidden=True)] = None,
    last_run_only: Annotated[bool, typer.Option(help="Only the builds of the manifest's last_run_uuid")] = False,
    endpoint_url: EndpointOpt = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Record every amazon-ebs / docker build of Packer manifests (other builders are skipped, with a note).
    Idempotent: a manifest ingested again adds nothing."""
    from nodeforge.catalog.manifest import parse_rule

    if default:
        pairs = _pairs(default, "--default")
        spec = ",".join(f"{k}={v}" for k, v in pairs.items())
        raise InputError(
            f"--default applied one value to every build (an x86_64 and an arm64 build cannot share one): pass "
            f"--rule 'build=NAME:{spec}' per build, or --rule 'build=*:{spec}' if every build really shares it"
        )
    rules = [parse_rule(spec) for spec in rule or []]
    facts = None
    if ec2 or (ec2 is None and aws_configured(endpoint_url)):
        from nodeforge.catalog.facts import ec2_facts

        aws = AwsContext(endpoint_url=endpoint_url)

        def facts(pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
            return ec2_facts(aws, pairs)

    images: list[Image] = []
    notes: list[str] = []
    for path in manifests:
        try:
            images.extend(read_manifest(path, rules=rules, facts=facts, last_run_only=last_run_only, notes=notes))
        except AwsError as exc:
            raise AwsError(
                f"{path}: asking EC2 what builds lack: {exc} (--no-ec2: custom_data and --rule only)"
            ) from exc
    with Catalog.open(db) as catalog:
        result = catalog.ingest(images, source=", ".join(str(p) for p in manifests))
    for note in notes:
        err.print(f"[dim]note:[/dim] {escape(note)}")
    if output is Output.json:
        document = {"manifests": [str(p) for p in manifests], "builds": len(images), **result.to_dict()}
        render.emit_json({**document, "notes": notes})
        return
    out.print(
        f"ingested {len(images)} build(s) from {len(manifests)} manifest(s): {len(result.new)} new, "
        f"{len(result.updated)} updated, {len(result.unchanged)} unchanged"
    )
    for image_id in result.new:
        out.print(f"  new {image_id}")


@app.command("list")
@command
def list_cmd(
    kubernetes_version: VersionOpt = None,
    os: OsOpt = None,
    arch: ArchOpt = None,
    region: Annotated[str | None, typer.Option("--region", help="Images with a copy in this region")] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="Channel, e.g. stable")] = None,
    status: Annotated[str | None, typer.Option("--status", help="active, deprecated or retired")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many, newest first")] = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Catalogued images, newest first, filtered."""
    reads.list_images(
        kubernetes_version=kubernetes_version,
        os=os,
        arch=arch,
        region=region,
        channel=channel,
        status=status,
        limit=limit,
        db=db,
        json_output=output is Output.json,
    )


@app.command("latest")
@command
def latest_cmd(
    kubernetes_version: VersionOpt = None,
    os: OsOpt = None,
    arch: Annotated[str, typer.Option("--arch", help="x86_64 or arm64")] = "x86_64",
    region: Annotated[str | None, typer.Option("--region", help="AWS region (or local)")] = None,
    channel: ChannelOpt = "stable",
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """The image a cluster should use now: newest usable one of (version, OS, arch, region, channel)."""
    reads.latest(
        kubernetes_version=kubernetes_version,
        os=os,
        arch=arch,
        region=region,
        channel=channel,
        db=db,
        json_output=output is Output.json,
    )


@app.command("show")
@command
def show_cmd(ref: RefArg, db: DbOpt = None, output: OutputOpt = Output.table) -> None:
    """One image with its full component manifest and regions."""
    reads.show(ref, db=db, json_output=output is Output.json)


@app.command("diff")
@command
def diff_cmd(
    a: RefArg,
    b: RefArg,
    all_: Annotated[bool, typer.Option("--all", help="Also show components that are equal")] = False,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Compare two images' component manifests (e.g. ours and AWS's, after `import-eks`)."""
    reads.diff(a, b, all_=all_, db=db, json_output=output is Output.json)


def _move(ref: str, to: str | None, reason: str, db: Path | None, output: Output, *, up: bool) -> None:
    action = "promoted" if up else "demoted"
    with Catalog.open(db, create=False) as catalog:
        image = catalog.resolve(ref)
        target = to or _next_channel(image.channel, up=up)
        before = image.channel
        moved = catalog.set_channel(image.id, target, action=action, reason=reason)
    changed = before != moved.channel
    if output is Output.json:
        render.emit_json({"catalog_id": moved.id, "from": before, "to": moved.channel, "changed": changed})
        return
    if changed:
        out.print(f"{moved.id} {action}: {before} → {moved.channel} ({escape(reason)})")
        out.print("[dim]run `nodeforge catalog publish` to update SSM parameters and AMI tags[/dim]")
    else:
        out.print(f"{moved.id} is already in {moved.channel}; nothing changed")


def _next_channel(channel: str, *, up: bool) -> str:
    if channel not in CHANNEL_LADDER:
        raise InputError(f"channel {channel!r} is not on the ladder {' → '.join(CHANNEL_LADDER)}; pass --to")
    index = CHANNEL_LADDER.index(channel) + (1 if up else -1)
    if not 0 <= index < len(CHANNEL_LADDER):
        return channel  # already at the top (promote) or bottom (demote): the documented no-op
    return CHANNEL_LADDER[index]


@app.command("promote")
@command
def promote_cmd(
    ref: RefArg,
    reason: ReasonOpt,
    to: Annotated[str | None, typer.Option("--to", help="Target channel (default: next, candidate → stable)")] = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Move an image up a channel (candidate → stable), with a reason."""
    _move(ref, to, reason, db, output, up=True)


@app.command("demote")
@command
def demote_cmd(
    ref: RefArg,
    reason: ReasonOpt,
    to: Annotated[
        str | None, typer.Option("--to", help="Target channel (default: previous, stable → candidate)")
    ] = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Move an image down a channel (stable → candidate), with a reason."""
    _move(ref, to, reason, db, output, up=False)


@app.command("deprecate")
@command
def deprecate_cmd(
    ref: RefArg,
    at: Annotated[str | None, typer.Option("--at", help="Date: YYYY-MM-DD or ISO 8601 (default now)")] = None,
    reason: ReasonOpt = "",
    catalog_only: Annotated[bool, typer.Option("--catalog-only", help="Do not tag or deprecate the AMIs")] = False,
    endpoint_url: EndpointOpt = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Deprecate an image at a date: in the catalog, as AMI tags, and with EC2 image deprecation where available."""
    when = parse_date(at)
    with Catalog.open(db, create=False) as catalog:
        image = catalog.deprecate(catalog.resolve(ref).id, iso(when), reason=reason)
        results = []
        if not catalog_only and any(a.region != LOCAL_REGION and a.state == "available" for a in image.artifacts):
            aws = AwsContext(endpoint_url=endpoint_url)
            regions = sum(1 for a in image.artifacts if a.region != LOCAL_REGION and a.state == "available")
            with _progress(f"deprecate {image.id}", regions) as advance:
                results = deprecate_in_aws(aws, image, when, on_region=advance)
            catalog.record(image.id, "deprecation-applied", {"regions": [r.to_dict() for r in results]})
    failed = [r for r in results if r.outcome == "failed"]
    if output is Output.json:
        render.emit_json(
            {"catalog_id": image.id, "deprecate_at": image.deprecate_at, "regions": [r.to_dict() for r in results]}
        )
    else:
        out.print(f"{image.id} deprecated at {image.deprecate_at}")
        if results:
            render.emit(
                render.rows_table(
                    "regions",
                    ("region", "image id", "outcome", "error"),
                    [(r.region, r.image_id, r.outcome, r.error) for r in results],
                )
            )
    for result in results:
        if result.outcome == "tagged-only":
            err.print(
                f"[yellow]warning:[/yellow] {result.region}: the endpoint does not implement EnableImageDeprecation; "
                f"{result.image_id} is deprecated in the catalog and by tags only"
            )
    if failed:
        raise typer.Exit(1)


@app.command("retire")
@command
def retire_cmd(
    ref: RefArg,
    region: RegionsOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    force: Annotated[bool, typer.Option("--force", help="Retire even an image still in the stable channel")] = False,
    reason: ReasonOpt = "retired",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be deregistered, change nothing")] = False,
    endpoint_url: EndpointOpt = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Deregister an image's AMIs and delete their snapshots, per region (asks first unless --yes)."""
    with Catalog.open(db, create=False) as catalog:
        image = catalog.resolve(ref)
        targets = retire_targets(image, region, force=force)
        if not targets:
            if output is Output.json:
                render.emit_json({"catalog_id": image.id, "status": image.status, "regions": []})
            else:
                out.print(f"{image.id} has nothing left to retire ({image.status})")
            return
        plan = ", ".join(f"{r}:{a}" for r, a in targets)
        if dry_run:
            if output is Output.json:
                render.emit_json(
                    {
                        "catalog_id": image.id,
                        "dry_run": True,
                        "regions": [{"region": r, "image_id": a} for r, a in targets],
                    }
                )
            else:
                out.print(f"would retire {image.id}: {plan}")
            return
        if not yes and not typer.confirm(f"Deregister {plan} and delete the snapshots?", default=False, err=True):
            err.print("aborted; nothing changed")
            raise typer.Exit(1)
        with _progress(f"retire {image.id}", len(targets)) as advance:
            results = retire(
                catalog,
                AwsContext(endpoint_url=endpoint_url),
                image,
                targets,
                reason=reason,
                forced=force,
                on_region=advance,
            )
        after = catalog.get(image.id)
    if output is Output.json:
        render.emit_json({"catalog_id": after.id, "status": after.status, "regions": [r.to_dict() for r in results]})
    else:
        render.emit(
            render.rows_table(
                f"retire {after.id} → {after.status}",
                ("region", "image id", "outcome", "snapshots deleted", "error"),
                [(r.region, r.image_id, r.outcome, " ".join(r.snapshots), r.error) for r in results],
            )
        )
        if any(r.outcome == "local-only" for r in results):
            err.print("[yellow]note:[/yellow] local Docker images are only marked retired; remove them with docker rmi")
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)


@app.command("history")
@command
def history_cmd(
    ref: Annotated[str | None, typer.Argument(help="Only this image (catalog id, AMI id, name)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="The last N events")] = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Every change the catalog recorded (ingest, promote, deprecate, retire, publish, ...)."""
    reads.history(ref, limit=limit, db=db, json_output=output is Output.json)


@app.command("publish")
@command
def publish_cmd(
    prefix: Annotated[str, typer.Option("--prefix", help="Parameters go under /nodeforge/<prefix>/")],
    region: RegionsOpt = None,
    tags: Annotated[bool, typer.Option("--tags/--no-tags", help="Also write the nodeforge:* tags on the AMIs")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes, make none")] = False,
    endpoint_url: EndpointOpt = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Publish each channel's latest image to SSM parameters (and AMI tags), per region."""
    prefix = check_prefix(prefix)
    with Catalog.open(db, create=False) as catalog:
        regions = publish_regions(catalog, check_regions(region) if region else None)
        if not regions:
            raise NotFoundError("no region has an available AMI to publish")
        aws = AwsContext(endpoint_url=endpoint_url)
        with _progress("publish", len(regions)) as advance:
            reports = publish(catalog, aws, prefix, regions, tags=tags, dry_run=dry_run, on_region=advance)
    if output is Output.json:
        render.emit_json({"prefix": prefix, "dry_run": dry_run, "regions": [r.to_dict() for r in reports]})
        return
    rows = [(r.region, len(r.put), len(r.deleted), r.unchanged, len(r.tagged)) for r in reports]
    title = f"publish /nodeforge/{prefix}" + (" (dry run)" if dry_run else "")
    render.emit(render.rows_table(title, ("region", "put", "deleted", "unchanged", "AMIs tagged"), rows))


@app.command("discover")
@command
def discover_cmd(
    region: RegionsOpt = None,
    owner: Annotated[list[str] | None, typer.Option("--owner", help="AMI owner (default self); repeatable")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Only AMIs with tag KEY=VALUE; repeatable")] = None,
    endpoint_url: EndpointOpt = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Find nodeforge AMIs by their EC2 tags across regions and reconcile them into the catalog."""
    tag_filters = _pairs(tag, "--tag")
    with Catalog.open(db) as catalog:
        regions = check_regions(region) if region else _catalog_regions(catalog)
        if not regions:
            raise InputError("--region: the catalog knows no AWS region yet; name at least one")
        aws = AwsContext(endpoint_url=endpoint_url)
        reports = []
        with _progress("discover", len(regions)) as advance:
            for name in regions:
                reports.append(discover_region(catalog, aws, name, owners=owner or ["self"], tag_filters=tag_filters))
                advance(name)
    if output is Output.json:
        render.emit_json({"regions": [r.to_dict() for r in reports]})
        return
    rows = [
        (r.region, r.found, len(r.new), len(r.updated), len(r.unchanged), len(r.missing), len(r.skipped))
        for r in reports
    ]
    render.emit(
        render.rows_table("discover", ("region", "found", "new", "updated", "unchanged", "missing", "skipped"), rows)
    )
    for report in reports:
        for reason in report.skipped:
            err.print(f"[yellow]skipped:[/yellow] {escape(reason)}")


_catalog_regions = reads.catalog_regions


@app.command("import-eks")
@command
def import_eks_cmd(
    kubernetes_version: Annotated[
        list[str], typer.Option("--kubernetes-version", "-k", help="Kubernetes minor, e.g. 1.31; repeatable")
    ],
    region: RegionsOpt = None,
    channel: Annotated[str, typer.Option("--channel", help="Channel the AWS images go in")] = "eks-optimized",
    endpoint_url: EndpointOpt = None,
    db: DbOpt = None,
    output: OutputOpt = Output.table,
) -> None:
    """Import the EKS optimized AMIs (amazon-eks-ami, SSM /aws/service/eks/optimized-ami/...) beside ours, so
    `latest --channel eks-optimized` and `diff` compare our image with AWS's."""
    from nodeforge.catalog.eks import import_region

    for version in kubernetes_version:
        _version(version)
    with Catalog.open(db) as catalog:
        regions = check_regions(region) if region else _catalog_regions(catalog)
        if not regions:
            raise InputError("--region: the catalog knows no AWS region yet; name at least one")
        aws = AwsContext(endpoint_url=endpoint_url)
        reports = []
        with _progress("import-eks", len(regions)) as advance:
            for name in regions:
                reports.append(import_region(catalog, aws, name, kubernetes_version, channel=channel))
                advance(name)
    if output is Output.json:
        render.emit_json({"channel": channel, "regions": [r.to_dict() for r in reports]})
        return
    rows = [(r.region, len(r.found), len(r.new), len(r.updated), len(r.unchanged), len(r.skipped)) for r in reports]
    render.emit(
        render.rows_table(
            f"import-eks → {channel}", ("region", "found", "new", "updated", "unchanged", "skipped"), rows
        )
    )
    for report in reports:
        for reason in report.skipped:
            err.print(f"[yellow]skipped:[/yellow] {escape(reason)}")


@app.command("export")
@command
def export_cmd(
    target: Annotated[ExportTarget, typer.Argument(help="karpenter (EC2NodeClass) or eksctl (nodegroup ami:)")],
    ref: Annotated[str | None, typer.Argument(help="One image; default: the latest of the selection below")] = None,
    kubernetes_version: VersionOpt = None,
    os: OsOpt = None,
    arch: ArchOpt = None,
    channel: ChannelOpt = "stable",
    region: RegionsOpt = None,
    by: Annotated[
        SelectBy, typer.Option("--by", help="karpenter: select AMIs by id or by nodeforge tags")
    ] = SelectBy.id,
    name: Annotated[
        str | None, typer.Option("--name", help="EC2NodeClass name (by id: -<region> appended) / nodegroup name")
    ] = None,
    managed: Annotated[
        bool, typer.Option("--managed/--unmanaged", help="eksctl: managedNodeGroups or nodeGroups")
    ] = True,
    cluster: Annotated[
        str | None,
        typer.Option("--cluster", help="eksctl: cluster name for overrideBootstrapCommand (AL2, Ubuntu images)"),
    ] = None,
    ami_family: Annotated[
        str | None, typer.Option("--ami-family", help="eksctl: amiFamily, when the OS does not imply one")
    ] = None,
    db: DbOpt = None,
    output: Annotated[ExportFormat, typer.Option("--output", "-o", help="yaml or json")] = ExportFormat.yaml,
) -> None:
    """Karpenter amiSelectorTerms or eksctl ami: snippets for an image, or a channel's latest per region."""
    reads.export(
        target.value,
        ref,
        kubernetes_version=kubernetes_version,
        os=os,
        arch=arch,
        channel=channel,
        region=region,
        by=by.value,
        name=name,
        managed=managed,
        cluster=cluster,
        ami_family=ami_family,
        db=db,
        json_output=output is ExportFormat.json,
    )


if __name__ == "__main__":
    app()
