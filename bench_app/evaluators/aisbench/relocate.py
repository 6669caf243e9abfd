"""Where the installed AISBench keeps what a carried file names: a module that moved between versions, a
name now defined in another module, and which of AISBench's own modules a carried file mirrors. Found by
reading the package's files (importing AISBench takes seconds and may fail on the very import asked about).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence

PACKAGE = "ais_bench"
# mmengine's lazy imports: "Failed to import M in FILE, line N for No module named 'X'" and
# "Failed to import NAME from M in FILE, line N"; plain Python's own messages otherwise.
_LAZY_MODULE = re.compile(r"Failed to import (\S+) in \S+, line \d+ for No module named")
_LAZY_NAME = re.compile(r"Failed to import (\w+) from (\S+) in \S+, line \d+")
_NO_MODULE = re.compile(r"No module named '([^']+)'")
_NO_NAME = re.compile(r"cannot import name '(\w+)' from '([^']+)'")


@dataclass
class Mend:
    """One import line rewritten: `line` (1-based) of `file`, from `old` to `new`; `applies` is False
    when the line imports more than the rewrite covers (then `new` is the line to add by hand)."""

    file: Path
    line: int
    old: str
    new: str
    why: str
    applies: bool = True


def package_root(command: Sequence[str]) -> Optional[Path]:
    """site-packages/ais_bench of the environment whose console script is command[0]."""
    found = sorted(Path(command[0]).parent.parent.glob(f"lib/python3*/site-packages/{PACKAGE}"))
    return found[0] if found else None


@lru_cache(maxsize=4)
def modules(root: Path) -> Dict[str, Path]:
    """dotted module name -> its file, for every module of the package at root."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = path.relative_to(root.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def defines(path: Path, name: str) -> bool:
    text = path.read_text(encoding="utf-8", errors="replace")
    pattern = rf"^(?:def|class)\s+{re.escape(name)}\b|^{re.escape(name)}\s*[:=]|^from \S+ import .*\b{name}\b"
    return re.search(pattern, text, re.MULTILINE) is not None


def mirrored_module(relative: Path, root: Path) -> Optional[str]:
    """The module of `ais_bench/benchmark/` a carried file stands in for: the longest tail of its path
    (a folder and the file at least) that is a module there, e.g. patch/datasets/gsm8k.py ->
    ais_bench.benchmark.datasets.gsm8k. Dataset configs are not modules to replace: tasks name them."""
    parts = relative.with_suffix("").parts
    known = modules(root)
    for start in range(len(parts) - 1):
        tail = [p for p in parts[start:] if p != "__init__"]
        for prefix in (["ais_bench", "benchmark"], ["ais_bench"], []):
            name = ".".join(prefix + tail) if tail[: len(prefix)] != prefix else ".".join(tail)
            if name in known and not name.startswith(f"{PACKAGE}.benchmark.configs."):
                return name
    return None


def _imported_names(line: str) -> List[str]:
    found = re.match(r"\s*from\s+\S+\s+import\s+\(?([^#)]*)", line)
    names = found.group(1).split(",") if found else []
    return [n.strip().split(" as ")[0].strip() for n in names if n.strip()]


def mend_for(error: str, file: Path, line: int, root: Path) -> Optional[Mend]:
    """The rewrite of the import that broke (as the evaluator reported it), where the installed package
    has the module or the name elsewhere; None when it has it nowhere (or in several places alike)."""
    try:
        text = file.read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError):
        return None
    known = modules(root)
    moved = _LAZY_MODULE.search(error) or _NO_MODULE.search(error)
    if moved:
        missing = moved.group(1)
        if not missing.startswith(PACKAGE) or missing not in text:
            return None
        last = missing.rsplit(".", 1)[-1]
        names = _imported_names(text)
        candidates = [
            m
            for m, path in known.items()
            if m.rsplit(".", 1)[-1] == last and all(defines(path, n) for n in names)
        ]
        if len(candidates) != 1:
            return None
        why = f"AISBench {missing} is {candidates[0]} in the installed version"
        return Mend(file, line, text, text.replace(missing, candidates[0]), why)
    lost = _LAZY_NAME.search(error) or _NO_NAME.search(error)
    if lost:
        name, module = lost.group(1), lost.group(2)
        if not module.startswith(PACKAGE) or module not in text:
            return None
        candidates = sorted(
            (m for m, path in known.items() if m != module and defines(path, name)),
            key=lambda m: -difflib.SequenceMatcher(None, m, module).ratio(),
        )
        if not candidates:
            return None
        indent = text[: len(text) - len(text.lstrip())]
        new = f"{indent}from {candidates[0]} import {name}"
        why = f"the installed AISBench defines {name} in {candidates[0]}"
        return Mend(file, line, text, new, why, applies=_imported_names(text) == [name])
    return None


def same_data_configs(name: str, stock: Dict[str, Path]) -> List[str]:
    """Stock dataset configs that read the data a config of this name would: those reading the data
    paths of the family folder the name starts with (gpqa_diamond_... -> configs/datasets/gpqa/), the
    closest names first."""
    families = sorted({path.parent.name for path in stock.values()}, key=len, reverse=True)
    family = next((f for f in families if name.lower().startswith(f.lower())), None)
    if family is None:
        return []
    data = {path_of(p) for p in stock.values() if p.parent.name == family} - {None}
    same = [n for n, p in stock.items() if p.parent.name == family or path_of(p) in data]
    return sorted(same, key=lambda n: -difflib.SequenceMatcher(None, n, name).ratio())


def path_of(config: Path) -> Optional[str]:
    found = re.search(r"\bpath\s*=\s*['\"]([^'\"]+)", config.read_text(encoding="utf-8", errors="replace"))
    return found.group(1).rstrip("/") if found else None
