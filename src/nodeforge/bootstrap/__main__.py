"""``python3 -m nodeforge.bootstrap``."""

from __future__ import annotations

from nodeforge.bootstrap.cli import entry

if __name__ == "__main__":
    entry()
