"""python -m nodeforge: the `nodeforge` command (fast path for catalog reads, see nodeforge.entry)."""

from nodeforge.entry import main

main()
