"""The request cache: every answer the server gave, keyed by everything that decides it.

A key is the engine's fingerprint (its effective engine arguments, the rope override among them, and the
model files' identity: config.json and the weights' index or names and sizes, or the hub revision) with the
whole request body (messages, sampling settings, seed, max tokens, chat template kwargs). The relay answers
a request from here when the key is known, and stores every new answer as it arrives, so an interrupted
dataset resumes by re-sending only what has no answer, and an identical rerun asks the server nothing.
Streamed requests are never cached: their latency is the measurement.

One SQLite file (standard library; safe for the runs of a sweep that share it). It is inside the run folder
unless execution.cache names a shared one. A cache that cannot be read, or was written by a newer
bench_app, is set aside with a warning: the run goes on without it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

from bench_app.common.files import file_sha256
from bench_app.config.hub import model_folder

# 2: answers are stored zlib-compressed (a reasoning answer shrinks 3-5x); rows of 1 (plain JSON) still read.
CACHE_SCHEMA_VERSION = 2
CACHE_FILE = "requests.sqlite"


def model_identity(model_path: str) -> Dict[str, Any]:
    """What tells a model's files apart: its path, config.json's hash, and the weights' index hash or
    the weight files' names and sizes (a hub snapshot's folder name is its revision)."""
    folder = model_folder(model_path)
    if folder is None:
        return {"path": model_path}
    identity: Dict[str, Any] = {"path": model_path, "config": file_sha256(folder / "config.json")}
    indexes = sorted(folder.glob("*.index.json"))
    if indexes:
        identity["weights_index"] = {p.name: file_sha256(p) for p in indexes}
    else:
        identity["weights"] = {p.name: p.stat().st_size for p in sorted(folder.glob("*.safetensors"))}
    if "snapshots" in folder.parts:
        identity["revision"] = folder.name
    return identity


def engine_fingerprint(engine_args: Mapping[str, Any]) -> str:
    record = {"engine_args": dict(engine_args), "model": model_identity(str(engine_args.get("model_path")))}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


class CacheError(Exception):
    """The cache file cannot be used (corrupt, or from a newer bench_app)."""


class RequestCache:
    """Answers by key. Reads use a connection of the reading thread's own (WAL: readers never wait for
    the writer); writes are serialised by one lock and go in whole batches (write_many)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._readers = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
            # A commit is in the OS before the evaluator has the answer: it survives the process being
            # killed; only a power loss could drop the last ones (no fsync per commit on the hot path).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, engine TEXT, stored REAL, "
                "used REAL, response TEXT)"
            )
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(CACHE_SCHEMA_VERSION),)
            )
            (version,) = self._db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if int(version) < CACHE_SCHEMA_VERSION:  # compressed rows from now on: older readers must refuse
                self._db.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(CACHE_SCHEMA_VERSION),)
                )
        except sqlite3.DatabaseError as error:
            raise CacheError(f"request cache {path} cannot be read ({error})") from None
        if int(version) > CACHE_SCHEMA_VERSION:
            raise CacheError(
                f"request cache {path} was written by a newer bench_app (schema {version}, this one reads "
                f"{CACHE_SCHEMA_VERSION})"
            )
        self._readers.db = self._db
        self._connections = [self._db]

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)

    @staticmethod
    def key(engine: str, body: Mapping[str, Any]) -> str:
        request = {k: v for k, v in body.items() if k not in ("stream_options",)}
        return hashlib.sha256(json.dumps([engine, request], sort_keys=True, default=str).encode()).hexdigest()

    def lookup(self, key: str) -> Optional[Dict[str, Any]]:
        """The stored answer, or None; marks nothing as used (write_many does, in the writer's batch)."""
        reader = getattr(self._readers, "db", None)
        if reader is None:
            reader = self._readers.db = self._connect()
            with self._lock:
                self._connections.append(reader)
        row = reader.execute("SELECT response FROM answers WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        stored = row[0]
        return json.loads(zlib.decompress(stored) if isinstance(stored, bytes) else stored)

    def get(self, key: str) -> Optional[Dict[str, Any]]:
        answer = self.lookup(key)
        if answer is not None:
            self.write_many([], [key])
        return answer

    def put(self, key: str, engine: str, response: Dict[str, Any]) -> None:
        self.write_many([(key, engine, json.dumps(response, ensure_ascii=False))], [])

    def write_many(self, answers: Sequence[Tuple[str, str, str]], used: Sequence[str] = ()) -> None:
        """Store answers (key, engine, response JSON) and mark keys used, in one transaction."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)",
                    [(key, engine, now, now, _packed(response)) for key, engine, response in answers],
                )
                self._db.executemany("UPDATE answers SET used = ? WHERE key = ?", [(now, k) for k in used])
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def has_engine(self, engine: str) -> bool:
        """Whether any answer of this engine configuration is stored."""
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM answers WHERE engine = ? LIMIT 1", (engine,)).fetchone()
                is not None
            )

    def stats(self) -> Dict[str, Any]:
        with self._lock:
            count, engines, oldest, newest = self._db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT engine), MIN(stored), MAX(stored) FROM answers"
            ).fetchone()
        return {
            "answers": count,
            "engines": engines,
            "oldest": oldest,
            "newest": newest,
            "bytes": self.path.stat().st_size,
        }

    def prune(self, older_than_s: float) -> int:
        """Remove the answers not used for older_than_s seconds; how many."""
        with self._lock:
            done = self._db.execute("DELETE FROM answers WHERE used < ?", (time.time() - older_than_s,))
            self._db.execute("VACUUM")
        return done.rowcount

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()


def _packed(response: str) -> bytes:
    return zlib.compress(response.encode(), 6)


def open_cache(path: Path, warn: Callable[[str], None]) -> Optional[RequestCache]:
    """The cache at path, or None (with the warning said) when it cannot be used."""
    try:
        return RequestCache(path)
    except CacheError as error:
        warn(f"{error}; this run goes on without it (move it away to start a new one)")
        return None
