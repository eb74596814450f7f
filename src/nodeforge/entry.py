"""The `nodeforge` command's entry point: catalog read commands take a fast path, everything else the typer app.

``nodeforge catalog list|latest|show|diff|history|export ...`` is parsed and answered by
``nodeforge.catalog.fast`` without importing typer, rich or boto3 (a read starts within a few times the
interpreter's own start-up). Any other command line, or one the fast path does not fully understand (``--help``,
a bad option), goes to ``nodeforge.cli:app`` exactly as before.
"""

from __future__ import annotations

import sys


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) >= 2 and argv[0] == "catalog":
        from nodeforge.catalog.fast import run

        code = run(argv[1:])
        if code is not None:
            sys.exit(code)
    from nodeforge.cli import app

    app()


if __name__ == "__main__":
    main()
