"""`nodeforge catalog <read command>` without typer, rich or boto3: the read commands start in tens of ms.

``run(argv)`` parses the options the typer app declares for list, latest, show, diff, history and export, and
calls the same functions (``nodeforge.catalog.reads``) the typer commands call. Anything it does not recognise
(``--help``, an unknown or malformed option, a value outside a choice list) returns None: the caller then hands
the command line to the typer app, which answers exactly as before (help text, usage errors).
"""

from __future__ import annotations

import sqlite3
import sys

from nodeforge.catalog.errors import CatalogError

TYPE_CHECKING = False
if TYPE_CHECKING:  # no typing at run time: this is the fast path
    from collections.abc import Callable, Sequence
    from typing import Any

# option -> (parameter, kind); kind: "value", "int", "multi", or a constant (flags)
_COMMON: dict[str, tuple[str, Any]] = {
    "--db": ("db", "value"),
    "--output": ("output", "value"),
    "-o": ("output", "value"),
}
_SELECT: dict[str, tuple[str, Any]] = {
    "--kubernetes-version": ("kubernetes_version", "value"),
    "-k": ("kubernetes_version", "value"),
    "--os": ("os", "value"),
    "--arch": ("arch", "value"),
    "--channel": ("channel", "value"),
}
_SPECS: dict[str, tuple[dict[str, tuple[str, Any]], tuple[str, ...], int]] = {
    # command: (options, positional parameter names, how many positionals are required)
    "list": (
        {**_SELECT, "--region": ("region", "value"), "--status": ("status", "value"), "--limit": ("limit", "int")},
        (),
        0,
    ),
    "latest": ({**_SELECT, "--region": ("region", "value")}, (), 0),
    "show": ({}, ("ref",), 1),
    "diff": ({"--all": ("all_", True)}, ("a", "b"), 2),
    "history": ({"--limit": ("limit", "int")}, ("ref",), 0),
    "export": (
        {
            **_SELECT,
            "--region": ("region", "multi"),
            "--by": ("by", "value"),
            "--name": ("name", "value"),
            "--managed": ("managed", True),
            "--unmanaged": ("managed", False),
            "--cluster": ("cluster", "value"),
            "--ami-family": ("ami_family", "value"),
        },
        ("target", "ref"),
        1,
    ),
}
_CHOICES = {"output": ("table", "json"), "by": ("id", "tags"), "target": ("karpenter", "eksctl")}
_EXPORT_OUTPUT = ("yaml", "json")


def parse(command: str, args: Sequence[str]) -> dict[str, Any] | None:
    """Keyword arguments for the read function, or None when typer should handle the command line."""
    spec = _SPECS.get(command)
    if spec is None:
        return None
    options, positional_names, required = spec
    options = {**_COMMON, **options}
    values: dict[str, Any] = {}
    positionals: list[str] = []
    items = list(args)
    index = 0
    only_positionals = False
    while index < len(items):
        arg = items[index]
        index += 1
        if only_positionals or not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        if arg == "--":
            only_positionals = True
            continue
        name, eq, inline = arg.partition("=")
        if name not in options:
            return None  # --help, a typo, -kVALUE: typer's parser answers
        parameter, kind = options[name]
        if kind not in ("value", "int", "multi"):
            if eq:
                return None
            values[parameter] = kind
            continue
        if eq:
            value = inline
        elif index < len(items):
            value = items[index]
            index += 1
        else:
            return None  # "option requires an argument": typer's message
        if kind == "int":
            if not value.strip().lstrip("-").isdigit() or int(value) < 1:
                return None
            values[parameter] = int(value)
        elif kind == "multi":
            values.setdefault(parameter, []).append(value)
        else:
            values[parameter] = value
    if not required <= len(positionals) <= len(positional_names):
        return None
    values.update(zip(positional_names, positionals, strict=False))
    output = values.pop("output", None)
    allowed = _EXPORT_OUTPUT if command == "export" else _CHOICES["output"]
    if output is not None and output not in allowed:
        return None
    for parameter, choices in _CHOICES.items():
        if parameter != "output" and parameter in values and values[parameter] not in choices:
            return None
    values["json_output"] = output == "json"
    return values


def run(argv: Sequence[str]) -> int | None:
    """Run ``catalog`` read command ``argv`` (e.g. ["latest", "-k", "1.31", ...]); None: not handled here."""
    if not argv:
        return None
    command, args = argv[0], argv[1:]
    kwargs = parse(command, args)
    if kwargs is None:
        return None
    from nodeforge.catalog import reads

    functions: dict[str, Callable[..., None]] = {
        "list": reads.list_images,
        "latest": reads.latest,
        "show": reads.show,
        "diff": reads.diff,
        "history": reads.history,
        "export": reads.export,
    }
    try:
        functions[command](**kwargs)
    except CatalogError as exc:
        return report(exc, json_output=kwargs["json_output"])
    except sqlite3.Error as exc:
        return report(CatalogError(f"catalog database: {exc}"), json_output=kwargs["json_output"])
    except BrokenPipeError:
        sys.stderr.close()  # `nodeforge catalog list | head`: the reader left, nothing to say
        return 0
    return 0


def report(exc: CatalogError, *, json_output: bool) -> int:
    """What the typer app's ``command`` wrapper prints for a CatalogError (without colour)."""
    if json_output:
        from nodeforge.catalog.render import emit_json

        emit_json({"error": str(exc), "kind": type(exc).__name__})
    sys.stderr.write(f"error: {exc}\n")
    return exc.exit_code
