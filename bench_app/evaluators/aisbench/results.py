"""What AISBench left: a dataset counts as done only when its results hold the metric and no request
failed (AISBench exits 0 even when its tasks fail: server down, missing data, failed requests)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, Optional

from bench_app.common.errors import EvaluationError
from bench_app.common.files import tail
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators.aisbench.task import LOG_FILE, MODEL_ABBR
from bench_app.evaluators.base import (
    EvaluationResult,
)

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
        count = sum(1 for path in failed for line in path.read_text().splitlines() if line.strip())
        raise EvaluationError(
            f"{count} request(s) failed (see {failed[0].relative_to(work_dir)})", logs[-3000:]
        )
    if settings.mode == "perf":
        metrics = _parse_perf(run_dir)
        if not metrics:
            raise EvaluationError("no performance results were written", logs[-3000:])
        return EvaluationResult(metrics, run_dir)
    results = sorted(run_dir.glob(f"results/{MODEL_ABBR}/*.json"))
    if not results:
        raise EvaluationError(_failure_reason(logs), logs[-3000:])
    per_subset: Dict[str, Dict[str, float]] = {}
    for path in results:
        data = json.loads(path.read_text())
        numbers = {k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not numbers:
            raise EvaluationError(f"{path.name} holds no metric: {data}", logs[-3000:])
        per_subset[path.stem] = numbers
    if settings.subsets is not None and len(per_subset) < len(settings.subsets):
        raise EvaluationError(
            f"results for {len(per_subset)} of {len(settings.subsets)} subsets", logs[-3000:]
        )
    if len(per_subset) == 1:
        return EvaluationResult(dict(next(iter(per_subset.values()))), run_dir)
    # Several subsets (ceval/mmlu subjects): unweighted mean of each metric, per-subset values kept.
    metrics: Dict[str, Any] = {}
    for name in sorted({k for numbers in per_subset.values() for k in numbers}):
        values = [numbers[name] for numbers in per_subset.values() if name in numbers]
        metrics[name] = round(sum(values) / len(values), 4)
    metrics["subsets"] = per_subset
    return EvaluationResult(metrics, run_dir)
