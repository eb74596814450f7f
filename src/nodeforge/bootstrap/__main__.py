"""``python3 -m nodeforge.bootstrap``."""

from __future__ import annotations

import sys

from nodeforge.bootstrap.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
