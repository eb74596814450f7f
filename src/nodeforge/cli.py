"""nodeforge command line."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from nodeforge.bake import fixtures
from nodeforge.cli_support import StageReporter
from nodeforge.paths import cache_dir
from nodeforge.releases import kubelet_releases

app = typer.Typer(help="Build, verify and catalog custom Amazon EKS worker-node images.", no_args_is_help=True)
console = Console()


@app.callback()
def main() -> None:
    """nodeforge: bake a node image, verify it, keep a catalog of images."""


@app.command("fixtures")
def fixtures_cmd(
    out: Annotated[Path | None, typer.Option(help="Fixture folder (default .cache/fixtures)")] = None,
) -> None:
    """Build the test fixtures: stand-in EKS artifacts for every known release, and a busybox OCI image."""
    out = out or cache_dir() / "fixtures"
    releases = [replace(release, arch=arch) for release in kubelet_releases().values() for arch in ("amd64", "arm64")]
    digests = fixtures.build_artifact_tree(out / "artifacts", releases)
    fixtures.build_ssm_agent_deb(out / "artifacts")
    image = out / "busybox-oci.tar"
    if not image.exists():
        fixtures.build_oci_image(image)
        console.print(f"built {image}")
    console.print(f"fixtures ready: {len(digests)} artifacts under {out / 'artifacts'}")


@app.command("base")
def base_cmd(force: Annotated[bool, typer.Option(help="Rebuild even when cached")] = False) -> None:
    """Build the local base image (Debian bookworm via mmdebstrap, standing in for Amazon Linux); cached."""
    from nodeforge.bake.base import build_base

    with StageReporter(console).stage("base image"):
        result = build_base(force=force)
    console.print(f"{result.tag} ({'cached' if result.cached else 'built'}, {result.seconds:.1f} s)")


@app.command("bake")
def bake_cmd(
    target: Annotated[str, typer.Option(help="Where to bake: local (Docker + QEMU boot check here)")] = "local",
    kubernetes_version: Annotated[str, typer.Option(help="Kubernetes minor version, e.g. 1.31")] = "1.31",
    tag: Annotated[str | None, typer.Option(help="Image tag (default k8s-<version>-<timestamp>)")] = None,
    artifact_source: Annotated[
        str | None, typer.Option(help="Artifact URL or folder (default: test fixtures on a 127.0.0.1 mirror)")
    ] = None,
    verify: Annotated[bool, typer.Option(help="Run the node checks against the image")] = True,
    boot: Annotated[
        bool, typer.Option(help="Boot the image once like EC2 (GRUB, IMDSv2 user data, cloud-init), check it over SSH")
    ] = True,
    user_data: Annotated[
        Path | None,
        typer.Option(
            "--user-data",
            help="User data of that first boot (default: Karpenter AL2023 MIME, instanceStorePolicy RAID0)",
        ),
    ] = None,
    firmware: Annotated[str, typer.Option(help="Firmware of that first boot: bios or uefi")] = "bios",
    variant: Annotated[
        str, typer.Option(help="mutable (ext4 root) or immutable (sealed erofs root, dm-verity, A/B slots)")
    ] = "mutable",
    signing_key: Annotated[
        Path | None, typer.Option(help="immutable: private key that signs the root hash (nodeforge image keygen)")
    ] = None,
    apt_proxy: Annotated[
        str,
        typer.Option(help="HTTP proxy for apt during the build only, e.g. an apt-cacher-ng (not kept in the image)"),
    ] = "",
) -> None:
    """Bake a node image end to end: base, Packer + node playbook, export, scan, verify, QEMU boot."""
    from nodeforge.bake.pipeline import BakeError, BakeOptions, bake_local

    if target != "local":
        raise typer.BadParameter(f"unknown target {target!r}; this machine bakes 'local' only", param_hint="--target")
    if variant not in {"mutable", "immutable"}:
        raise typer.BadParameter(f"unknown variant {variant!r} (mutable or immutable)", param_hint="--variant")
    if firmware not in {"bios", "uefi"}:
        raise typer.BadParameter(f"unknown firmware {firmware!r} (bios or uefi)", param_hint="--firmware")
    if user_data is not None and not user_data.is_file():
        raise typer.BadParameter(f"{user_data}: no such file", param_hint="--user-data")
    if signing_key is not None and variant != "immutable":
        raise typer.BadParameter("only the immutable variant is signed", param_hint="--signing-key")
    if signing_key is not None and not signing_key.is_file():
        raise typer.BadParameter(f"{signing_key}: signing key not found", param_hint="--signing-key")
    options = BakeOptions(
        kubernetes_version=kubernetes_version,
        image_tag=tag,
        artifact_source=artifact_source,
        verify=verify,
        boot=boot,
        variant=variant,
        apt_proxy=apt_proxy,
        first_boot_user_data=user_data,
        first_boot_firmware=firmware,
        signing_key=signing_key,
    )
    try:
        report = bake_local(options, StageReporter(console))
    except BakeError as exc:
        console.print(f"[red]bake failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"baked {report.image}")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, seconds in report.timings.items():
        table.add_row(name, f"{seconds:.1f}")
    console.print(table)
    console.print(f"image size {report.image_size_bytes / 2**20:.0f} MiB, manifest {report.manifest}")
    if report.verify:
        console.print(f"checks: {report.verify['passed']} passed, {report.verify['failed']} failed")
    if report.boot:
        boot = report.boot
        console.print(
            f"first boot ({boot['firmware']}): {boot['state']}, units {boot['units']}, report after {boot['seconds']} s"
            f" (since kernel start: bootstrap done {boot['bootstrap_done']} s, kubelet {boot['kubelet_started']} s)"
        )
        if boot.get("verify_ssh"):
            ssh = boot["verify_ssh"]
            console.print(f"checks on the booted node over SSH: {ssh['passed']} passed, {ssh['failed']} failed")
    if report.immutable:
        sizes = report.immutable["sizes"]
        console.print(
            f"sealed root {sizes['sealed_image_bytes'] / 2**20:.0f} MiB ({report.immutable['fs_type']} + dm-verity), "
            f"root hash {report.immutable['root_hash']}, disk {report.immutable['disk']}"
        )
        if report.immutable.get("boot"):
            console.print(f"sealed boot: {'ok' if report.immutable['boot']['ok'] else 'FAILED'}")


@app.command("verify")
def verify_cmd(
    image: Annotated[
        str | None, typer.Argument(help="Docker image of a baked node, e.g. nodeforge/node:TAG (or use --ssh)")
    ] = None,
    ssh: Annotated[
        str | None, typer.Option("--ssh", help="A running node over SSH instead: USER@HOST[:PORT] (sudo needed)")
    ] = None,
    identity_file: Annotated[Path | None, typer.Option("-i", help="SSH private key for --ssh")] = None,
    markers: Annotated[str | None, typer.Option("-m", help="Only checks with these pytest markers")] = None,
    cis: Annotated[bool, typer.Option("--cis", help="Only the CIS EKS worker-node checks, as a table")] = False,
    output: Annotated[str, typer.Option(help="text or json")] = "text",
) -> None:
    """Run every node check (tests/infra) against an instance of IMAGE, or a running node (--ssh)."""
    from nodeforge.bake.docker import DockerError
    from nodeforge.bake.verify import check_results, verify_image, verify_ssh

    if output not in {"text", "json"}:
        raise typer.BadParameter(f"unknown output {output!r} (text or json)", param_hint="--output")
    if (image is None) == (ssh is None):
        raise typer.BadParameter("give an IMAGE or --ssh USER@HOST[:PORT] (one of them)", param_hint="IMAGE")
    if identity_file is not None and not identity_file.is_file():
        raise typer.BadParameter(f"{identity_file}: no such key file", param_hint="-i")
    selection = "cis" if cis else markers
    if cis and markers:
        selection = f"cis and ({markers})"
    target = image or str(ssh)
    try:
        with StageReporter(console if output == "text" else Console(stderr=True)).stage(f"verify {target}"):
            if ssh is not None:
                result = verify_ssh(
                    ssh, out_dir=cache_dir() / "verify-ssh", identity_file=identity_file, markers=selection
                )
            else:
                result = verify_image(target, out_dir=cache_dir() / "verify", markers=selection)
    except (DockerError, ValueError) as exc:
        Console(stderr=True).print(f"[red]verify failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    checks = check_results(result.junit) if cis else []
    if output == "json":
        summary = {"image": target, "passed": result.passed, "failed": result.failed, "skipped": result.skipped}
        print(json.dumps({**summary, "checks": [c.to_dict() for c in checks], "log": str(result.report)}, indent=2))
    else:
        if cis:
            _print_checks(target, checks)
        console.print(f"{result.passed} passed, {result.failed} failed, {result.skipped} skipped (log {result.report})")
    if not result.ok:
        raise typer.Exit(1)


@app.command("launch")
def launch_cmd(
    image: Annotated[Path, typer.Argument(help="A node image: its disk.img, or a rootfs tar (build/local/TAG/...)")],
    user_data: Annotated[
        Path | None, typer.Option("--user-data", help="User data file, as EC2 would serve it (none: no user data)")
    ] = None,
    instance_type: Annotated[str, typer.Option("--instance-type", help="EC2 instance type IMDS reports")] = "m5.large",
    firmware: Annotated[str, typer.Option(help="bios (legacy boot) or uefi (OVMF)")] = "bios",
    imds: Annotated[str, typer.Option(help="v2 (token required), v1-only (token PUT refused), unreachable")] = "v2",
    ssh: Annotated[bool, typer.Option("--ssh", help="Keep the node up with SSH (key from IMDS) until Enter")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the node's report")] = 900,
    output: Annotated[str, typer.Option(help="text or json")] = "text",
    instance_store: Annotated[
        str,
        typer.Option(
            "--instance-store", help="N[xSIZE]: N instance-store NVMe disks as EC2 names them (SIZE default 8G)"
        ),
    ] = "0",
) -> None:
    """Boot IMAGE like EC2 (its own boot loader, IMDSv2, cloud-init) with your user data; show what the node did."""
    from nodeforge.vm import launch_cli

    raise typer.Exit(
        launch_cli.run(
            image,
            user_data=user_data,
            instance_type=instance_type,
            firmware=firmware,
            imds=imds,
            ssh=ssh,
            timeout=timeout,
            output=output,
            console=console,
            instance_store=instance_store,
        )
    )


@app.command("verify-build")
def verify_build_cmd(
    target: Annotated[str, typer.Argument(help="The build instance: docker://CONTAINER or ssh://USER@HOST:PORT")],
    out: Annotated[Path, typer.Option(help="Where the logs and junit reports go")] = Path("build/verify-build"),
    ssh_key: Annotated[Path | None, typer.Option(help="Private key for an ssh:// target")] = None,
    sudo: Annotated[bool, typer.Option(help="Run the checks and the root tar with sudo (ssh targets)")] = False,
    hygiene: Annotated[bool, typer.Option(help="Scan the instance's root for secrets, keys, logs, ...")] = True,
    sysprep_checks: Annotated[
        bool, typer.Option(help="Also the sysprep checks (off before sysprep: packer/eks-node runs them after it)")
    ] = True,
) -> None:
    """Verify a build instance before its image is registered: the tests/infra suite, the CIS table and the hygiene
    scan, over Packer's communicator. Exit status 1 on any failure (it fails the Packer build)."""
    from nodeforge.bake.verify import BuildTarget, verify_build

    try:
        build_target = BuildTarget(target, ssh_key=ssh_key, sudo=sudo)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="TARGET") from exc
    phases = ("node", "sysprep") if sysprep_checks else ("node",)
    result = verify_build(build_target, out_dir=out, hygiene=hygiene, phases=phases)
    _print_checks(target, result.checks)
    findings = result.hygiene.get("findings") or []
    for finding in findings[:20]:  # type: ignore[union-attr]
        console.print(f"[red]hygiene[/red] {finding['rule']} {finding['path']}: {finding['detail']}")
    if result.hygiene.get("error"):
        console.print(f"[red]hygiene[/red] {result.hygiene['error']}")
    (out / "verify-build.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    console.print(
        f"{result.passed} passed, {result.failed} failed, {result.skipped} skipped; hygiene "
        f"{'clean' if result.hygiene.get('clean') else 'NOT clean'} (log {result.report})"
    )
    if not result.ok:
        raise typer.Exit(1)


def _print_checks(image: str, checks: list) -> None:
    table = Table(title=f"CIS Amazon EKS benchmark, worker node: {image}")
    for column in ("id", "check", "result", "detail"):
        table.add_column(column)
    style = {"pass": "[green]PASS[/green]", "fail": "[red]FAIL[/red]", "skip": "[yellow]SKIP[/yellow]"}
    for check in checks:
        table.add_row(check.id, check.title, style[check.status], check.message[:80])
    console.print(table)


@app.command("scan")
def scan_cmd(
    rootfs: Annotated[Path, typer.Argument(help="Root filesystem tar of an image (build/local/TAG/rootfs.tar)")],
    output: Annotated[str, typer.Option(help="text or json")] = "text",
    allow_suid: Annotated[
        list[str] | None,
        typer.Option(help="Also accept a SUID/SGID file (as the role's hardening_suid_sgid_allowlist); repeatable"),
    ] = None,
) -> None:
    """Image hygiene: keys, credentials, identity, histories, caches, logs, world-writable, SUID/SGID files."""
    from dataclasses import replace

    from nodeforge.bake.hygiene import RULES, HygieneError, scan_rootfs_tar, suid_sgid_policy

    try:
        for extra in allow_suid or []:
            if not extra.startswith("/"):
                raise HygieneError(f"--allow-suid {extra}: needs an absolute path")
        policy = suid_sgid_policy()
        result = scan_rootfs_tar(rootfs, replace(policy, allowed=policy.allowed | frozenset(allow_suid or [])))
    except HygieneError as exc:
        Console(stderr=True).print(f"[red]scan failed:[/red] {exc}")
        raise typer.Exit(2) from exc
    if output == "json":
        print(json.dumps({"image": str(rootfs), "rules": RULES, **result.to_dict()}, indent=2))
    else:
        table = Table(title=f"hygiene of {rootfs} ({result.members} entries)")
        for column in ("rule", "path", "detail"):
            table.add_column(column)
        for finding in result.findings:
            table.add_row(finding.rule, finding.path, finding.detail)
        console.print(table)
        console.print(f"{len(result.findings)} findings; rules: {', '.join(RULES)}")
    if result.findings:
        raise typer.Exit(1)


@app.command(
    "bootstrap",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def bootstrap_cmd(ctx: typer.Context) -> None:
    """The boot-time bootstrap agent (user data -> kubelet/containerd config); `nodeforge bootstrap --help`."""
    from nodeforge.bootstrap import main as bootstrap_main

    raise typer.Exit(bootstrap_main(list(ctx.args)))


def _mount_subcommands() -> None:
    from nodeforge import packer_cli
    from nodeforge.catalog.cli import app as catalog_app
    from nodeforge.immutable.cli import app as image_app
    from nodeforge.settings_cli import app as settings_app

    app.command("build-vars")(packer_cli.build_vars)
    app.command("tag-images")(packer_cli.tag_images_cmd)
    app.add_typer(catalog_app, name="catalog")
    app.add_typer(image_app, name="image")
    app.add_typer(settings_app, name="settings")


_mount_subcommands()

if __name__ == "__main__":
    app()
