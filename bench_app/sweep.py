"""Multirun (`-m`): what a job leaves for the sweep, and the sweep-level summary.

Each job runs the normal pipeline into <sweep dir>/<job num>/ (full configs/ layout and results) and
writes job.yaml (its overrides and exit code; error.txt when it could not run). When the last job
has ended, SweepCallback.on_multirun_end aggregates every job x dataset into <sweep dir>/results.yaml
and summary.md, failing jobs included, and adds repeat statistics (mean, std, min/max, 95% CI) for
jobs that differ only in their seed. A job never raises or exits inside a sweep (Hydra would abort
the sweep before the summary); the sweep's exit code is decided here from the jobs' own.

Ctrl-C / SIGTERM during a sweep: the parent drops a marker in the sweep folder; running jobs see it,
stop their servers and finish as interrupted, jobs not yet started finish at once as skipped.
"""

from __future__ import annotations

import math
import shlex
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from hydra.experimental.callback import Callback

from .errors import UserError
from .files import atomic_write, dump_yaml, read_yaml
from .report import markdown_cell, metric_text
from .slurm import SlurmJob, SlurmRecord

JOB_FILE = "job.yaml"
ERROR_FILE = "error.txt"
INTERRUPT_MARKER = ".interrupted"
# Overrides that only pick a sampling / engine seed: jobs differing only in these are repeats.
REPEAT_KEYS = ("aisbench.generation_kwargs.seed", "vllm.seed")
REPEATS_KEY = "benchmark.repeats"

# Two-sided 95% Student t critical values, df = 1..30 (larger df: a close approximation below).
_T95 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)


# ---------------------------------------------------------------- command line
def _parse_override(text: str):
    """One command-line override as Hydra parses it, or None for a flag or what Hydra cannot parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    if text.startswith("-") or "=" not in text:
        return None
    try:
        return OverridesParser.create().parse_override(text)
    except OverrideParseException:
        return None  # Hydra reports it itself, with its own message


def expand_repeats(argv: List[str]) -> List[str]:
    """`benchmark.repeats=N` -> a multirun over aisbench.generation_kwargs.seed=1..N (raises UserError)."""
    if not any(REPEATS_KEY in arg for arg in argv):  # the common case costs no parsing
        return argv
    parsed = [(arg, _parse_override(arg)) for arg in argv]
    given = [o for _, o in parsed if o is not None and o.key_or_group == REPEATS_KEY]
    if not given:
        return argv
    value = given[-1].value()
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise UserError(
            f"benchmark.repeats must be an integer >= 2, got {given[-1].get_value_element_as_str()!r}"
        )
    if any(o is not None and o.key_or_group == "aisbench.generation_kwargs.seed" for _, o in parsed):
        raise UserError(
            "benchmark.repeats sets aisbench.generation_kwargs.seed=1..N itself; give one or the other"
        )
    rest = [arg for arg, o in parsed if o is None or o.key_or_group != REPEATS_KEY]
    multirun = [] if ("-m" in rest or "--multirun" in rest) else ["-m"]
    # ++: add the key, or replace a seed the dataset/model config already sets
    return [*multirun, *rest, f"++aisbench.generation_kwargs.seed=range(1,{value + 1})"]


def is_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


# ---------------------------------------------------------------- inside a job
def interrupt_marked(sweep_dir: Path) -> bool:
    return (sweep_dir / INTERRUPT_MARKER).exists()


def sweep_interrupted(job_dir: Path) -> bool:
    return interrupt_marked(job_dir.parent)


def write_job_record(
    job_dir: Path, num: int, overrides: Sequence[str], exit_code: int, error: Optional[str] = None
) -> None:
    if error:
        atomic_write(job_dir / ERROR_FILE, error)
    atomic_write(
        job_dir / JOB_FILE, dump_yaml({"num": num, "overrides": list(overrides), "exit_code": exit_code})
    )


def mark_interrupted(sweep_dir: Path) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / INTERRUPT_MARKER).touch()


# ---------------------------------------------------------------- reading a sweep
@dataclass
class JobSummary:
    num: int
    dir: str
    overrides: List[str]
    exit_code: Optional[int]
    status: str  # completed | failed | interrupted | dry_run | error | missing
    error: Optional[str] = None
    slurm_job_id: Optional[str] = None  # jobs of hydra/launcher=slurm: SLURM's id and end state
    slurm_state: Optional[str] = None
    datasets: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.num} ({self.slurm_job_id})" if self.slurm_job_id else str(self.num)

    def to_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, {}, [])}


def _job_dirs(sweep_dir: Path) -> List[Path]:
    return sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
        key=lambda p: (0, int(p.name)) if p.name.isdigit() else (1, p.name),
    )


def read_job(job_dir: Path) -> JobSummary:
    job = read_yaml(job_dir / JOB_FILE) if (job_dir / JOB_FILE).exists() else {}
    overrides = job.get("overrides")
    if overrides is None and (job_dir / ".hydra" / "overrides.yaml").exists():
        overrides = read_yaml(job_dir / ".hydra" / "overrides.yaml") or []
    num = job.get("num", int(job_dir.name) if job_dir.name.isdigit() else -1)
    summary = JobSummary(
        num=num,
        dir=str(job_dir),
        overrides=list(overrides or []),
        exit_code=job.get("exit_code"),
        status="missing",
    )
    results = read_yaml(job_dir / "results.yaml") if (job_dir / "results.yaml").exists() else None
    metadata_file = job_dir / "configs" / "metadata.yaml"
    metadata = read_yaml(metadata_file) if metadata_file.exists() else {}
    if results:
        summary.status = results.get("status", "failed")
        for short, entry in (results.get("datasets") or {}).items():
            summary.datasets[short] = {
                k: entry[k] for k in ("status", "metrics", "reason") if entry.get(k) not in (None, {})
            }
    elif metadata:
        summary.status = metadata.get("run", {}).get("status", "failed")
        if summary.status == "running":  # the job died without finalising (killed)
            summary.status = "failed"
        for planned in sorted((job_dir / "configs" / "per_dataset").glob("*.yaml")):
            summary.datasets[planned.stem] = {
                "status": "planned" if summary.status == "dry_run" else "not run"
            }
    elif job:  # the job never got as far as a snapshot
        summary.status = {0: "completed", 130: "skipped"}.get(job.get("exit_code"), "error")
    if (job_dir / ERROR_FILE).exists():
        text = (job_dir / ERROR_FILE).read_text().strip()
        summary.error = text.splitlines()[-1][:300] if text else None
        if summary.status in ("missing", "completed"):  # a crash after the run's own reports
            summary.status = "error"
    if not job and summary.status not in ("completed", "dry_run"):
        summary.error = summary.error or "the job ended without recording an exit code (killed?)"
    return summary


def _apply_slurm_state(job: JobSummary, entry: SlurmJob, interrupted: bool) -> None:
    """A job SLURM ended otherwise than COMPLETED failed (or was interrupted, when the sweep was),
    whatever the job could still write: SLURM's state is the reason."""
    job.slurm_job_id, job.slurm_state = entry.job_id, entry.state
    if not entry.failed:
        return
    reason = f"SLURM ended job {entry.job_id} as {entry.state}"
    if job.status == "missing":
        reason += " (it left no run folder)"
    job.status = "interrupted" if interrupted else "failed"
    job.error = f"{reason}; {job.error}" if job.error else reason


def collect_jobs(sweep_dir: Path) -> List[JobSummary]:
    if not sweep_dir.is_dir():
        return []
    jobs = [read_job(d) for d in _job_dirs(sweep_dir)]
    record = SlurmRecord.read(sweep_dir).by_num()
    if record:  # a SLURM sweep: also the jobs that never made a folder (cancelled while pending)
        seen = {job.num for job in jobs}
        jobs += [
            JobSummary(num, str(sweep_dir / str(num)), entry.overrides, None, "missing")
            for num, entry in record.items()
            if num not in seen
        ]
        interrupted = interrupt_marked(sweep_dir)
        for job in jobs:
            if job.num in record:
                _apply_slurm_state(job, record[job.num], interrupted)
        jobs.sort(key=lambda job: job.num)
    return jobs


# ---------------------------------------------------------------- repeat statistics
def t_critical_95(df: int) -> float:
    if df < 1:
        return math.nan
    return _T95[df - 1] if df <= len(_T95) else 1.96 + 2.4 / df


def describe(values: Sequence[float]) -> Dict[str, Any]:
    """n, mean, sample std, min, max and the 95% t confidence interval of the mean."""
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = t_critical_95(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    rounded = lambda x: round(x, 4)  # noqa: E731
    return {
        "n": n,
        "mean": rounded(mean),
        "std": rounded(std),
        "min": rounded(min(values)),
        "max": rounded(max(values)),
        "ci95": [rounded(mean - half), rounded(mean + half)] if n > 1 else None,
    }


def _override_key(override: str) -> str:
    parsed = _parse_override(override)
    return parsed.key_or_group if parsed is not None else override.split("=", 1)[0]


def _seed_of(job: JobSummary) -> str:
    override = next(o for o in job.overrides if _override_key(o) in REPEAT_KEYS)
    parsed = _parse_override(override)
    return parsed.get_value_element_as_str() if parsed is not None else override.split("=", 1)[1]


def repeat_groups(jobs: Sequence[JobSummary]) -> List[Tuple[List[str], List[JobSummary]]]:
    """Jobs that differ only in a seed override, grouped by everything else (2+ jobs per group)."""
    groups: Dict[Tuple[str, ...], List[JobSummary]] = {}
    for job in jobs:
        seeds = [o for o in job.overrides if _override_key(o) in REPEAT_KEYS]
        if not seeds:
            continue
        rest = tuple(sorted(o for o in job.overrides if _override_key(o) not in REPEAT_KEYS))
        groups.setdefault(rest, []).append(job)
    return [(list(config), members) for config, members in groups.items() if len(members) > 1]


def repeat_statistics(jobs: Sequence[JobSummary]) -> List[Dict[str, Any]]:
    """Per repeat group and dataset: statistics of every numeric metric over the jobs where it is ok."""
    report = []
    for config, members in repeat_groups(jobs):
        datasets: Dict[str, Any] = {}
        shorts = sorted({s for job in members for s in job.datasets})
        for short in shorts:
            ok = [job.datasets[short] for job in members if job.datasets.get(short, {}).get("status") == "ok"]
            metrics: Dict[str, Any] = {}
            names = sorted(
                {
                    k
                    for entry in ok
                    for k, v in entry.get("metrics", {}).items()
                    if isinstance(v, (int, float))
                }
            )
            for name in names:
                values = [
                    float(e["metrics"][name])
                    for e in ok
                    if isinstance(e.get("metrics", {}).get(name), (int, float))
                ]
                if values:
                    metrics[name] = describe(values)
            datasets[short] = {"ok_runs": len(ok), "runs": len(members), "metrics": metrics}
        report.append(
            {
                "config": config,
                "jobs": [j.num for j in members],
                "seeds": [_seed_of(j) for j in members],
                "datasets": datasets,
            }
        )
    return report


# ---------------------------------------------------------------- the sweep summary
def sweep_status(jobs: Sequence[JobSummary]) -> Tuple[str, int]:
    if not jobs:
        return "failed", 1
    if any(j.status == "interrupted" for j in jobs):
        return "interrupted", 130
    if all(j.status in ("completed", "dry_run") and not j.exit_code for j in jobs):
        return ("dry_run" if all(j.status == "dry_run" for j in jobs) else "completed"), 0
    return "failed", 1


def sweep_documents(
    sweep_dir: Path, jobs: Sequence[JobSummary], wall_s: Optional[float]
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
            reason = "; ".join(r for r in (job.error, entry.get("reason")) if r)  # the job's first
            lines.append(
                f"| {job.label} | {overrides} | {short} | {entry.get('status', '-')} | "
                f"{metric_text(entry.get('metrics', {}))} | {markdown_cell(reason)} |"
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


def write_sweep_summary(sweep_dir: Path, wall_s: Optional[float] = None) -> Tuple[str, int, List[JobSummary]]:
    """Write results.yaml and summary.md; return the sweep's status, exit code and the jobs read."""
    jobs = collect_jobs(sweep_dir)
    document, markdown = sweep_documents(sweep_dir, jobs, wall_s)
    atomic_write(sweep_dir / "results.yaml", dump_yaml(document))
    atomic_write(sweep_dir / "summary.md", markdown)
    return document["sweep"]["status"], document["sweep"]["exit_code"], jobs


# ---------------------------------------------------------------- Hydra callback (runs in the sweep's parent)
# The sweep's exit code, read by bench_app.app.main once Hydra returns.
SWEEP_EXIT_CODE: Optional[int] = None


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.sweep_dir: Optional[Path] = None
        self.interrupts = 0

    def on_multirun_start(self, config, **kwargs) -> None:
        self.started = time.monotonic()
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        if (self.sweep_dir / "multirun.yaml").exists() or collect_jobs(self.sweep_dir):
            # Its jobs would refuse their existing run folders one by one, and the summary would be replaced.
            print(
                f"bench_app: error: sweep folder {self.sweep_dir} already holds a sweep; it is never "
                "overwritten. "
                "Choose another hydra.sweep.dir.",
                file=sys.stderr,
            )
            sys.exit(2)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum, frame) -> None:
        """First signal: ask every job to stop cleanly. A second Ctrl-C aborts at once."""
        self.interrupts += 1
        if self.sweep_dir is not None:
            mark_interrupted(self.sweep_dir)
        if self.interrupts > 1 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        print(
            f"bench_app: signal {signum}: jobs are stopping their servers; the sweep summary follows "
            "(Ctrl-C again to abort without waiting)",
            file=sys.stderr,
            flush=True,
        )

    def on_multirun_end(self, config, **kwargs) -> None:
        global SWEEP_EXIT_CODE
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)
        sweep_dir = Path(str(config.hydra.sweep.dir))
        status, SWEEP_EXIT_CODE, jobs = write_sweep_summary(sweep_dir, time.monotonic() - self.started)
        print(f"\nsweep {sweep_dir}: {status}, {len(jobs)} job(s)")
        for job in jobs:
            states = ", ".join(f"{s}={e.get('status')}" for s, e in job.datasets.items())
            states = f"{states} ({job.error})" if states and job.error else states or job.error or ""
            print(f"  job {job.label} [{job.status}] {shlex.join(job.overrides)}: {states}")
        print(f"summary: {sweep_dir / 'summary.md'} · results: {sweep_dir / 'results.yaml'}")
        from .html_report import write_report  # each job wrote its own report.html

        try:
            print(f"report: {write_report(sweep_dir, job_reports=False)}")
        except Exception as error:  # noqa: BLE001 - the summary above is written; say why, go on
            print(f"warning: sweep report.html not written: {type(error).__name__}: {error}")
