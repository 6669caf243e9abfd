"""Progress output: a live rich status line on a terminal, plain timestamped lines otherwise."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from rich.console import Console


def make_console() -> Console:
    # Plain lines (no colours, no cursor tricks) when stdout is a file or a pipe (CI, logs).
    return (
        Console(highlight=False, soft_wrap=True)
        if sys.stdout.isatty()
        else Console(highlight=False, soft_wrap=True, force_terminal=False, no_color=True, width=200)
    )


class Progress:
    """Reports `dataset i/N, phase, elapsed` as a spinner on a terminal and as log lines elsewhere."""

    def __init__(
        self, console: Console, total: int, enabled: bool = True, live: bool = True, label: str = ""
    ):
        self.console = console
        self.total = total
        self.enabled = enabled
        self.live = live  # one live status line at a time: off when engine groups run side by side
        self.label = f"{label} " if label else ""
        self.started = time.monotonic()
        self._status = None

    def elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60:d}:{seconds % 60:02d}"

    def log(self, message: str) -> None:
        if self.enabled:
            self.console.print(f"[{self.elapsed()}] {self.label}{message}")

    @contextmanager
    def phase(self, message: str, index: Optional[int] = None) -> Iterator[None]:
        prefix = f"dataset {index}/{self.total} · " if index is not None else ""
        self.log(f"{prefix}{message}")
        if self.enabled and self.live and self.console.is_terminal:
            with self.console.status(f"{prefix}{message} (started at {self.elapsed()})"):
                yield
        else:
            yield
