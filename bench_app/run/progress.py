"""Progress output: a live rich status line on a terminal, plain timestamped lines otherwise."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, Optional

from rich.console import Console
from rich.text import Text


def make_console() -> Console:
    # Text is printed as written: no rich markup and no emoji codes in messages, so a path, a reason or an
    # example like 'dataset=[a,b]' or ':smile:' is never swallowed or mistaken for a tag (styled labels
    # use styled() below). Plain lines (no colours, no cursor tricks) when stdout is a file or a pipe.
    literal = dict(highlight=False, soft_wrap=True, emoji=False, markup=False)
    return (
        Console(**literal)
        if sys.stdout.isatty()
        else Console(**literal, force_terminal=False, no_color=True, width=200)
    )


def styled(label: str, style: str, rest: str = "") -> Text:
    """`label` in `style`, then `rest` as written (the console itself interprets no markup)."""
    return Text.assemble((label, style), rest)


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
    def phase(self, message: str, index: Optional[int] = None) -> Iterator[Phase]:
        prefix = f"dataset {index}/{self.total} · " if index is not None else ""
        self.log(f"{prefix}{message}")
        text = f"{prefix}{message} (started at {self.elapsed()})"
        if self.enabled and self.live and self.console.is_terminal:
            with self.console.status(Text(text)) as status:  # a str would be read as markup
                yield Phase(self, text, status)
        else:
            yield Phase(self, text, None)


class Phase:
    """A running phase; update(detail) shows how far it is: on the live status line at once, or as a
    plain line at most every PLAIN_EVERY_S (CI and SLURM job logs)."""

    PLAIN_EVERY_S = 30.0

    def __init__(self, progress: Progress, text: str, status):
        self.progress, self.text, self.status = progress, text, status
        self.last_plain = time.monotonic()

    def update(self, detail: str) -> None:
        if self.status is not None:
            self.status.update(Text(f"{self.text} · {detail}"))
        elif self.progress.enabled and time.monotonic() - self.last_plain >= self.PLAIN_EVERY_S:
            self.last_plain = time.monotonic()
            self.progress.log(f"{self.text.split(' (started')[0]}: {detail}")


class RequestProgress:
    """Prompts done / total, request rate, elapsed time and ETA of one dataset's evaluation, from the
    server's own finished-request counters (read at most every POLL_S)."""

    POLL_S = 2.0

    def __init__(self, counters, total: Optional[int], show):
        self.counters, self.total, self.show = counters, total, show
        self.before = counters()
        self.started = self.last_poll = time.monotonic()
        self.done = 0

    def poll(self) -> None:
        now = time.monotonic()
        if now - self.last_poll < self.POLL_S:
            return
        self.last_poll = now
        current = self.counters()
        self.done = int(sum(current.get(k, 0) - self.before.get(k, 0) for k in current))
        self.show(self.describe(now - self.started))

    def describe(self, elapsed: float) -> str:
        rate = self.done / elapsed if elapsed > 0 else 0.0
        text = f"{self.done}/{self.total if self.total else '?'} prompts, {rate:.2f} req/s, {elapsed:.0f} s"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {(self.total - self.done) / rate:.0f} s"
        return text
