"""Accuracy under load: what each level of execution.load_levels scored and served, from the same requests.

Per dataset and level (`<short>@c<level>`): the score with its 95% Wilson interval (from samples.jsonl);
from the relay's records of that level's requests (requests.jsonl): requests and output tokens per second
over the level's window, end-to-end latency p50/p95, time to first token and time per output token p50/p95
when the answers were streamed, and the most requests seen in flight at once (what the level really
reached). Against the reference level (the lowest): how many predictions changed, even where the score did
not, and the exact McNemar test on right/wrong (Holm-adjusted across the levels).

The knee: the highest level before the first one that changes accuracy significantly or raises output
throughput by less than 5% over the level below it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Collection, Dict, List, Optional

from bench_app.records.answers import RequestLine
from bench_app.records.documents import DatasetEntry, Knee, LoadDataset, LoadLevel, LoadSweep, SampleRecord
from bench_app.records.folder import RunFolder, headline
from bench_app.reports.matrix import holm
from bench_app.reports.paired import SIGNIFICANCE, load_samples, pair
from bench_app.run.planning.load_levels import split_short

THROUGHPUT_GAIN = 1.05  # a level that adds less than 5% output throughput has stopped paying


def _percentile(values: List[float], q: float) -> Optional[float]:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 4)


def request_stats(records: Collection[RequestLine]) -> Dict[str, Any]:
    """Throughput, latency and concurrency of one level's requests answered by the server (not the cache)."""
    served = [r for r in records if not r.cached and r.started_at is not None and r.status == 200]
    stats: Dict[str, Any] = {"requests": len(served), "cached": sum(1 for r in records if r.cached)}
    if not served:
        return stats
    spans = [(r.started_at, r.started_at + (r.seconds or 0.0)) for r in served]
    window = max(end for _, end in spans) - min(start for start, _ in spans)
    tokens = [(r.usage.completion_tokens or 0) if r.usage else 0 for r in served]
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    in_flight = peak = 0
    for _, step in events:
        in_flight += step
        peak = max(peak, in_flight)
    latency = [r.seconds for r in served]
    ttft = [r.first_token_s for r in served if r.first_token_s is not None]
    tpot = [
        (r.seconds - r.first_token_s) / (n - 1)
        for r, n in zip(served, tokens, strict=True)
        if r.first_token_s is not None and n > 1
    ]
    stats.update(
        window_s=round(window, 3),
        requests_per_s=round(len(served) / window, 4) if window > 0 else None,
        output_tokens_per_s=round(sum(tokens) / window, 2) if window > 0 else None,
        max_in_flight=peak,
        e2e_s_p50=_percentile(latency, 0.5),
        e2e_s_p95=_percentile(latency, 0.95),
    )
    if ttft:
        stats.update(ttft_s_p50=_percentile(ttft, 0.5), ttft_s_p95=_percentile(ttft, 0.95))
    if tpot:
        stats.update(tpot_s_p50=_percentile(tpot, 0.5), tpot_s_p95=_percentile(tpot, 0.95))
    return stats


def wilson(right: int, total: int) -> Optional[List[float]]:
    """95% Wilson interval of a share of right answers, in points."""
    if total == 0:
        return None
    from scipy.stats import binomtest

    interval = binomtest(right, total).proportion_ci(confidence_level=1 - SIGNIFICANCE, method="wilson")
    return [round(100 * float(interval.low), 4), round(100 * float(interval.high), 4)]


def _changed_predictions(reference: Dict[Any, SampleRecord], other: Dict[Any, SampleRecord]) -> int:
    return sum(
        1
        for key in set(reference) & set(other)
        if reference[key].prompt == other[key].prompt
        and json.dumps(reference[key].prediction) != json.dumps(other[key].prediction)
    )


def knee(levels: List[LoadLevel]) -> Knee:
    """The highest level worth serving at, and why the next one is not."""
    for previous, level in zip(levels, levels[1:], strict=False):
        if level.significant:
            return Knee(level=previous.level, reason=f"accuracy changes significantly at {level.level}")
        before, now = previous.output_tokens_per_s, level.output_tokens_per_s
        if before and now is not None and now < THROUGHPUT_GAIN * before:
            return Knee(
                level=previous.level,
                reason=f"output throughput rises by less than 5% at {level.level} "
                f"({before:g} -> {now:g} tok/s)",
            )
    return Knee(level=levels[-1].level, reason="accuracy held and throughput rose up to the highest level")


def load_sweep(run_dir: Path, entries: Optional[Dict[str, DatasetEntry]] = None) -> Optional[LoadSweep]:
    """The run's load levels per dataset (None for a run without execution.load_levels); `entries`: the
    datasets' results when the caller holds them (else read from the run folder)."""
    folder = RunFolder(run_dir)
    entries = folder.dataset_results() if entries is None else entries
    by_base: Dict[str, Dict[int, str]] = {}
    for short in entries:
        base, level = split_short(short)
        if level is not None:
            by_base.setdefault(base, {})[level] = short
    if not by_base:
        return None
    datasets = {}
    for base, shorts in by_base.items():
        ordered = sorted(shorts)
        reference = ordered[0]
        reference_samples = load_samples(run_dir, shorts[reference]) or {}
        rows = []
        for level in ordered:
            short, entry = shorts[level], entries[shorts[level]]
            samples = load_samples(run_dir, short) or {}
            scored = [r for r in samples.values() if r.correct is not None]
            main = headline(entry.metrics) if entry.status == "ok" else None
            found: Dict[str, Any] = {
                "level": level,
                "dataset": short,
                "status": entry.status,
                "started_at": entry.evaluation_started_at,
                "metric": main[0] if main else None,
                "score": main[1] if main else None,
                "ci95": wilson(sum(1 for r in scored if r.correct), len(scored)),
                "samples": len(scored),
                **request_stats(folder.read_requests(short).values()),
            }
            if level != reference and samples and reference_samples:
                paired = pair(reference_samples, samples)
                found.update(
                    paired=paired.paired,
                    right_to_wrong=len(paired.right_to_wrong),
                    wrong_to_right=len(paired.wrong_to_right),
                    changed_predictions=_changed_predictions(reference_samples, samples),
                    p_value=round(float(paired.p_value), 6),
                )
            rows.append(LoadLevel.from_dict(found))
        tested = [row for row in rows if row.p_value is not None]
        for row, adjusted in zip(tested, holm([row.p_value for row in tested]), strict=True):
            row.p_holm = round(adjusted, 6)
            row.significant = (row.right_to_wrong or 0) + (
                row.wrong_to_right or 0
            ) > 0 and adjusted < SIGNIFICANCE
        order = [row.level for row in sorted(rows, key=lambda r: r.started_at or "")]
        datasets[base] = LoadDataset(reference=reference, order=order, levels=rows, knee=knee(rows))
    levels = sorted({level for shorts in by_base.values() for level in shorts})
    return LoadSweep(levels=levels, datasets=datasets)


def summary_lines(sweep: LoadSweep) -> List[str]:
    """The markdown table of summary.md."""
    if sweep.error:
        return ["", f"## Accuracy under load: not computed ({sweep.error})"]
    lines = [
        "",
        f"## Accuracy under load (levels {', '.join(map(str, sweep.levels))}: requests in flight)",
        "",
        "| dataset | level | score (95% CI) | out tok/s | req/s | e2e p50 / p95 s | max in flight "
        "| changed vs ref | right->wrong / wrong->right | Holm p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    show = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
    for base, data in sweep.datasets.items():
        for row in data.levels:
            ci = row.ci95
            score = show(row.score) + (f" ({ci[0]:.1f}..{ci[1]:.1f})" if ci else "")
            flips = (
                f"{row.right_to_wrong} / {row.wrong_to_right}" if row.p_value is not None else "(reference)"
            )
            lines.append(
                f"| {base} | {row.level} | {score} | {show(row.output_tokens_per_s)} | "
                f"{show(row.requests_per_s)} | {show(row.e2e_s_p50)} / {show(row.e2e_s_p95)} | "
                f"{show(row.max_in_flight)} | {show(row.changed_predictions)} | {flips} | "
                f"{show(row.p_holm)}{' *' if row.significant else ''} |"
            )
        lines.append(f"| {base} | knee: **{data.knee.level}** | {data.knee.reason} |||||||||")
    return lines
