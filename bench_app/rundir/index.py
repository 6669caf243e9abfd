"""The run history: every run folder under a root (outputs/ by default), as rows of a SQLite index.

The folders are the truth; the index (`<root>/.bench_app_runs.sqlite`) only caches what they say. Each
listing walks the root and compares every run's signature (the size and mtime of results.yaml and
metadata.yaml) with the indexed one: a new or changed folder is read again, a vanished one dropped. A
missing, unreadable or older-format index is simply rebuilt. When a run ends it records itself
(`record`), so the next listing reads nothing.

A run folder is a folder with configs/config_snapshot.yaml; sweeps are folders of run folders, walked
to a few levels (outputs/sweeps/<time>/<job>).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple

from bench_app.common.errors import UserError
from bench_app.common.processes import process_alive
from bench_app.records.documents import RunResults, ServedModel
from bench_app.records.folder import RunFolder, headline
from bench_app.records.names import RUNS_INDEX_FILE

INDEX_VERSION = 2  # the rows' layout; another one is rebuilt (2: where execution.decide stopped a dataset)
WALK_DEPTH = 4  # root/<run>, root/sweeps/<time>/<job>
_SKIP = {"configs", "logs", ".hydra", "tmp"}


@dataclass
class RunRow:
    path: str
    name: str
    model: str
    precision: str  # quantization/dtype, e.g. "bfloat16", "ascend/bfloat16"
    status: str
    started: str  # ISO time the run started
    commit: str
    scores: Dict[str, Optional[float]]  # dataset -> headline score (None when it failed)
    owner: str = ""  # "<host> <pid> <start time>" of a run still marked running: alive or killed?
    # datasets execution.decide stopped before their last stage: "stage k of K" (their scores are partial)
    stopped: Dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def model_identity(vllm: Any) -> ServedModel:
    """What results.yaml records of the served model: a name, and its precision (from the resolved
    config's VllmArgs, or a snapshot's `vllm:` mapping)."""

    def value(key: str) -> Any:
        return vllm.get(key) if isinstance(vllm, Mapping) else getattr(vllm, key, None)

    path = str(value("model_path") or "")
    return ServedModel(
        name=value("served_model_name") or Path(path).name or "?",
        path=path,
        dtype=value("dtype"),
        quantization=value("quantization"),
        kv_cache_dtype=value("kv_cache_dtype"),
    )


def precision_label(model: ServedModel) -> str:
    parts = [str(value) for value in (model.quantization, model.dtype) if value]
    if model.kv_cache_dtype:
        parts.append(f"kv {model.kv_cache_dtype}")
    return "/".join(parts) or "-"


def _headline_score(metrics: Dict[str, Any]) -> Optional[float]:
    main = headline(metrics)
    return None if main is None else round(main[1], 4)


_ROW_KEYS = ("schema_version", "benchmark", "model", "status", "datasets")


def results_essentials(text: str) -> str:
    """results.yaml cut to what a row shows: the top-level keys above, and of each dataset its status
    and metrics without subsets. It relies on the block style bench_app writes (two-space indents; a
    long or multi-line value continues deeper than its key), and makes a cold listing ~7x faster: YAML's
    object construction is most of it. read_row falls back to the whole file if the cut does not parse."""
    kept = []
    top, keep_top, keep_field, keep_sub = "", True, True, True
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        indent = len(line) - len(stripped)
        if stripped.strip():
            if indent == 0:
                top = stripped.split(":", 1)[0]
                keep_top, keep_field, keep_sub = top in _ROW_KEYS, True, True
            elif top == "datasets" and indent == 2:  # a dataset
                keep_field = keep_sub = True
            elif top == "datasets" and indent == 4:  # one of its fields
                keep_field, keep_sub = stripped.split(":", 1)[0] in ("status", "metrics", "decided"), True
            elif top == "datasets" and indent == 6 and keep_field:  # a metric, or where it was decided
                keep_sub = not stripped.startswith(("subsets:", "looks:"))
        if keep_top and keep_field and keep_sub:
            kept.append(line)
    return "".join(kept)


def read_row(run_dir: Path, root: Path) -> RunRow:
    """One run folder -> its row: results.yaml and metadata.yaml; the snapshot only for folders whose
    results.yaml does not name the model (written before it did, or no results yet)."""
    folder = RunFolder(run_dir)
    try:
        results = folder.read_results(cut=results_essentials)
    except UserError:
        results = RunResults(status="unreadable (newer bench_app)")  # listed, never fails the listing
    metadata = folder.read_metadata()
    model = results.model
    if not (model.name or model.path):
        model = model_identity(folder.read_snapshot().get("vllm") or {})
    run = metadata.run
    status = results.status or run.status or "unknown"
    scores = {
        short: _headline_score(entry.metrics) if entry.status == "ok" else None
        for short, entry in results.datasets.items()
    }
    return RunRow(
        path=str(run_dir),
        name=os.path.relpath(run_dir, root),  # a sweep's job: sweeps/<time>/<job>
        model=str(model.name or "?"),
        precision=precision_label(model),
        status=str(status),
        started=str(results.benchmark.timestamp or run.started or ""),
        commit=str(metadata.git.commit or "")[:12],
        scores=scores,
        owner=f"{run.host} {run.pid} {run.pid_start}" if status == "running" else "",
        stopped={
            short: f"stage {entry.decided.stage} of {entry.decided.stages}"
            for short, entry in results.datasets.items()
            if entry.decided and entry.decided.partial
        },
    )


def _signature(run_dir: Path) -> str:
    parts = []
    folder = RunFolder(run_dir)
    for path in (folder.results_file, folder.metadata_file):
        try:
            stat = os.stat(path)
            parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
        except OSError:
            parts.append("-")
    return " ".join(parts)


def walk(root: Path, depth: int = WALK_DEPTH) -> Iterator[Path]:
    """Every run folder under root (not inside another run folder), in no particular order."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") or entry.name in _SKIP or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        if RunFolder(Path(entry.path)).is_run_folder():
            yield path
        elif depth > 1:
            yield from walk(path, depth - 1)


class RunIndex:
    """The SQLite cache of one root's runs."""

    def __init__(self, root: Path):
        self.root = root.resolve()
        self.file = root / RUNS_INDEX_FILE
        self.db = self._open()

    def _open(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError:  # not a database (truncated, overwritten): it is only a cache
            self.file.unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.file, timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        found = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        if found is None or found[0] != str(INDEX_VERSION):
            db.execute("DROP TABLE IF EXISTS runs")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (str(INDEX_VERSION),))
        db.execute("CREATE TABLE IF NOT EXISTS runs (path TEXT PRIMARY KEY, signature TEXT, row TEXT)")
        db.commit()
        return db

    def close(self) -> None:
        self.db.close()

    def refresh(self) -> Tuple[int, int]:
        """Bring the index in line with the folders; returns (read again, dropped)."""
        indexed = dict(self.db.execute("SELECT path, signature FROM runs"))
        found = {str(p): p for p in walk(self.root)}
        changed = []
        for key, path in found.items():
            signature = _signature(path)
            if indexed.get(key) != signature:
                changed.append((key, signature, json.dumps(read_row(path, self.root).to_dict())))
        gone = [(key,) for key in indexed if key not in found]
        if changed or gone:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?)", changed)
                self.db.executemany("DELETE FROM runs WHERE path = ?", gone)
        return len(changed), len(gone)

    def record(self, run_dir: Path) -> None:
        """A run that just ended: its row, now."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?)",
                (str(run_dir), _signature(run_dir), json.dumps(read_row(run_dir, self.root).to_dict())),
            )

    def rows(self) -> List[RunRow]:
        """The indexed rows; a run marked running is checked now: killed when its process is gone."""
        rows = [RunRow(**json.loads(text)) for (text,) in self.db.execute("SELECT row FROM runs")]
        for row in rows:
            if row.status == "running":
                host, pid, start = (row.owner.split(" ") + ["", "", ""])[:3]
                here = host == socket.gethostname()
                if here and not (pid.isdigit() and process_alive(int(pid), start)):
                    row.status = "killed"
        return rows


def index_root_of(run_dir: Path) -> Path:
    """Where a run's index lives: the nearest ancestor (up to the walk's depth) that has one, else the
    run's parent (outputs/ for outputs/<run>)."""
    for parent in list(run_dir.resolve().parents)[:WALK_DEPTH]:
        if (parent / RUNS_INDEX_FILE).is_file():
            return parent
    return run_dir.resolve().parent


def record_run(run_dir: Path) -> Optional[str]:
    """Index a run that ended; the reason when that could not be done (it never fails the run)."""
    try:
        index = RunIndex(index_root_of(run_dir))
        index.record(run_dir.resolve())
        index.close()
    except (OSError, sqlite3.Error) as error:
        return f"run history index not updated: {error}"
    return None


def select(
    rows: List[RunRow],
    model: Optional[str] = None,
    dataset: Optional[str] = None,
    status: Optional[str] = None,
    since: Optional[str] = None,
) -> List[RunRow]:
    """The rows that match every filter given (substring of model and dataset), newest first."""
    chosen = [
        row
        for row in rows
        if (model is None or model.lower() in f"{row.model} {row.precision}".lower())
        and (dataset is None or any(dataset.lower() in short.lower() for short in row.scores))
        and (status is None or row.status == status or (status == "ok" and row.status == "completed"))
        and (since is None or row.started >= since)
    ]
    return sorted(chosen, key=lambda row: (row.started, row.path), reverse=True)
