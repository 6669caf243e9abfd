"""The relay's one writer thread: record lines and request-cache entries, committed in batches.

Each job is a list of operations and a callback called once they are written (lines flushed to the OS, the
cache transaction committed); the jobs that queue up while a batch is written go together in the next one,
so one commit serves many requests and none waits behind another's. An answer is handed to the evaluator
only from that callback: whatever the evaluator was given survives the process being killed.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from bench_app.records.cache import RequestCache


class RecordWriter:
    """Operations: ("line", text) appends to the current file; ("put", key, engine, response JSON) stores
    an answer; ("touch", key) marks one used; ("switch", path or None) starts another file."""

    def __init__(self, cache: Optional[RequestCache]):
        self.cache = cache
        self._jobs: queue.Queue[Optional[Tuple[List[tuple], Callable[[], None]]]] = queue.Queue()
        self._file = None
        self.error: Optional[str] = None
        self._thread = threading.Thread(target=self._loop, name="relay-writer", daemon=True)
        self._thread.start()

    def submit(self, operations: List[tuple], done: Callable[[], None]) -> None:
        self._jobs.put((operations, done))

    def call(self, operations: List[tuple]) -> None:
        """Submit and wait until written (for callers outside the event loop)."""
        written = threading.Event()
        self.submit(operations, written.set)
        written.wait()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            jobs = [self._jobs.get()]
            while True:
                try:
                    jobs.append(self._jobs.get_nowait())
                except queue.Empty:
                    break
            waiting = [job for job in jobs if job is not None]
            try:
                self._write(waiting)
            finally:  # whatever failed, nobody waits for ever: the failure is in self.error
                for _, callback in waiting:
                    callback()
            if None in jobs:
                self._guarded(self._switch, None)
                return

    def _write(self, jobs) -> None:
        lines: List[str] = []
        puts: List[Tuple[str, str, str]] = []
        touched: List[str] = []
        for operations, _ in jobs:
            for operation in operations:
                kind = operation[0]
                if kind == "line":
                    lines.append(operation[1])
                elif kind == "put":
                    puts.append(operation[1:])
                elif kind == "touch":
                    touched.append(operation[1])
                elif kind == "switch":  # lines before it belong to the file before it
                    self._guarded(self._flush, lines)
                    lines = []
                    self._guarded(self._switch, operation[1])
        if self.cache is not None and (puts or touched):
            self._guarded(self.cache.write_many, puts, touched)
        self._guarded(self._flush, lines)

    def _guarded(self, write: Callable[..., None], *args) -> None:
        """One write; a failure (a full disk, a locked cache) is kept for the run to report, and the other
        writes of the batch still happen."""
        try:
            write(*args)
        except Exception as error:  # noqa: BLE001 - reported by the run (Relay.write_error)
            self.error = f"{type(error).__name__}: {error}"

    def _flush(self, lines: List[str]) -> None:
        if lines and self._file is not None:
            self._file.write("".join(lines))
            self._file.flush()

    def _switch(self, path: Optional[Path]) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the next switch
