"""A task host: a long-lived process of the evaluator's environment that has imported the evaluator
once and runs the command lines it is sent, each in a fork of itself (see aisbench_host.py).

Protocol: one JSON request a line on its stdin, {"program", "argv", "cwd", "env", "log"}; on its stdout a
{"ready": true} line once imported, then one {"exit": code} line per request, in order. Its own
stderr goes to its log. It runs as a ProcessGroup: stopping it stops the request running in it.
"""

from __future__ import annotations

import json
import os
import select
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from bench_app.common.errors import EvaluationError
from bench_app.common.files import tail
from bench_app.common.processes import ProcessGroup
from bench_app.evaluators.base import reason_to_stop


class TaskHost:
    def __init__(self, argv: List[str], env: Dict[str, str], log_file: Path, label: str):
        self.group = ProcessGroup(argv, log_file, env=env, cwd=log_file.parent, pipes=True)
        self.log_file = log_file
        self.label = label
        self.ready = False
        self._pending = b""

    def start(self) -> None:
        try:
            self.group.start()
        except OSError as error:
            raise EvaluationError(f"cannot start the {self.label} task host: {error}") from None

    def alive(self) -> bool:
        return self.group.running()

    def _next_answer(self, wait_s: float) -> Optional[dict]:
        """The next answer line within wait_s, skipping the ready line; None if none came."""
        stream = self.group.process.stdout
        deadline = time.monotonic() + wait_s
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                answer = json.loads(line)
                if answer.get("ready"):
                    self.ready = True
                    continue
                return answer
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([stream], [], [], left)[0]:
                return None
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:  # the host is gone
                return None
            self._pending += chunk

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until the host has imported what it preloads (True), or timeout_s passed or it died."""
        deadline = time.monotonic() + timeout_s
        while not self.ready and self.alive() and time.monotonic() < deadline:
            if self._next_answer(0.2) is not None:
                raise EvaluationError(f"the {self.label} task host answered before any request")
        return self.ready

    def run(
        self,
        program: str,
        argv: List[str],
        cwd: Path,
        env: Dict[str, str],
        log_file: Path,
        timeout_s: float,
        stop_reason: Callable[[], Optional[str]],
    ) -> int:
        """Run one command line of `program` (what the host knows: "main", "samples") in the host; its
        exit code. Raises EvaluationError (the host is then
        stopped) when it times out, stop_reason() says why, or the host dies."""
        request = {"program": program, "argv": argv, "cwd": str(cwd), "env": env, "log": str(log_file)}
        try:
            self.group.process.stdin.write((json.dumps(request) + "\n").encode())
            self.group.process.stdin.flush()
        except OSError:
            self.stop()
            raise EvaluationError(f"the {self.label} task host is gone", tail(self.log_file)) from None
        deadline = time.monotonic() + timeout_s
        while True:
            answer = self._next_answer(0.2)
            if answer is not None:
                return int(answer["exit"])
            problem = reason_to_stop(deadline, timeout_s, stop_reason)
            if problem is None and not self.alive():
                problem = f"the {self.label} task host exited with code {self.group.exit_code()}"
            if problem:
                self.stop()
                raise EvaluationError(problem, tail(log_file) or tail(self.log_file))

    def stop(self) -> None:
        self.group.stop()
