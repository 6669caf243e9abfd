"""One dataset's evaluation on a running server (or replica set): the evaluator's run, the server's own
count of the requests as progress, and the result with everything measured of it."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Callable, Dict, Optional

from bench_app.common.errors import EvaluationError
from bench_app.common.files import now_iso
from bench_app.evaluators import Endpoint, EvaluationSession
from bench_app.records.documents import DatasetEntry, PromptCount
from bench_app.run.outcome import note_cut_in_thinking, note_finished_requests
from bench_app.run.planning.plan import DatasetPlan
from bench_app.run.planning.sampling import probe_record
from bench_app.run.progress import RequestProgress
from bench_app.run.serving.live import Live

# The evaluator's own count of failed requests (AISBench's: bench_app.evaluators.aisbench.results).
_EVALUATOR_COUNT = re.compile(r"^\d+ request\(s\) failed\b.*?(?:; see (?P<path>\S+))?$")


def explain_failed_requests(reason: Optional[str], total: int, failures: Dict[str, int]) -> Optional[str]:
    """A failed dataset's reason with why its requests failed, as the relay saw them (the evaluator sees a
    status, not its cause): "4 of 4 requests failed: no answer within ... (5 s)", counted by cause."""
    if not failures:
        return reason
    causes = sorted(failures.items(), key=lambda item: -item[1])
    said = (
        causes[0][0]
        if len(causes) == 1
        else "; ".join(f"{cause} ({n})" for cause, n in causes[:3])
        + (f"; {len(causes) - 3} other cause(s)" if len(causes) > 3 else "")
    )
    summary = f"{sum(failures.values())} of {total} requests failed: {said}"
    found = _EVALUATOR_COUNT.match(reason or "")
    if found:  # the same failures, told better: only where they are listed stays
        return summary + (f"; see {found.group('path')}" if found.group("path") else "")
    return f"{reason}; {summary}" if reason else summary


def expected_prompts(dataset: DatasetPlan) -> Optional[int]:
    """How many requests the dataset sends (prompts x repeats), from its context budget (None without one)."""
    prompts = dataset.context_budget.prompts if dataset.context_budget else None
    return int(prompts) * dataset.evaluator.repeats if prompts else None


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
) -> DatasetEntry:
    result = DatasetEntry(
        name=dataset.name,
        status="failed",
        group=group,
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
        result.repeats = evaluated.samples.repeats
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
        result.prompts = PromptCount(done=sum(result.finished_requests.values()), total=watch.total)
    return result
