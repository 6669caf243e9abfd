"""SLURM: what a job was granted, the sweep's record of its jobs, and the SLURM commands bench_app runs.

Inside a job (SLURM_JOB_ID set) the device pool is what SLURM granted and nothing else, and a CPU-only
job keeps to the `cpus_per_task` it asked for even where SLURM's task plugin does not bind CPUs.
Outside a job nothing here changes anything. The launcher (hydra_plugins/bench_app_launcher) keeps
<sweep dir>/slurm_jobs.yaml: which SLURM job ran which sweep job and the state SLURM ended it in, so a
job that dies hard (scancel, time limit, node failure) is still reported, with SLURM's reason.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional

from bench_app.common.files import atomic_write, dump_yaml, read_yaml_if_exists
from bench_app.common.processes import run_command
from bench_app.records.names import SLURM_JOBS_FILE

# States of a job that is not over yet (squeue's long names).
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
    }
)
COMPLETED = "COMPLETED"
UNKNOWN = "UNKNOWN"


# ---------------------------------------------------------------- inside a job
def in_job(environ: Mapping[str, str]) -> bool:
    return bool(environ.get("SLURM_JOB_ID"))


def requeued(environ: Mapping[str, str]) -> bool:
    """A SLURM job started again after a time limit or a preemption (--requeue): it continues its run."""
    return in_job(environ) and int(environ.get("SLURM_RESTART_COUNT") or 0) > 0


def job_id(environ: Mapping[str, str]) -> Optional[str]:
    """The id squeue/sacct/scancel show: <array id>_<task> for a task of a job array."""
    array, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else environ.get("SLURM_JOB_ID")


def granted_gpus(environ: Mapping[str, str]) -> List[str]:
    """The GPUs SLURM gave this job step (or job), as ids of the node: SLURM_STEP_GPUS, SLURM_JOB_GPUS."""
    for variable in ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        value = environ.get(variable, "").strip()
        if value:
            return [gpu.strip() for gpu in value.split(",") if gpu.strip()]
    return []


def cpus_per_task(environ: Mapping[str, str]) -> Optional[int]:
    value = environ.get("SLURM_CPUS_PER_TASK", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def keep_to_cpus_per_task(environ: Mapping[str, str]) -> Optional[List[int]]:
    """Bind this process (and so the servers and evaluators it starts, which inherit it) to
    cpus_per_task CPUs when SLURM's task plugin left the job the whole node (task/none). vLLM's CPU
    build sizes its threads from this affinity. Concurrent array tasks on one node get different CPUs
    as long as they fit. Returns the CPUs chosen, or None when nothing had to change."""
    wanted = cpus_per_task(environ)
    allowed = sorted(os.sched_getaffinity(0))
    if wanted is None or len(allowed) <= wanted:
        return None
    task = int(environ.get("SLURM_ARRAY_TASK_ID", "0") or 0)
    start = (task * wanted) % len(allowed)
    chosen = sorted(allowed[(start + i) % len(allowed)] for i in range(wanted))
    os.sched_setaffinity(0, chosen)
    return chosen


def allocation(environ: Mapping[str, str]) -> Optional[Dict[str, object]]:
    """metadata.yaml's `slurm` block: which job this run was and what it was granted."""
    if not in_job(environ):
        return None
    return {
        "job_id": job_id(environ),
        "slurm_job_id": environ.get("SLURM_JOB_ID"),
        "cluster": environ.get("SLURM_CLUSTER_NAME"),
        "partition": environ.get("SLURM_JOB_PARTITION"),
        "node": environ.get("SLURMD_NODENAME"),
        "cpus_per_task": cpus_per_task(environ),
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "gpus": granted_gpus(environ),
    }


# ---------------------------------------------------------------- the sweep's record of its jobs
@dataclass
class SlurmJob:
    num: int
    job_id: str
    overrides: List[str]
    state: str = "PENDING"

    @property
    def ended(self) -> bool:
        return self.state not in ACTIVE_STATES

    @property
    def failed(self) -> bool:
        return self.ended and self.state != COMPLETED


@dataclass
class SlurmRecord:
    jobs: List[SlurmJob] = field(default_factory=list)

    def write(self, sweep_dir: Path) -> None:
        atomic_write(sweep_dir / SLURM_JOBS_FILE, dump_yaml({"jobs": [asdict(job) for job in self.jobs]}))

    @classmethod
    def read(cls, sweep_dir: Path) -> SlurmRecord:
        document = read_yaml_if_exists(sweep_dir / SLURM_JOBS_FILE, {}) or {}
        return cls([SlurmJob(**job) for job in document.get("jobs", [])])

    def by_num(self) -> Dict[int, SlurmJob]:
        return {job.num: job for job in self.jobs}


# ---------------------------------------------------------------- SLURM's commands
def array_ids(job_ids: Iterable[str]) -> List[str]:
    """The job arrays of array task ids (`8_0`, `8_1` -> `8`)."""
    return sorted({job.split("_")[0] for job in job_ids})


_ARRAY_RANGE = re.compile(r"^(\d+)_\[(.+)\]$")


def _expand(job_field: str) -> List[str]:
    """`8_[1-3,5%2]` (pending tasks of an array, as sacct shows them) -> 8_1 8_2 8_3 8_5."""
    match = _ARRAY_RANGE.match(job_field)
    if not match:
        return [job_field]
    array, spec = match.group(1), match.group(2).split("%")[0]
    ids = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        ids += [f"{array}_{task}" for task in range(int(low), int(high or low) + 1)]
    return ids


def _parse(text: str) -> Dict[str, str]:
    states: Dict[str, str] = {}
    for line in text.splitlines():
        if "|" not in line:
            continue
        job_field, state = line.split("|")[:2]
        for one in _expand(job_field.strip()):
            states[one] = state.split()[0] if state.strip() else UNKNOWN  # "CANCELLED by 0" -> CANCELLED
    return states


def job_states(job_ids: Iterable[str]) -> Dict[str, str]:
    """SLURM's state of each job: squeue while the controller still knows it (ended jobs too, until
    MinJobAge), sacct for the rest; UNKNOWN where neither answers (a cluster without accounting)."""
    ids = list(job_ids)
    code, out, _ = run_command(
        ["squeue", "-h", "-r", "-t", "all", "-o", "%i|%T", "-j", ",".join(array_ids(ids))]
    )
    states = _parse(out) if code == 0 else {}
    missing = [job for job in ids if job not in states]
    if missing:
        code, out, _ = run_command(
            ["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(sorted(set(missing)))]
        )
        if code == 0:
            states.update({k: v for k, v in _parse(out).items() if k in missing})
    return {job: states.get(job, UNKNOWN) for job in ids}


def cancel(job_ids: Iterable[str]) -> str:
    """scancel the given jobs; returns scancel's complaint, if any."""
    ids = sorted(set(job_ids))
    if not ids:
        return ""
    code, _, err = run_command(["scancel", *ids])
    return "" if code == 0 else err.strip() or f"scancel exited {code}"
