"""`nodeforge settings ...`: check Bottlerocket-style TOML settings (user data) and render the node files for them.

Both commands run the bootstrap agent's own code (:mod:`nodeforge.bootstrap.settings_render`), so what they
accept, refuse and write is what the agent does on a node. Exit codes: 0 valid (or written), 1 invalid
settings (every error listed; nothing written), 2 the file cannot be read or is not TOML, or a bad option,
3 a file could not be written (the files already changed are put back).
"""

from __future__ import annotations

import json
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nodeforge.bootstrap.errors import WriteError
from nodeforge.bootstrap.kubelet import parse_kubelet_version
from nodeforge.bootstrap.settings_render import (
    DEFAULT_INSTANCE_TYPE,
    Checked,
    OfflineOptions,
    SettingsFileError,
    check,
    load,
    render,
)

EXIT_INVALID = 1
EXIT_UNREADABLE = 2
EXIT_WRITE = 3

app = typer.Typer(
    help="Check Bottlerocket-style TOML settings and render the node files the bootstrap agent writes for them.",
    no_args_is_help=True,
)
out = Console()
err = Console(stderr=True)


class Output(StrEnum):
    text = "text"
    json = "json"


class CisMode(StrEnum):
    enforce = "enforce"
    warn = "warn"


FileArg = Annotated[
    Path, typer.Argument(metavar="FILE", help="Settings file (TOML user data; may be base64 and/or gzip)")
]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text for people, json for scripts")]
CisOpt = Annotated[CisMode, typer.Option("--cis-mode", help="refuse (enforce) or allow (warn) CIS breaks")]
KubeletVersionOpt = Annotated[
    str | None, typer.Option("--kubelet-version", help="Kubelet minor version X.Y (version-gated settings)")
]
InstanceTypeOpt = Annotated[str, typer.Option("--instance-type", help="Instance type for max-pods and kube-reserved")]


@app.callback()
def main() -> None:
    """Validate and render [settings.*] TOML user data the way the node's bootstrap agent reads it."""


@app.command("validate")
def validate_cmd(
    file: FileArg,
    output: OutputOpt = Output.text,
    cis_mode: CisOpt = CisMode.enforce,
    kubelet_version: KubeletVersionOpt = None,
    instance_type: InstanceTypeOpt = DEFAULT_INSTANCE_TYPE,
) -> None:
    """Check every key and value (exit 0, warnings listed) or list every error (exit 1)."""
    document = _load(file, output)
    with tempfile.TemporaryDirectory(prefix="nodeforge-settings-") as empty:  # an image with no files of its own
        options = _options(Path(empty), kubelet_version, instance_type, cis_mode, output)
        options.auth_helper = "aws-iam-authenticator"  # no installed helper to look for: not worth a warning
        checked = check(document, options)
    _report(file, checked, output, written=False)
    if not checked.valid:
        raise typer.Exit(EXIT_INVALID)


@app.command("render")
def render_cmd(
    file: FileArg,
    out_dir: Annotated[
        Path, typer.Option("--out", metavar="DIR", help="Root prefix to write under: DIR/etc/kubernetes/...")
    ],
    output: OutputOpt = Output.text,
    cis_mode: CisOpt = CisMode.enforce,
    kubelet_version: KubeletVersionOpt = None,
    instance_type: InstanceTypeOpt = DEFAULT_INSTANCE_TYPE,
) -> None:
    """Write under DIR exactly what the agent would write for FILE (no IMDS, no systemd); list the files."""
    options = _options(out_dir.resolve(), kubelet_version, instance_type, cis_mode, output)
    document = _load(file, output)
    try:
        checked = render(document, options)
    except WriteError as exc:
        _fail(output, EXIT_WRITE, exc.render().removeprefix("error: "))
    _report(file, checked, output, written=True)
    if not checked.valid:
        raise typer.Exit(EXIT_INVALID)


def _options(
    root: Path, kubelet_version: str | None, instance_type: str, cis: CisMode, output: Output
) -> OfflineOptions:
    version = None
    if kubelet_version is not None:
        version = parse_kubelet_version(kubelet_version)
        if version is None:
            _fail(output, EXIT_UNREADABLE, f"--kubelet-version {kubelet_version!r}: expected X.Y, e.g. 1.31")
    return OfflineOptions(root=root, kubelet_version=version, instance_type=instance_type, cis_mode=cis.value)


def _load(file: Path, output: Output) -> dict[str, Any]:
    try:
        return load(file)
    except SettingsFileError as exc:
        _fail(output, EXIT_UNREADABLE, str(exc))


def _fail(output: Output, code: int, message: str) -> NoReturn:
    if output is Output.json:
        _emit_json({"error": message})
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


def _emit_json(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    sys.stdout.flush()


def _report(file: Path, checked: Checked, output: Output, *, written: bool) -> None:
    diagnostics = checked.diagnostics
    files = [{"path": o.path, "action": o.action} for o in checked.outcomes if o.action != "absent"]
    if output is Output.json:
        document: dict[str, Any] = {
            "file": str(file),
            "valid": checked.valid,
            "errors": diagnostics.errors,
            "warnings": diagnostics.warnings,
            "notApplied": checked.settings.not_applied,
        }
        if written:
            document["files"] = files
        _emit_json(document)
        return
    for warning in diagnostics.warnings:
        err.print(f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True)
    for problem in diagnostics.errors:
        err.print(f"[red]error:[/red] {escape(problem)}", soft_wrap=True)
    if not checked.valid:
        outcome = "; nothing written" if written else ""
        err.print(f"{escape(str(file))}: {len(diagnostics.errors)} error(s){outcome}", soft_wrap=True)
        return
    if written:
        out.print(_files_table(files))
    summary = "valid" if not written else f"{sum(f['action'] != 'unchanged' for f in files)} file(s) changed"
    out.print(f"{escape(str(file))}: {summary}, {len(diagnostics.warnings)} warning(s)", soft_wrap=True)


def _files_table(files: list[dict[str, str]]) -> Table:
    table = Table(title="files")
    table.add_column("action")
    table.add_column("path", overflow="fold")
    for item in files:
        table.add_row(item["action"], item["path"])
    return table
