"""One dataset's evaluation on a running server (or replica set): the evaluator's run, the server's own
count of the requests as progress, and the result with everything measured of it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from bench_app.common.errors import EvaluationError
from bench_app.common.files import now_iso
from bench_app.evaluators import Endpoint, EvaluationSession
from bench_app.run.live import Live
from bench_app.run.outcome import DatasetResult, note_cut_in_thinking, note_finished_requests
from bench_app.run.plan import DatasetPlan
from bench_app.run.progress import RequestProgress
from bench_app.run.sampling import probe_record


def expected_prompts(dataset: DatasetPlan) -> Optional[int]:
    """How many prompts the dataset sends, from its context budget (None without one)."""
    prompts = (dataset.context_budget or {}).get("prompts")
    return int(prompts) if prompts else None


def evaluate_dataset(
    session: EvaluationSession,
    dataset: DatasetPlan,
    group: int,
    server_started_at: Optional[str],
    live: Live,
    endpoint: Endpoint,
    work_dir: Path,
    timeout_s: float,
    stop_reason: Callable[[], Optional[str]],
    show_progress: Callable[[str], None] = lambda detail: None,
) -> DatasetResult:
    result = DatasetResult(
        dataset.short,
        dataset.name,
        "failed",
        group,
        server_started_at=server_started_at,
        output_dir=str(work_dir),
    )
    started = time.monotonic()
    result.evaluation_started_at = now_iso()
    # Counters of the server as it is now: one started lazily during the dataset counts from its start.
    watch = RequestProgress(lambda: live.server.request_counters(), expected_prompts(dataset), show_progress)
    before = watch.before

    def stop_reason_and_progress() -> Optional[str]:  # polled by the evaluation's wait loop
        watch.poll()
        return stop_reason()

    try:
        evaluated = session.evaluate(
            dataset.short,
            dataset.name,
            dataset.evaluator,
            endpoint,
            work_dir,
            timeout_s,
            stop_reason_and_progress,
        )
        result.status, result.metrics = "ok", evaluated.metrics
        result.samples, result.samples_error = evaluated.samples.count, evaluated.samples.error
        result.reasoning, result.answers = evaluated.samples.reasoning, evaluated.samples.answers
        note_cut_in_thinking(result, dataset)
        result.probe = probe_record(dataset.evaluator, result.metrics)
    except EvaluationError as error:
        result.reason, result.log_tail = error.reason, error.log_tail or None
        if error.samples is not None:
            result.samples, result.samples_error = error.samples.count, error.samples.error
    finally:
        result.evaluation_s = round(time.monotonic() - started, 1)
    note_finished_requests(result, before, live.server.request_counters())
    if result.finished_requests or watch.total:
        result.prompts = {"done": sum(result.finished_requests.values()), "total": watch.total}
    return result
