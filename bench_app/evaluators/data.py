"""A dataset's data files on this machine, whatever the evaluator: present or not, how many, how big, and a
hash of their content (every file's name and bytes, in sorted order). Each file's own hash is kept in
`.cache/datasets/hashes.json` by size and modification time, so checking a large dataset again reads nothing
that has not changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from bench_app.common.files import atomic_write, file_sha256
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.records.documents import DataRecord

HASH_CACHE = PROJECT_ROOT / ".cache" / "datasets" / "hashes.json"


@dataclass
class DataFiles:
    """One dataset's data on this machine."""

    path: str  # the folder or file AISBench reads
    declared: str  # as the config or data_path says it (relative: to the datasets root)
    source: str  # data_path | config <file>
    present: bool = False
    files: int = 0
    bytes: int = 0
    sha256: Optional[str] = None  # of every file's name and content; None when missing
    empty_files: List[str] = field(default_factory=list)  # present but empty: a download cut short

    @property
    def complete(self) -> bool:
        return self.present and self.files > 0 and not self.empty_files

    def problem(self) -> Optional[str]:
        if not self.present:
            return f"{self.path} does not exist ({self.source}: {self.declared})"
        if self.files == 0:
            return f"{self.path} holds no files"
        if self.empty_files:
            return f"{self.path}: empty file(s) {', '.join(self.empty_files[:3])} (a download cut short?)"
        return None

    def record(self) -> DataRecord:
        """What the run records of it (metadata.yaml, per_dataset/<dataset>.yaml)."""
        return DataRecord(path=self.path, files=self.files, bytes=self.bytes, sha256=self.sha256)


def measure(found: DataFiles, path: Path, hashes: Dict[str, list]) -> None:
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        key = str(file.resolve())
        known = hashes.get(key)
        if known and known[0] == stat.st_size and known[1] == stat.st_mtime_ns:
            content = known[2]
        else:
            content = file_sha256(file)
            hashes[key] = [stat.st_size, stat.st_mtime_ns, content]
        relative = file.name if file == path else str(file.relative_to(path))
        digest.update(f"{relative}\0{content}\n".encode())
        found.bytes += stat.st_size
        if stat.st_size == 0:
            found.empty_files.append(relative)
    found.files = len(files)
    found.sha256 = digest.hexdigest() if files else None


def load_hashes() -> Dict[str, list]:
    try:
        return json.loads(HASH_CACHE.read_text())
    except (OSError, ValueError):
        return {}


def save_hashes(hashes: Dict[str, list]) -> None:
    try:
        HASH_CACHE.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(HASH_CACHE, json.dumps(hashes))
    except OSError:
        pass  # a cache: the next check reads the files again


def measure_path(path: Path, declared: str = "", source: str = "") -> DataFiles:
    """The data files at path, measured (the hash cache read and updated)."""
    found = DataFiles(str(path), declared or str(path), source or "path", present=path.exists())
    if found.present:
        known = load_hashes()
        before = len(known)
        measure(found, path, known)
        if len(known) != before:
            save_hashes(known)
    return found
