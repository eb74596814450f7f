"""Boot-time bootstrap agent: turns EC2 user data into a joined kubelet.

Runs on the node with the OS python3, so this package imports only the standard library and ``yaml``
(PyYAML) and nothing from the rest of nodeforge. Entry points: ``python3 -m nodeforge.bootstrap`` and
:func:`main`.
"""

from __future__ import annotations


def main(argv: list[str] | None = None) -> int:
    """Run the agent with command-line arguments ``argv``; returns the exit code."""
    from nodeforge.bootstrap.cli import main as run

    return run(argv)


__all__ = ["main"]
