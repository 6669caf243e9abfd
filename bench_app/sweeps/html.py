"""The sweep's report.html: jobs x datasets and the repeat groups' statistics, drawn by the run report's
page (bench_app.reports.html) from the sweep's data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from bench_app.common.files import atomic_write
from bench_app.records.folder import RunFolder, SweepFolder
from bench_app.records.names import REPORT_FILE
from bench_app.reports.html import numbers, render, write_run_report
from bench_app.sweeps.jobs import collect_jobs, is_sweep_folder
from bench_app.sweeps.statistics import repeat_statistics


def sweep_report_data(sweep_dir: Path) -> Dict[str, Any]:
    """Jobs x datasets (status and first metric) and the repeat groups' means with their 95% CIs."""
    jobs = collect_jobs(sweep_dir)
    results = SweepFolder(sweep_dir).read_results()
    return {
        "kind": "sweep",
        "sweep": {"name": sweep_dir.name, **results.sweep.to_dict()},
        "jobs": [
            {
                "num": job.label,
                "overrides": job.overrides,
                "status": job.status,
                "error": job.error,
                "report": f"{Path(job.dir).name}/{RunFolder(Path(job.dir)).report_file.name}"
                if RunFolder(Path(job.dir)).report_file.exists()
                else None,
                "datasets": {
                    short: {"status": entry.status, "metrics": numbers(entry.metrics)}
                    for short, entry in job.datasets.items()
                },
            }
            for job in jobs
        ],
        "repeats": repeat_statistics(jobs),
    }


def write_report(folder: Path, job_reports: bool = True) -> Path:
    """report.html of a run folder, or of a sweep folder (and, with job_reports, of each of its jobs)."""
    if is_sweep_folder(folder):
        for job_dir in sorted(p for p in folder.iterdir() if RunFolder(p).holds_run()):
            if job_reports:
                write_run_report(job_dir)
        out = folder / REPORT_FILE
        atomic_write(out, render(sweep_report_data(folder), f"bench_app sweep {folder.name}"), mode=0o644)
        return out
    return write_run_report(folder)
