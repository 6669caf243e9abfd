"""What AISBench left: a dataset counts as done only when its results hold the metric and no request
failed (AISBench exits 0 even when its tasks fail: server down, missing data, failed requests)."""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from bench_app.common.errors import EvaluationError
from bench_app.common.files import plain_text, tail
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators.aisbench.task import LOG_FILE, MODEL_ABBR
from bench_app.evaluators.base import EvaluationResult, exit_description

_PERF_KEYS = {
    "TTFT": "ttft_ms",
    "TPOT": "tpot_ms",
    "ITL": "itl_ms",
    "OutputTokenThroughput": "output_tokens_per_s",
    "Output Token Throughput": "output_tokens_per_s",
    "Request Throughput": "requests_per_s",
    "RequestThroughput": "requests_per_s",
    "E2EL": "e2el_ms",
}


_AVERAGE_OF_RUNS = re.compile(r" \(\d+ runs average\)$")
_MIXED_BY_AISBENCH = re.compile(r"(^|/)(pass|cons)@\d+$")


def _number(value: Any) -> Optional[float]:
    match = re.search(r"-?\d+(\.\d+)?", str(value))
    return float(match.group()) if match else None


def _parse_perf(run_dir: Path) -> Dict[str, Any]:
    """Numbers from AISBench's perf output: per-request stats (CSV, Average column) and totals (JSON)."""
    import csv  # here: a dry run never reads results

    metrics: Dict[str, Any] = {}
    for path in sorted(run_dir.glob("performances/*/*.csv")):
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            continue
        header = rows[0]
        column = next((i for i, cell in enumerate(header) if cell.strip() in ("Average", "Mean")), None)
        for row in rows[1:]:
            name = _PERF_KEYS.get(row[0].strip()) if row else None
            if name and column is not None and column < len(row) and _number(row[column]) is not None:
                metrics[name] = _number(row[column])
    for path in sorted(run_dir.glob("performances/*/*.json")):
        data = json.loads(path.read_text())
        for key, value in data.items():
            name = _PERF_KEYS.get(key)
            chosen = value.get("total", value.get("Average")) if isinstance(value, dict) else value
            if name and name not in metrics and _number(chosen) is not None:
                metrics[name] = _number(chosen)
    return metrics


# AISBench's error codes as its exceptions and logger write them: "[TINFER-PARAM-005]virtual memory usage too
# high. Virtual memory usage too high: 91.54% > 80% (...) | Visit <faq> for further help."
_CODED = re.compile(
    r"\[([A-Z]+-[A-Z]+-\d{3})\]\s*([^.\n]*)\.\s*([^\n]*?)(?:\s*\|\s*Visit \S+ for further help\.)?\s*$", re.M
)
# The runner's own "task failed, see <file>": a pointer to the task's log, not a cause.
_POINTER_CODES = ("RUNNER-TASK-001",)
# The last line of a Python traceback: "package.module.SomeError: message".
_RAISED = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Timeout)): ?(.*)$", re.M)
_TASK_KINDS = {"infer": "inference", "eval": "evaluation"}
_TASK_DIED = re.compile(r"RUNNER-TASK-001\][^.\n]*\.\s*\S+ failed with code (-?\d+), see\s*\n?\s*(\S+)")
_SIGNALS = {int(s) for s in signal.Signals}


def cause_in(text: str) -> Optional[str]:
    """The cause a log gives, in one line: AISBench's last error code with its message, else the last
    exception a traceback ended with; None when it names none."""
    coded = [m for m in _CODED.finditer(text) if m.group(1) not in _POINTER_CODES]
    if coded:
        code, message, detail = coded[-1].groups()
        detail = detail.strip()
        if detail.lower().startswith(message.strip().lower()):  # AISBench often repeats its message
            detail = detail[len(message.strip()) :].lstrip(" :.")
        return _one_line(f"{code} {message.strip()}" + (f": {detail}" if detail else ""))
    raised = list(_RAISED.finditer(text))
    if raised:
        name, message = raised[-1].groups()
        return _one_line(f"{name.rsplit('.', 1)[-1]}: {message.strip()}" if message.strip() else name)
    return None


def _one_line(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def task_failure(work_dir: Path, main_log: Optional[Path] = None) -> Optional[Tuple[str, str]]:
    """Why AISBench's run in work_dir failed, from its own logs: (one line naming the task and the cause,
    that log's tail). Its tasks' logs first (inference before evaluation: an evaluation fails after a
    failed inference), then the `ais_bench` process's own log. None when no log names a cause."""
    runs = sorted(p for p in work_dir.glob("*") if p.is_dir() and re.fullmatch(r"\d{8}_\d{6}", p.name))
    logs = []
    if runs:
        for kind in _TASK_KINDS:
            logs += [(task_label(p), p) for p in sorted(runs[-1].glob(f"logs/{kind}/*/*.out"))]
    main = main_log or work_dir / LOG_FILE
    logs.append(("", main))  # the `ais_bench` process itself
    # A task process that died (one per task without the task host) says nothing itself: only the runner's
    # line in the main log has it, "<task> failed with code -9, see <its log>".
    died = {(work_dir / log).resolve(): int(code) for code, log in _TASK_DIED.findall(plain_text(main))}
    for where, path in logs:
        cause = cause_in(plain_text(path))
        if cause:
            return (f"{where}: {cause}" if where else cause), tail(path)
        if path.resolve() in died:
            code = died[path.resolve()]
            if code > 128 and code - 128 in _SIGNALS:  # the runner starts each task through a shell
                code = 128 - code
            return f"{where} {exit_description(code)}", tail(path) or tail(main)
    return None


def task_label(log: Path) -> str:
    """ "inference task gsm8k": which of AISBench's tasks a task log (logs/<kind>/<model>/<task>.out) is."""
    return f"{_TASK_KINDS.get(log.parent.parent.name, log.parent.parent.name)} task {log.stem}"


def running_task_log(work_dir: Path) -> Optional[Path]:
    """The log of the task AISBench wrote to last (the one running when it was stopped or died)."""
    logs = [p for p in work_dir.glob("*/logs/*/*/*.out") if p.is_file()]
    return max(logs, key=lambda p: p.stat().st_mtime) if logs else None


def _failure_reason(logs: str) -> str:
    reason = "no results were written"
    request_failures = re.search(r"failed reasons: (\{[^}]*\})", logs)
    if request_failures:
        return reason + f": requests failed {request_failures.group(1)}"
    if re.search(r"(is not exist|No such file|FileNotFoundError|FileExistsError)", logs):
        return reason + ": dataset files missing"
    if re.search(r"(Connection refused|ConnectError|Cannot connect)", logs):
        return reason + ": server unreachable"
    return reason


def collect_results(work_dir: Path, settings: EvaluatorSettings) -> EvaluationResult:
    """Verify AISBench's output and return the metrics; raise EvaluationError with the reason otherwise."""
    runs = (
        sorted(p for p in work_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d{8}_\d{6}", p.name))
        if work_dir.exists()
        else []
    )
    if not runs:
        raise EvaluationError("AISBench produced no output folder", tail(work_dir / LOG_FILE))
    run_dir = runs[-1]
    logs = "\n".join(tail(p, 15) for p in sorted(run_dir.glob("logs/**/*.out")))
    failed = sorted(run_dir.glob("**/*_failed.jsonl"))
    if failed:
        # AISBench's error_info is what its client saw: an HTTP reason phrase for a status other than 200
        # (the relay's count says more, bench_app.run.evaluate.explain_failed_requests), an exception else.
        causes: Counter = Counter()
        for path in failed:
            for line in path.read_text().splitlines():
                if line.strip():
                    causes[_one_line(str(json.loads(line).get("error_info") or "no error given"), 200)] += 1
        said = ", ".join(f"{cause} ({n})" for cause, n in causes.most_common(3))
        raise EvaluationError(
            f"{sum(causes.values())} request(s) failed: {said}; see {failed[0].relative_to(work_dir.parent)}",
            logs[-3000:],
        )
    if settings.mode == "perf":
        metrics = _parse_perf(run_dir)
        if not metrics:
            raise EvaluationError("no performance results were written", logs[-3000:])
        return EvaluationResult(metrics, run_dir)
    results = sorted(run_dir.glob(f"results/{MODEL_ABBR}/*.json"))
    if not results:
        failure = task_failure(work_dir)
        if failure:
            raise EvaluationError(f"no results were written: {failure[0]}", failure[1])
        raise EvaluationError(_failure_reason(logs), logs[-3000:])
    per_subset: Dict[str, Dict[str, float]] = {}
    for path in results:
        data = json.loads(path.read_text())
        # Repeats (AISBench's n): its mean over them is "accuracy (k runs average)", the same figure as
        # avg@k; named as the metric itself, so a run with repeats reads like one without. Its pass@k and
        # cons@k are left out: AISBench 3.1 computes them on groups that mix the questions (its
        # BaseEvaluator.group); bench_app computes pass@k and maj@k from the answers (evaluators.samples).
        numbers = {
            _AVERAGE_OF_RUNS.sub("", k): v
            for k, v in data.items()
            if isinstance(v, (int, float))
            and not isinstance(v, bool)
            and not (settings.repeats > 1 and _MIXED_BY_AISBENCH.search(k))
        }
        if not numbers:
            raise EvaluationError(f"{path.name} holds no metric: {data}", logs[-3000:])
        per_subset[path.stem] = numbers
    if settings.subsets is not None and len(per_subset) < len(settings.subsets):
        reason = f"results for {len(per_subset)} of {len(settings.subsets)} subsets"
        failure = task_failure(work_dir)
        if failure:
            raise EvaluationError(f"{reason}: {failure[0]}", failure[1])
        raise EvaluationError(reason, logs[-3000:])
    if len(per_subset) == 1:
        return EvaluationResult(dict(next(iter(per_subset.values()))), run_dir)
    # Several subsets (ceval/mmlu subjects): unweighted mean of each metric, per-subset values kept.
    metrics: Dict[str, Any] = {}
    for name in sorted({k for numbers in per_subset.values() for k in numbers}):
        values = [numbers[name] for numbers in per_subset.values() if name in numbers]
        metrics[name] = round(sum(values) / len(values), 4)
    metrics["subsets"] = per_subset
    return EvaluationResult(metrics, run_dir)
