"""Progress reporting for long, staged work (bake, verify): a spinner per stage, a line when it ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console


class StageReporter:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            with self.console.status(f"[bold]{name}[/bold] …"):
                yield
        except BaseException:
            self.console.print(f"[red]✗[/red] {name} failed after {time.monotonic() - started:.1f} s")
            raise
        self.console.print(f"[green]✓[/green] {name} [dim]{time.monotonic() - started:.1f} s[/dim]")
