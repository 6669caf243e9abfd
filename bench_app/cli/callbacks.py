"""bench_app's Hydra callbacks (conf/config.yaml `hydra.callbacks`).

SnapshotCallback: marks the snapshot of a job that crashed outside the runner's own handling as failed.
SweepCallback (runs in the sweep's parent): refuses an existing sweep folder, turns Ctrl-C/SIGTERM into a
marker the jobs watch, and writes the sweep summary once every job has ended.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Optional

from hydra.experimental.callback import Callback

from bench_app.common.files import now_iso
from bench_app.records.folder import RunFolder, SweepFolder
from bench_app.sweeps.jobs import (
    SWEEP_OWNER_ENV,
    clear_interrupted,
    collect_jobs,
    mark_interrupted,
    owner_value,
)
from bench_app.sweeps.summary import write_sweep_summary


class SnapshotCallback(Callback):
    """Marks the snapshot of a job that crashed outside the runner's own handling as failed.

    The runner writes and finalises configs/ itself (so a failure there stops the run instead of
    becoming one of Hydra's callback warnings); this only covers unexpected exceptions.
    """

    def on_job_end(self, config, job_return, **kwargs) -> None:
        from hydra.core.utils import JobStatus

        if job_return.status != JobStatus.FAILED:
            return
        folder = RunFolder(Path(job_return.working_dir or "."))
        if not folder.metadata_file.exists():
            return
        metadata = folder.read_metadata()
        if metadata.run.status == "running":
            run = metadata.run
            run.status, run.ended, run.error = "failed", now_iso(), repr(job_return._return_value)[:500]
            folder.write_metadata(metadata)


# The sweep's exit code, read by bench_app.cli.main.main once Hydra returns.
SWEEP_EXIT_CODE: Optional[int] = None


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.sweep_dir: Optional[Path] = None
        self.interrupts = 0

    def on_multirun_start(self, config, **kwargs) -> None:
        self.started = time.monotonic()
        self.sweep_dir = Path(str(config.hydra.sweep.dir))
        if config.get("resume") and collect_jobs(self.sweep_dir):
            # resume=true continues an interrupted sweep: each job continues its own run folder.
            clear_interrupted(self.sweep_dir)
        elif (self.sweep_dir / "multirun.yaml").exists() or collect_jobs(self.sweep_dir):
            # Its jobs would refuse their existing run folders one by one, and the summary would be replaced.
            print(
                f"bench_app: error: sweep folder {self.sweep_dir} already holds a sweep; it is never "
                "overwritten. "
                "Choose another hydra.sweep.dir, or add resume=true to continue its jobs.",
                file=sys.stderr,
            )
            sys.exit(2)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        # Local workers (joblib) watch this process: a SIGKILL of the sweep ends its jobs too.
        os.environ[SWEEP_OWNER_ENV] = owner_value()
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
            states = ", ".join(f"{s}={e.status}" for s, e in job.datasets.items())
            states = f"{states} ({job.error})" if states and job.error else states or job.error or ""
            print(f"  job {job.label} [{job.status}] {shlex.join(job.overrides)}: {states}")
        folder = SweepFolder(sweep_dir)
        print(f"summary: {folder.summary_file} · results: {folder.results_file}")
        from bench_app.sweeps.html import write_report  # each job wrote its own report.html

        try:
            print(f"report: {write_report(sweep_dir, job_reports=False)}")
        except Exception as error:  # noqa: BLE001 - the summary above is written; say why, go on
            print(f"warning: sweep report.html not written: {type(error).__name__}: {error}")
        execution = config.get("execution") or {}
        if execution.get("export"):  # the sweep as a parent run, its jobs as children
            from bench_app.exports.mlflow import export_finished

            for line in export_finished(
                sweep_dir, execution.get("export"), execution.get("mlflow_tracking_uri")
            ):
                print(line)
