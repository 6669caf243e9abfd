"""Multirun (`-m`): what a job leaves for the sweep, and how the sweep reads its jobs back.

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

import os
import socket
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

from bench_app.common.errors import UserError
from bench_app.common.files import read_yaml
from bench_app.common.processes import process_alive, process_start_time
from bench_app.records.documents import DatasetEntry, JobRecord, RunResults, SweepJob
from bench_app.records.folder import RunFolder
from bench_app.run.planning import slurm
from bench_app.run.planning.slurm import SlurmJob, SlurmRecord

INTERRUPT_MARKER = ".interrupted"
# Overrides that only pick a sampling / engine seed: jobs differing only in these are repeats.
REPEAT_KEYS = ("aisbench.generation_kwargs.seed", "vllm.seed")
REPEATS_KEY = "benchmark.repeats"
REPEATS_AS_KEY = "benchmark.repeats_as"


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
    """`benchmark.repeats=N benchmark.repeats_as=jobs` -> a multirun over aisbench.generation_kwargs.seed=1..N
    (raises UserError). Without repeats_as=jobs the repeats run inside one run (argv unchanged)."""
    if not any(REPEATS_AS_KEY in arg for arg in argv):  # the common case costs no parsing
        return argv
    parsed = [(arg, _parse_override(arg)) for arg in argv]
    form = [o for _, o in parsed if o is not None and o.key_or_group == REPEATS_AS_KEY]
    if not form or form[-1].get_value_element_as_str() != "jobs":
        return argv
    given = [o for _, o in parsed if o is not None and o.key_or_group == REPEATS_KEY]
    value = given[-1].value() if given else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        shown = given[-1].get_value_element_as_str() if given else "not given"
        raise UserError(f"benchmark.repeats_as=jobs needs benchmark.repeats=N with N >= 2 (got {shown})")
    if any(o is not None and o.key_or_group == "aisbench.generation_kwargs.seed" for _, o in parsed):
        raise UserError(
            "benchmark.repeats sets aisbench.generation_kwargs.seed=1..N itself; give one or the other"
        )
    ours = (REPEATS_KEY, REPEATS_AS_KEY)
    rest = [arg for arg, o in parsed if o is None or o.key_or_group not in ours]
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
    RunFolder(job_dir).write_job(JobRecord(num=num, overrides=list(overrides), exit_code=exit_code), error)


def mark_interrupted(sweep_dir: Path) -> None:
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / INTERRUPT_MARKER).touch()


def clear_interrupted(sweep_dir: Path) -> None:
    (sweep_dir / INTERRUPT_MARKER).unlink(missing_ok=True)


# ---------------------------------------------------------------- reading a sweep
def _job_dirs(sweep_dir: Path) -> List[Path]:
    return sorted(
        (p for p in sweep_dir.iterdir() if p.is_dir() and (p / ".hydra").is_dir()),
        key=lambda p: (0, int(p.name)) if p.name.isdigit() else (1, p.name),
    )


def is_sweep_folder(path: Path) -> bool:
    """A folder of job folders (each with Hydra's .hydra/), not itself a run."""
    return (
        path.is_dir()
        and not RunFolder(path).holds_run()
        and any((p / ".hydra").is_dir() for p in path.iterdir() if p.is_dir())
    )


def read_job(job_dir: Path) -> SweepJob:
    folder = RunFolder(job_dir)
    job = folder.read_job()
    overrides = job.overrides if job else None
    if overrides is None and (folder.hydra_dir / "overrides.yaml").exists():
        overrides = read_yaml(folder.hydra_dir / "overrides.yaml") or []
    num = job.num if job and job.num is not None else int(job_dir.name) if job_dir.name.isdigit() else -1
    summary = SweepJob(
        num=num,
        dir=str(job_dir),
        overrides=list(overrides or []),
        exit_code=job.exit_code if job else None,
        status="missing",
    )
    try:
        results = folder.read_results()
    except UserError as error:  # written by a newer bench_app: the summary says so instead of failing
        results, summary.error = RunResults(), str(error)
    metadata = folder.read_metadata()
    if results.status or results.datasets:
        summary.status = results.status or "failed"
        for short, entry in results.datasets.items():
            summary.datasets[short] = DatasetEntry(
                status=entry.status, metrics=entry.metrics, reason=entry.reason
            )
    elif metadata.run.status or folder.metadata_file.exists():
        summary.status = metadata.run.status or "failed"
        if summary.status == "running":  # the job died without finalising (killed)
            summary.status = "failed"
        for planned in sorted(folder.read_per_dataset()):
            summary.datasets[planned] = DatasetEntry(
                status="planned" if summary.status == "dry_run" else "not run"
            )
    elif job:  # the job never got as far as a snapshot
        summary.status = {0: "completed", 130: "skipped"}.get(job.exit_code, "error")
    error = folder.read_error()
    if error is not None:
        summary.error = error.splitlines()[-1][:300] if error else None
        if summary.status in ("missing", "completed"):  # a crash after the run's own reports
            summary.status = "error"
    if not job and summary.status not in ("completed", "dry_run"):
        summary.error = summary.error or "the job ended without recording an exit code (killed?)"
    return summary


def _apply_slurm_state(job: SweepJob, entry: SlurmJob, interrupted: bool) -> None:
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


def collect_jobs(sweep_dir: Path) -> List[SweepJob]:
    if not sweep_dir.is_dir():
        return []
    jobs = [read_job(d) for d in _job_dirs(sweep_dir)]
    record = SlurmRecord.read(sweep_dir).by_num()
    if record:  # a SLURM sweep: also the jobs that never made a folder (cancelled while pending)
        seen = {job.num for job in jobs}
        jobs += [
            SweepJob(num=num, dir=str(sweep_dir / str(num)), overrides=entry.overrides, status="missing")
            for num, entry in record.items()
            if num not in seen
        ]
        interrupted = interrupt_marked(sweep_dir)
        for job in jobs:
            if job.num in record:
                _apply_slurm_state(job, record[job.num], interrupted)
        jobs.sort(key=lambda job: job.num)
    return jobs


# ---------------------------------------------------------------- a sweep whose main process is gone
# The sweep's main process, for the jobs it starts on this machine: "<host> <pid> <start time>".
SWEEP_OWNER_ENV = "BENCH_APP_SWEEP_OWNER"


def owner_value() -> str:
    return f"{socket.gethostname()} {os.getpid()} {process_start_time(os.getpid())}"


class OwnerWatch:
    """In a worker process of a local sweep (joblib): when the sweep's main process is gone (SIGKILL),
    mark the sweep interrupted (the job running here stops its servers and records `interrupted`), then
    end this worker once its job is recorded, so nothing is left behind. One per worker process."""

    _started: Optional[OwnerWatch] = None

    def __init__(self, owner: str, sweep_dir: Path, poll_s: float = 1.0, grace_s: float = 300.0):
        host, pid, start = (owner.split(" ") + ["", "", ""])[:3]
        self.pid, self.start, self.sweep_dir = int(pid), start if start != "None" else None, sweep_dir
        self.poll_s, self.grace_s = poll_s, grace_s
        self.idle = threading.Event()  # no job running in this worker
        self.idle.set()
        threading.Thread(target=self._watch, name="sweep-owner-watch", daemon=True).start()

    @classmethod
    def for_job(cls, sweep_dir: Path) -> Optional[OwnerWatch]:
        owner = os.environ.get(SWEEP_OWNER_ENV, "")
        if slurm.in_job(os.environ):
            return None  # a SLURM job is the cluster's to stop (scancel, its time limit)
        if (
            not owner
            or owner.split(" ")[0] != socket.gethostname()
            or str(os.getpid()) == owner.split(" ")[1]
        ):
            return None  # not a local worker of a sweep (the sweep's own process, another host)
        if cls._started is None:
            cls._started = cls(owner, sweep_dir)
        return cls._started

    def _watch(self) -> None:
        while process_alive(self.pid, self.start):
            time.sleep(self.poll_s)
        mark_interrupted(self.sweep_dir)
        self.idle.wait(self.grace_s)  # the running job stops its servers and records itself
        os._exit(130)
