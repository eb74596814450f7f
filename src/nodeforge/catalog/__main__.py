"""python -m nodeforge.catalog: the catalog CLI on its own (as `nodeforge catalog` does)."""

from nodeforge.catalog.cli import app

app(prog_name="nodeforge catalog")
