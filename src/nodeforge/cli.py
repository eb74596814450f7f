"""nodeforge command line."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from nodeforge import fixtures
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
    releases = [
        replace(release, arch=arch) for release in kubelet_releases().values() for arch in ("amd64", "arm64")
    ]
    digests = fixtures.build_artifact_tree(out / "artifacts", releases)
    image = out / "busybox-oci.tar"
    if not image.exists():
        fixtures.build_oci_image(image)
        console.print(f"built {image}")
    console.print(f"fixtures ready: {len(digests)} artifacts under {out / 'artifacts'}")


if __name__ == "__main__":
    app()
