"""File I/O used by every stage: atomic writes, YAML, log tails, and the timestamps records carry."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import yaml

from bench_app.common.redact import scrub_text

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _umask() -> int:
    """The process's umask, read without changing it (os.umask sets one to read it: not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def atomic_write(path: Path, text: str, secrets: Iterable[str] = (), mode: Optional[int] = None) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file; secrets scrubbed. The
    file gets the permissions any new file gets (0666 less the umask), not the temporary file's 0600, so a
    teammate reads every file of a run folder alike."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = scrub_text(text, secrets)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
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


def yaml_loads(text: str) -> Any:
    return yaml.load(text, Loader=_LOADER)


def read_yaml(path: Path) -> Any:
    return yaml_loads(Path(path).read_text())


def read_yaml_if_exists(path: Path, default: Any = None) -> Any:
    return read_yaml(path) if path.exists() else default


def first_config_file(group: str, option: str, folders: Iterable[Path]) -> Optional[Path]:
    """<folder>/<group>/<option>.yaml in the first of the config folders (search order) that has it."""
    return next(
        (f / group / f"{option}.yaml" for f in folders if (f / group / f"{option}.yaml").is_file()), None
    )


def copy_with_siblings(path: Path, into: Path, pattern: str = "*.py") -> List[Path]:
    """The file and the files beside it that match pattern (what its relative imports may name),
    copied into `into`; returns the copies."""
    into.mkdir(parents=True, exist_ok=True)
    copies = []
    for source in sorted(path.parent.glob(pattern)):
        shutil.copyfile(source, into / source.name)
        copies.append(into / source.name)
    return copies


def file_sha256(path: Path) -> Optional[str]:
    """The file's sha256 (hex); None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def copy_python_tree(source: Path, into: Path) -> Dict[str, Optional[str]]:
    """Every .py file under source copied to the same place under into; {relative path: sha256}."""
    copied = {}
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(source)
        (into / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, into / relative)
        copied[str(relative)] = file_sha256(path)
    return copied


def now_iso() -> str:
    """Local time to the second, as every record of a run writes it."""
    return datetime.now().isoformat(timespec="seconds")


def plain_text(path: Path) -> str:
    """A log's whole text without terminal colour codes; "" when it cannot be read."""
    try:
        return _ANSI.sub("", path.read_text(errors="replace"))
    except OSError:
        return ""


def tail(path: Path, lines: int = 25) -> str:
    """The last lines of a log, without terminal colour codes."""
    try:
        return "\n".join(_ANSI.sub("", path.read_text(errors="replace")).splitlines()[-lines:])
    except OSError:
        return ""
