"""python -m nodeforge.catalog: the catalog CLI on its own (as `nodeforge catalog` does, reads on the fast path)."""

import sys

from nodeforge.catalog.fast import run

code = run(sys.argv[1:])
if code is not None:
    sys.exit(code)

from nodeforge.catalog.cli import app  # noqa: E402 (only when the fast path declined)

app(prog_name="nodeforge catalog")
