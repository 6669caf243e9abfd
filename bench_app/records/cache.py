"""The request cache: every answer the server gave, keyed by everything that decides it.

A key is the engine's fingerprint (bench_app.run.planning.identity: its effective engine arguments, the
rope override among them, and the content of every file that shapes the prompt or the defaults: tokenizer,
chat template, generation config, config.json, with the weights' identity) with the whole request body
(messages, sampling settings, seed, max tokens, chat template kwargs). Each engine configuration's identity
is kept beside its answers, so a run that finds none of its own can say what changed since the answers it
did not reuse (run.planning.identity.why_not_reused).
The relay answers a request from here when the key is known, and stores every new answer as it arrives,
so an interrupted dataset resumes by re-sending only what has no answer, and an identical rerun asks the
server nothing.
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
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

# 2: answers are stored zlib-compressed (a reasoning answer shrinks 3-5x); rows of 1 (plain JSON) still read.
CACHE_SCHEMA_VERSION = 2


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
                "CREATE TABLE IF NOT EXISTS engines "
                "(fingerprint TEXT PRIMARY KEY, identity TEXT, stored REAL)"
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

    def remember_engine(self, fingerprint: str, identity: Mapping[str, Any]) -> None:
        """Keep an engine configuration's identity beside its answers (what a later miss is explained by)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO engines VALUES (?, ?, ?)",
                (fingerprint, json.dumps(identity, sort_keys=True, default=str), time.time()),
            )

    def answered_engines(self) -> Tuple[List[Tuple[str, Dict[str, Any], int]], int]:
        """The engine configurations with answers, newest first: (fingerprint, identity, answers); and how
        many answers no remembered identity covers (stored by an earlier bench_app)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT e.fingerprint, e.identity, COUNT(a.key) FROM engines e JOIN answers a "
                "ON a.engine = e.fingerprint GROUP BY e.fingerprint ORDER BY MAX(a.stored) DESC"
            ).fetchall()
            (unknown,) = self._db.execute(
                "SELECT COUNT(*) FROM answers WHERE engine NOT IN (SELECT fingerprint FROM engines)"
            ).fetchone()
        return [(engine, json.loads(text), count) for engine, text, count in rows], unknown

    def engine_identities(self) -> List[Tuple[Dict[str, Any], int, float]]:
        """Each engine configuration with answers: (its identity, {} if unknown; answers; last stored)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT e.identity, COUNT(a.key), MAX(a.stored) FROM answers a LEFT JOIN engines e "
                "ON a.engine = e.fingerprint GROUP BY a.engine ORDER BY MAX(a.stored)"
            ).fetchall()
        return [(json.loads(text) if text else {}, count, last) for text, count, last in rows]

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
