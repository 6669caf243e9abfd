"""Process-group and log helpers shared by the engine and the evaluator code."""
from __future__ import annotations

import os
import re
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def signal_group(pgid: int, sig: int) -> None:
    """Signal a process group we started (never anything found by name)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log, without terminal colour codes."""
    try:
        return "\n".join(_ANSI.sub("", path.read_text(errors="replace")).splitlines()[-lines:])
    except OSError:
        return ""
