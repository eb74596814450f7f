"""``nodeforge image ...``: seal a rootfs, verify it, build and operate the A/B disk, boot it under QEMU."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from nodeforge.cli_support import StageReporter
from nodeforge.vm.disk import DiskImageError

app = typer.Typer(
    help="Immutable node image: sealed erofs + dm-verity root, A/B slots, state partition.", no_args_is_help=True
)
disk_app = typer.Typer(help="Create A/B disk images.", no_args_is_help=True)
app.add_typer(disk_app, name="disk")
console = Console()
T = TypeVar("T")


def _guard(fn: Callable[[], T]) -> T:
    """Run ``fn``; print a nodeforge error in red and exit 1 instead of a traceback."""
    try:
        return fn()
    except DiskImageError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def _print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


@app.command("seal")
def seal_cmd(
    rootfs_tar: Annotated[Path, typer.Argument(help="Baked rootfs tar (docker export of the node image)")],
    out: Annotated[Path, typer.Option("--out", help="Output directory for root.img, root.verity, seal.json ...")],
    fs_type: Annotated[str, typer.Option("--fs", help="Read-only filesystem: erofs or squashfs")] = "erofs",
    compression: Annotated[str | None, typer.Option(help="Compressor (default lz4hc / zstd)")] = None,
    strip: Annotated[bool, typer.Option(help="Remove apt, docs, translations, /boot from the root")] = True,
    signing_key: Annotated[
        Path | None, typer.Option(help="Private key (PEM) to sign the root hash with; see `image keygen`")
    ] = None,
    source_date_epoch: Annotated[
        int | None, typer.Option(help="Timestamp epoch (default: $SOURCE_DATE_EPOCH, else the tar's newest file)")
    ] = None,
) -> None:
    """Seal a rootfs tar: read-only filesystem image + dm-verity hash tree + kernel + initramfs (reproducible)."""
    from nodeforge.immutable.seal import seal_rootfs

    with StageReporter(console).stage(f"seal {rootfs_tar}"):
        sealed = _guard(
            lambda: seal_rootfs(
                rootfs_tar,
                out,
                fs_type=fs_type,
                compression=compression,
                strip=strip,
                signing_key=signing_key,
                source_date_epoch=source_date_epoch,
            )
        )
    table = Table(title=f"sealed {out}")
    table.add_column("item")
    table.add_column("value", overflow="fold")
    table.add_row("root hash", sealed.root_hash)
    table.add_row("salt", sealed.verity.salt)
    table.add_row("signed by", sealed.signature.get("key", "(unsigned)"))
    table.add_row("tree digest", str(sealed.inputs.get("tree_sha256", "")))
    table.add_row("source date epoch", str(sealed.inputs.get("source_date_epoch", "")))
    table.add_row("data blocks", str(sealed.verity.data_blocks))
    table.add_row(f"{sealed.fs_type} image", f"{sealed.image_bytes / 2**20:.1f} MiB")
    table.add_row("hash tree", f"{sealed.hash_bytes / 2**20:.1f} MiB")
    table.add_row("rootfs tar", f"{sealed.rootfs_tar_bytes / 2**20:.1f} MiB")
    table.add_row("removed", f"{len(sealed.removed)} paths, {sealed.removed_bytes / 2**20:.1f} MiB")
    for name, seconds in sealed.timings.items():
        table.add_row(f"{name} (s)", f"{seconds:.1f}")
    console.print(table)


@app.command("seal-image")
def seal_image_cmd(
    image: Annotated[str, typer.Argument(help="Docker image of a baked node, e.g. nodeforge/node:TAG")],
    out: Annotated[Path, typer.Option("--out", help="Output directory for root.img, root.verity, seal.json ...")],
    manifest: Annotated[
        Path | None, typer.Option(help="Packer manifest whose last build gets the root hash in custom_data")
    ] = None,
    rootfs_tar: Annotated[
        Path | None, typer.Option(help="Keep the exported root filesystem tar here (default: a temp file)")
    ] = None,
    fs_type: Annotated[str, typer.Option("--fs", help="Read-only filesystem: erofs or squashfs")] = "erofs",
    signing_key: Annotated[Path | None, typer.Option(help="Private key (PEM) to sign the root hash with")] = None,
) -> None:
    """Export a baked Docker image and seal it; the immutable variant's step of packer/local.pkr.hcl."""
    import tempfile

    from nodeforge.bake import docker
    from nodeforge.immutable.manifest import record_seal
    from nodeforge.immutable.seal import seal_rootfs

    if not docker.image_exists(image):
        console.print(f"[red]error:[/red] image not found: {image}")
        raise typer.Exit(1)
    reporter = StageReporter(console)
    with tempfile.TemporaryDirectory(prefix="nodeforge-seal-") as scratch:
        tar = rootfs_tar or Path(scratch) / "rootfs.tar"
        tar.parent.mkdir(parents=True, exist_ok=True)
        with reporter.stage(f"export {image}"):
            docker.export_image(image, tar)
        with reporter.stage(f"seal {tar}"):
            sealed = _guard(lambda: seal_rootfs(tar, out, fs_type=fs_type, signing_key=signing_key))
    if manifest is not None:
        _guard(lambda: record_seal(manifest, sealed))
    console.print(f"sealed {image}: {sealed.fs_type} + dm-verity, root hash {sealed.root_hash} ({out})")


@app.command("keygen")
def keygen_cmd(
    out: Annotated[Path, typer.Argument(help="Private key file to create (the public half is written as .pub)")],
) -> None:
    """Create an Ed25519 key pair for signing root hashes (never overwrites a key)."""
    from nodeforge.immutable import signing

    public = _guard(lambda: signing.generate_key(out))
    console.print(
        f"private key {out} (keep it secret), public key {public} ({signing.fingerprint(public.read_text())})"
    )


@app.command("verify")
def verify_cmd(
    sealed_dir: Annotated[Path, typer.Argument(help="Sealed root directory (with seal.json)")],
    root_hash: Annotated[str | None, typer.Option(help="Expected root hash (default: seal.json's)")] = None,
) -> None:
    """Verify a sealed root with veritysetup verify (every data block against the root hash)."""
    from nodeforge.immutable import verity
    from nodeforge.immutable.seal import SealedRoot

    sealed = _guard(lambda: SealedRoot.load(sealed_dir))
    expected = root_hash or sealed.root_hash
    with StageReporter(console).stage(f"veritysetup verify {sealed.image}"):
        seconds = _guard(lambda: verity.verify(sealed.image, sealed.hash_tree, expected))
    console.print(f"[green]verified[/green] {sealed.image} against {expected} ({seconds:.1f} s)")


@disk_app.command("create")
def disk_create_cmd(
    sealed_dir: Annotated[Path, typer.Argument(help="Sealed root directory for slot A")],
    out: Annotated[Path, typer.Option("--out", help="Disk image file to create")],
    settings: Annotated[Path | None, typer.Option(help="TOML settings file for the state partition")] = None,
    slot_mb: Annotated[int | None, typer.Option(help="Size of each root slot (default 1.5x the sealed root)")] = None,
    state_mb: Annotated[int, typer.Option(help="Size of the state partition")] = 512,
    public_key: Annotated[
        Path | None, typer.Option(help="Public key (PEM) for the boot partition (default: the seal's root.pub)")
    ] = None,
) -> None:
    """Create an A/B disk image: slot A = the sealed root (active), slot B empty, fresh state."""
    from nodeforge.immutable.seal import SealedRoot
    from nodeforge.vm.ab_disk import create_disk

    sealed = _guard(lambda: SealedRoot.load(sealed_dir))
    with StageReporter(console).stage(f"create {out}"):
        layout = _guard(
            lambda: create_disk(
                out, sealed, slot_mb=slot_mb, state_mb=state_mb, settings=settings, public_key=public_key
            )
        )
    for part in layout.partitions.values():
        console.print(f"  {part.number} {part.name:<11} {part.size / 2**20:8.0f} MiB at {part.start}")


@app.command("update")
def update_cmd(
    disk: Annotated[Path, typer.Argument(help="A/B disk image")],
    sealed_dir: Annotated[Path, typer.Argument(help="Sealed root directory to install")],
    root_hash: Annotated[
        str | None, typer.Option(help="Root hash the update must have (e.g. from the catalog)")
    ] = None,
    tries: Annotated[int, typer.Option(help="Boot attempts before automatic rollback")] = 1,
) -> None:
    """Write a sealed root into the inactive slot (verified first) and make it the pending slot."""
    from nodeforge.immutable.update import update_slot

    with StageReporter(console).stage(f"update {disk}"):
        result = _guard(lambda: update_slot(disk, sealed_dir, root_hash=root_hash, tries=tries))
    console.print(
        f"slot {result.slot.upper()} pending ({result.tries_left} tries), slot {result.previous.upper()} "
        f"stays the fallback; root hash {result.root_hash}"
    )


@app.command("status")
def status_cmd(
    disk: Annotated[Path, typer.Argument(help="A/B disk image")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show the boot record (the grubenv on the ESP): which slot GRUB boots, each slot's state and root hash."""
    from nodeforge.immutable.update import status

    data = _guard(lambda: status(disk))
    if as_json:
        _print_json(data)
        return
    table = Table(title=f"{disk} (generation {data['generation']}; boots slot {str(data['selected']).upper()})")
    for column in ("slot", "state", "priority", "tries", "successful", "version", "root hash"):
        table.add_column(column)
    for slot, info in data["slots"].items():
        table.add_row(
            slot.upper(),
            info["state"],
            str(info["priority"]),
            str(info["tries_left"]),
            "yes" if info["successful"] else "no",
            info["version"],
            info["root_hash"][:16] + ("…" if info["root_hash"] else ""),
        )
    console.print(table)
    if data.get("note"):
        console.print(f"last change: {data['note']}")


@app.command("mark-successful")
def mark_successful_cmd(disk: Annotated[Path, typer.Argument(help="A/B disk image")]) -> None:
    """Mark the slot of the last boot attempt successful (it reached ready)."""
    from nodeforge.immutable.update import mark_successful

    slot = _guard(lambda: mark_successful(disk))
    console.print(f"slot {slot.upper()} marked successful")


@app.command("rollback")
def rollback_cmd(disk: Annotated[Path, typer.Argument(help="A/B disk image")]) -> None:
    """Disable the current slot and boot the previous, known-good slot again."""
    from nodeforge.immutable.update import rollback

    frm, to = _guard(lambda: rollback(disk))
    console.print(f"rolled back: slot {frm.upper()} disabled, slot {to.upper()} active")


@app.command("boot")
def boot_cmd(
    disk: Annotated[Path, typer.Argument(help="A/B disk image")],
    firmware: Annotated[str, typer.Option(help="bios (SeaBIOS) or uefi (OVMF)")] = "bios",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the boot probe")] = 300,
    mark: Annotated[bool, typer.Option(help="Mark the slot successful when every check passes")] = True,
    to_root: Annotated[
        bool,
        typer.Option("--to-root", help="Stop when the initramfs switches to the slot's verity root (~20 s; no checks)"),
    ] = False,
    expect_dns: Annotated[
        str | None,
        typer.Option(help="Cluster DNS the settings set: also check /etc was rendered from them"),
    ] = None,
    user_data: Annotated[
        Path | None,
        typer.Option(
            help="TOML user data served over a fake IMDSv2 (the node renders /etc from it, as on EC2); "
            "default: the settings file on the disk's state partition"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
) -> None:
    """Boot the disk under QEMU (TCG) from the disk alone: its GRUB picks the slot; check the sealed-root facts.

    The VM writes the disk image (GRUB takes a try of a pending slot, first boot seeds the state partition).
    """
    from nodeforge.vm.ab_boot import boot_disk, boot_slot
    from nodeforge.vm.qemu import FIRMWARES

    if firmware not in FIRMWARES:
        console.print(f"[red]error:[/red] --firmware {firmware!r}: one of {', '.join(FIRMWARES)}")
        raise typer.Exit(2)
    if to_root:
        with StageReporter(console).stage(f"boot {disk} ({firmware}) to its verity root"):
            slot_boot = _guard(lambda: boot_slot(disk, firmware=firmware, timeout=timeout))
        if as_json:
            _print_json(slot_boot.to_dict())
        else:
            console.print(
                f"GRUB booted slot {slot_boot.slot.upper()} (try taken: {'yes' if slot_boot.consumed_try else 'no'}, "
                f"{slot_boot.tries_left} left); the initramfs opened slot {slot_boot.opened.upper() or '?'} through "
                f"dm-verity after {slot_boot.seconds} s"
            )
            if slot_boot.skipped:
                console.print(f"[yellow]{slot_boot.skipped}[/yellow]")
        if not slot_boot.opened or slot_boot.opened != slot_boot.slot:
            raise typer.Exit(1)
        return
    text = None
    if user_data is not None:
        try:
            text = user_data.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            console.print(f"[red]error:[/red] --user-data {user_data}: cannot read ({exc})")
            raise typer.Exit(2) from exc
    with StageReporter(console).stage(f"boot {disk} ({firmware}) under QEMU"):
        result = _guard(
            lambda: boot_disk(
                disk, firmware=firmware, timeout=timeout, mark=mark, expect_dns=expect_dns, user_data=text
            )
        )
    if as_json:
        _print_json(result.to_dict())
    else:
        console.print(f"slot {result.slot.upper()} ({result.root_hash[:16]}…), report after {result.boot.seconds} s")
        if result.skipped:
            console.print(f"[yellow]{result.skipped}[/yellow]")
        for name, passed in result.checks.items():
            console.print(f"  {'[green]✓[/green]' if passed else '[red]✗[/red]'} {name}")
        console.print(f"console log: {result.boot.console_log}")
    if not result.ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
