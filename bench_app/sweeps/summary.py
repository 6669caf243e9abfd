"""The sweep-level summary: every job x dataset in results.yaml and summary.md, with repeat statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_app.records.documents import SweepJob, SweepResults
from bench_app.records.folder import SweepFolder
from bench_app.reports.text import markdown_cell, metric_text
from bench_app.sweeps.jobs import collect_jobs
from bench_app.sweeps.statistics import repeat_statistics


def sweep_status(jobs: Sequence[SweepJob]) -> Tuple[str, int]:
    if not jobs:
        return "failed", 1
    if any(j.status == "interrupted" for j in jobs):
        return "interrupted", 130
    if all(j.status in ("completed", "dry_run") and not j.exit_code for j in jobs):
        return ("dry_run" if all(j.status == "dry_run" for j in jobs) else "completed"), 0
    return "failed", 1


def sweep_documents(
    sweep_dir: Path, jobs: Sequence[SweepJob], wall_s: Optional[float]
) -> Tuple[Dict[str, Any], str]:
    status, exit_code = sweep_status(jobs)
    repeats = repeat_statistics(jobs)
    counts = {s: sum(1 for j in jobs if j.status == s) for s in sorted({j.status for j in jobs})}
    document = {
        "sweep": {
            "dir": str(sweep_dir),
            "status": status,
            "exit_code": exit_code,
            "jobs": len(jobs),
            "job_status": counts,
            "wall_time_s": round(wall_s, 1) if wall_s is not None else None,
        },
        "jobs": [j.to_dict() for j in jobs],
    }
    if repeats:
        document["repeats"] = repeats
    wall = f" · wall time {wall_s:.1f} s" if wall_s is not None else ""
    lines = [
        f"# sweep {sweep_dir.name}",
        "",
        f"status: **{status}** · {len(jobs)} job(s): "
        f"{', '.join(f'{n} {s}' for s, n in counts.items())}{wall}",
        "",
        "| job | overrides | dataset | status | metrics | reason |",
        "|---|---|---|---|---|---|",
    ]
    for job in jobs:
        overrides = markdown_cell(" ".join(job.overrides) or "-")
        if not job.datasets:
            lines.append(
                f"| {job.label} | {overrides} | - | {job.status} | - | {markdown_cell(job.error or '')} |"
            )
        for short, entry in job.datasets.items():
            reason = "; ".join(r for r in (job.error, entry.reason) if r)  # the job's first
            lines.append(
                f"| {job.label} | {overrides} | {short} | {entry.status or '-'} | "
                f"{metric_text(entry.metrics)} | {markdown_cell(reason)} |"
            )
    for group in repeats:
        lines += [
            "",
            f"## repeats: {markdown_cell(' '.join(group['config']) or '(no other overrides)')}",
            f"jobs {group['jobs']}, seeds {group['seeds']}",
            "",
            "| dataset | metric | ok runs | mean | std | min | max | 95% CI |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for short, entry in group["datasets"].items():
            if not entry["metrics"]:
                lines.append(f"| {short} | - | {entry['ok_runs']}/{entry['runs']} | - | - | - | - | - |")
            for name, s in entry["metrics"].items():
                ci = f"[{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]" if s["ci95"] else "-"
                lines.append(
                    f"| {short} | {name} | {entry['ok_runs']}/{entry['runs']} | {s['mean']:.2f} | "
                    f"{s['std']:.2f} | "
                    f"{s['min']:.2f} | {s['max']:.2f} | {ci} |"
                )
    return document, "\n".join(lines) + "\n"


def write_sweep_summary(sweep_dir: Path, wall_s: Optional[float] = None) -> Tuple[str, int, List[SweepJob]]:
    """Write results.yaml and summary.md; return the sweep's status, exit code and the jobs read."""
    jobs = collect_jobs(sweep_dir)
    document, markdown = sweep_documents(sweep_dir, jobs, wall_s)
    SweepFolder(sweep_dir).write_summary(SweepResults.from_dict(document), markdown)
    return document["sweep"]["status"], document["sweep"]["exit_code"], jobs
