"""The AISBench task host as an evaluation session: one host per engine group (aisbench_host.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from bench_app.common.errors import EvaluationError
from bench_app.evaluators.aisbench.task import HOST_SCRIPT
from bench_app.evaluators.base import TIMED_OUT, EvaluationSession, EvaluationTask, Evaluator
from bench_app.evaluators.task_host import TaskHost


class TaskHostSession(EvaluationSession):
    """One AISBench task host for the datasets of an engine group: AISBench is imported once, while the
    server starts, instead of once per dataset plus twice per subset (aisbench_host.py). A host that
    dies, times out or is stopped fails only the dataset it was running; the next one starts a new
    host."""

    def __init__(self, evaluator: Evaluator, log_file: Path):  # an AisbenchEvaluator
        super().__init__(evaluator)
        self.log_file = log_file
        self.host: Optional[TaskHost] = None
        try:
            self._start_host()
        except EvaluationError:
            pass  # tried again by the first dataset, which then fails with the reason

    def _start_host(self) -> None:
        evaluator = self.evaluator
        # HF libraries read HF_HOME when imported, i.e. once for the host: keep it inside the run.
        env = evaluator.environment(self.log_file.parent.parent)
        host = TaskHost(
            [evaluator.install.python, str(Path(__file__).with_name(HOST_SCRIPT))],
            env,
            self.log_file,
            evaluator.label,
        )
        host.start()
        self.host = host  # only a started host

    def run(self, task: EvaluationTask, timeout_s: float, stop_reason: Callable[[], Optional[str]]) -> None:
        if self.host is None or not self.host.alive():
            self._start_host()
        # The host runs `ais_bench` or the samples script in a fork: it is sent their arguments.
        arguments = task.argv[len(self.evaluator.command) :] if task.program == "main" else task.argv[2:]
        try:
            code = self.host.run(
                task.program,
                arguments,
                task.work_dir,
                task.env,
                task.log_file,
                timeout_s,
                stop_reason,
            )
        except EvaluationError as error:
            self.host = None  # stopped by TaskHost.run
            # Timed out, or the host died: say in which of AISBench's tasks (a stop from outside, e.g. the
            # server died, says it all).
            if task.program == "main" and (error.reason.startswith(TIMED_OUT) or "task host" in error.reason):
                where, log_tail = self.evaluator.stopped_during(task)
                raise EvaluationError(error.reason + where, log_tail or error.log_tail) from None
            raise
        if code != 0:
            raise self.evaluator.exit_failure(task, code)

    def close(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None
