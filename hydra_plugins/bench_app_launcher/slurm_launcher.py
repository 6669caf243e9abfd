"""The SLURM launcher of `hydra/launcher=slurm`: Hydra's submitit launcher, made safe for long sweeps.

Hydra's own launcher submits the job array and then waits on each job's result file. A job that
dies without writing one (scancel, time limit, node failure, OOM kill) makes it raise, and Hydra then
ends the sweep without its summary (or, without accounting, it waits forever). This one:
  * records which SLURM job runs which sweep job (<sweep dir>/slurm_jobs.yaml) as soon as it submits;
  * watches the jobs with squeue/sacct and prints how many are pending, running and done;
  * on Ctrl-C (the sweep's interrupt marker) cancels the sweep's jobs with scancel and keeps waiting
    until SLURM has ended them (a second Ctrl-C stops waiting);
  * returns for every job, so the sweep summary is always written; each job's SLURM state is kept in
    the record and a job SLURM ended otherwise than COMPLETED is reported failed with that state.
Inside a job it binds to the CPUs the job asked for (bench_app.run.planning.slurm) and ignores SLURM's early
time-limit warning (USR2, `signal_delay_s` before the limit): SLURM sends it to every process of the
job, and the vLLM server would die of it; submitit would requeue the whole job from scratch. At the
limit SLURM's SIGTERM stops the run like Ctrl-C does: servers stopped, snapshot finalised.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from omegaconf import OmegaConf

from bench_app.records.names import SLURM_JOBS_FILE
from bench_app.run.planning import slurm
from bench_app.sweeps.jobs import interrupt_marked

POLL_INTERVAL_S = 2.0
HEARTBEAT_S = 60.0  # an unchanged progress line is repeated this often (so a waiting sweep is not silent)
UNKNOWN_POLLS = 5  # a job neither squeue nor sacct knows is taken as ended after this many polls
RESULT_GRACE_S = 30.0  # a COMPLETED job's result file may show up late on a network filesystem


def _say(message: str) -> None:
    print(f"slurm: {message}", file=sys.stderr, flush=True)


class SlurmLauncher(SubmititSlurmLauncher):
    # ------------------------------------------------------------ on the compute node
    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        # Ignored, not handled: an ignored signal stays ignored in the servers and evaluators started
        # from here (a handler would be reset to "terminate" in them).
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)
        slurm.keep_to_cpus_per_task(os.environ)
        return super().__call__(*args, **kwargs)

    # ------------------------------------------------------------ on the submitting machine
    def _executor(self):
        """submitit's executor with this launcher's parameters (as Hydra's launcher builds it)."""
        import submitit

        params = dict(self.params)
        init = {"folder": params.pop("submitit_folder")}
        if "max_num_timeout" in params:
            init[f"{self._EXECUTOR}_max_num_timeout"] = params.pop("max_num_timeout")
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{key if key in shared else f"{self._EXECUTOR}_{key}": value for key, value in params.items()}
        )
        return executor

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        nums = [initial_job_idx + i for i in range(len(job_overrides))]
        params = [
            (list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state())
            for num, overrides in zip(nums, job_overrides, strict=True)
        ]
        jobs = self._executor().map_array(self, *zip(*params, strict=True))
        record = slurm.SlurmRecord(
            [
                slurm.SlurmJob(num, job.job_id, list(filter_overrides(overrides)))
                for num, job, overrides in zip(nums, jobs, job_overrides, strict=True)
            ]
        )
        record.write(sweep_dir)
        arrays = slurm.array_ids(job.job_id for job in jobs)
        _say(
            f"submitted {len(jobs)} job(s) as job array {', '.join(arrays)} "
            f"(squeue -j {','.join(arrays)}; record: {sweep_dir / SLURM_JOBS_FILE})"
        )
        self._wait(record, sweep_dir)
        record.write(sweep_dir)
        return [self._job_return(job, entry) for job, entry in zip(jobs, record.jobs, strict=True)]

    def _wait(self, record: slurm.SlurmRecord, sweep_dir: Path) -> None:
        started = time.monotonic()
        shown, shown_at, cancelled = "", 0.0, False
        unknown: Dict[str, int] = {}
        try:
            while True:
                if not cancelled and interrupt_marked(sweep_dir):
                    complaint = slurm.cancel(job.job_id for job in record.jobs if not job.ended)
                    _say(
                        "interrupted: cancelling the sweep's jobs" + (f" ({complaint})" if complaint else "")
                    )
                    cancelled = True
                states = slurm.job_states(job.job_id for job in record.jobs)
                for job in record.jobs:
                    unknown[job.job_id] = (
                        unknown.get(job.job_id, 0) + 1 if states[job.job_id] == slurm.UNKNOWN else 0
                    )
                    # a squeue/sacct hiccup does not end a job: UNKNOWN only counts once it persists
                    if states[job.job_id] != slurm.UNKNOWN or unknown[job.job_id] >= UNKNOWN_POLLS:
                        job.state = states[job.job_id]
                line = _progress_line(record)
                now = time.monotonic()
                if line != shown or now - shown_at >= HEARTBEAT_S:
                    _say(f"{line} · {now - started:.0f} s")
                    shown, shown_at = line, now
                if all(job.ended for job in record.jobs):
                    return
                time.sleep(POLL_INTERVAL_S)
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting; the summary says what is known
            slurm.cancel(job.job_id for job in record.jobs if not job.ended)
            _say("stopped waiting; jobs still active were cancelled")

    def _job_return(self, job, entry: slurm.SlurmJob) -> JobReturn:
        """The job's own JobReturn when it wrote one; else a completed one with nothing in it (the
        sweep summary reads the job's folder and the SLURM record, never this)."""
        from submitit.core.utils import pickle_load

        deadline = time.monotonic() + (RESULT_GRACE_S if entry.state == slurm.COMPLETED else 0)
        while not job.paths.result_pickle.exists() and time.monotonic() < deadline:
            time.sleep(1)
        if job.paths.result_pickle.exists():
            try:
                outcome, result = pickle_load(job.paths.result_pickle)
                if outcome == "success" and isinstance(result, JobReturn):
                    return result
            except Exception:  # noqa: BLE001 - a torn or foreign file: the summary reads the job's folder
                pass
        return JobReturn(overrides=entry.overrides, status=JobStatus.COMPLETED, _return_value=None)


def _progress_line(record: slurm.SlurmRecord) -> str:
    counts: Dict[str, int] = {}
    for job in record.jobs:
        key = (
            "pending" if job.state == "PENDING" else "running" if job.state in slurm.ACTIVE_STATES else "done"
        )
        counts[key] = counts.get(key, 0) + 1
    failed: List[str] = [f"{job.job_id} {job.state}" for job in record.jobs if job.failed]
    text = ", ".join(f"{counts.get(key, 0)} {key}" for key in ("pending", "running", "done"))
    return f"{len(record.jobs)} job(s): {text}" + (
        f" (ended otherwise: {', '.join(failed)})" if failed else ""
    )
