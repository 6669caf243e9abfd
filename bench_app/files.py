"""File I/O used by every stage: atomic writes, YAML, and log tails."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml

from .redact import scrub_text

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def atomic_write(path: Path, text: str, secrets: Iterable[str] = (), mode: Optional[int] = None) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file; secrets scrubbed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = scrub_text(text, secrets)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# libyaml's safe dumper/loader when PyYAML has it (same documents, ~10x faster than pure Python).
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump_yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, default_flow_style=False, width=120
    )


def read_yaml(path: Path) -> Any:
    with open(path) as handle:
        return yaml.load(handle, Loader=_LOADER)


def read_yaml_if_exists(path: Path, default: Any = None) -> Any:
    return read_yaml(path) if path.exists() else default


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log, without terminal colour codes."""
    try:
        return "\n".join(_ANSI.sub("", path.read_text(errors="replace")).splitlines()[-lines:])
    except OSError:
        return ""
