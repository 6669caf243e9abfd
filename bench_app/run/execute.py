"""Execution: one server per engine group, the evaluator for each of its datasets, every outcome recorded.

Orchestration only: which engine or evaluator runs is the plan's business (components chosen in
conf/), how processes are started and stopped is bench_app.common.processes'. A dataset is `ok` only with
verified results; otherwise `failed` with the reason and a log excerpt, or `skipped` (interrupted, or
already ok when resuming). Ctrl-C or SIGTERM stop the running server and evaluator process groups the
same way a normal stop does.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator

from bench_app.records.documents import DatasetEntry
from bench_app.run.groups import GroupRunner
from bench_app.run.outcome import RunOutcome
from bench_app.run.planning.devices import device_pool
from bench_app.run.planning.plan import RunPlan
from bench_app.run.progress import Progress
from bench_app.run.serving.resources import ResourcePool, default_lease_dir


class Interrupted(Exception):
    pass


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C: servers stopped, snapshot finalised as interrupted."""

    def handler(signum, frame):
        raise Interrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def resource_pool(config, plan: RunPlan, run_dir: Path) -> ResourcePool:
    devices, visibility_env = device_pool(
        config.execution.devices, plan.engine.device_visibility_env, os.environ
    )
    lease_dir = Path(config.execution.lease_dir) if config.execution.lease_dir else default_lease_dir()
    return ResourcePool(
        lease_dir,
        devices,
        visibility_env,
        config.execution.max_cpu_servers,
        holder=str(run_dir),
        cpu_cores_per_server=config.execution.cpu_cores_per_server,
        cpu_binding_env=plan.engine.cpu_binding_env,
    )


def execute(
    config,
    plan: RunPlan,
    run_dir: Path,
    snapshot,
    console,
    already_ok: Dict[str, DatasetEntry],
    stop_requested: Callable[[], bool] = lambda: False,
    label: str = "",
) -> RunOutcome:
    started = time.monotonic()
    parallel = max(1, int(config.execution.parallel_groups))
    # rich's live status line is one per console: side-by-side groups report in plain lines.
    progress = Progress(
        console, total=len(plan.datasets), enabled=config.execution.progress, live=parallel == 1, label=label
    )
    groups = GroupRunner(config, plan, run_dir, snapshot, progress, resource_pool(config, plan, run_dir))
    for short, previous in already_ok.items():
        if short in {d.short for d in plan.datasets}:
            dataset = plan.dataset(short)
            # everything the earlier run recorded of it (samples, answers, timings), not only its score
            said = "kept from the resumed run" + (f"; {previous.reason}" if previous.reason else "")
            update = {"name": dataset.name, "status": "ok", "group": dataset.group, "reason": said}
            groups.results[short] = previous.model_copy(update=update)
    todo = [(g, [s for s in g.datasets if s not in already_ok]) for g in plan.groups]
    todo = [(g, pending) for g, pending in todo if pending]
    status = "completed"
    futures = []
    with _sigterm_as_interrupt():
        try:
            if todo:
                plan.evaluator.prepare_run([d.name for d in plan.datasets if not d.evaluator.config_file])
            with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="engine-group") as workers:
                futures += [workers.submit(groups.run_group, g, pending) for g, pending in todo]
                try:
                    while wait(futures, timeout=1.0).not_done:
                        if stop_requested():
                            raise Interrupted("the sweep was interrupted")
                    for future in futures:
                        future.result()  # re-raises an unexpected error of a worker
                except (KeyboardInterrupt, Interrupted):
                    # Before the pool's shutdown waits for them: workers stop their processes, then return.
                    groups.cancel.set()
                    progress.log("interrupted: stopping servers and evaluations")
                    raise
        except (KeyboardInterrupt, Interrupted):
            groups.cancel.set()
            status = "interrupted"
            _wait_quietly(futures)  # a second Ctrl-C may have cut the pool's own wait short
    if status == "interrupted":
        progress.log("interrupted: servers and evaluations stopped")
    results = groups.results
    for dataset in plan.datasets:  # whatever did not run is recorded, never silently absent
        if dataset.short not in results:
            results[dataset.short] = DatasetEntry(
                name=dataset.name,
                status="skipped",
                group=dataset.group,
                reason="run interrupted before this dataset",
            )
            snapshot.record_dataset(dataset.short, result=results[dataset.short])
    ordered = {d.short: results[d.short] for d in plan.datasets}
    if status == "completed" and any(r.status != "ok" for r in ordered.values()):
        status = "failed"
    servers = sorted(groups.servers, key=lambda s: s.group)
    if groups.cache is not None:
        groups.cache.close()
    return RunOutcome(status=status, results=ordered, servers=servers, wall_s=time.monotonic() - started)


def _wait_quietly(futures) -> None:
    """Let the workers finish stopping their processes, even if Ctrl-C is pressed again meanwhile."""
    for future in futures:
        while True:
            try:
                future.result()
                break
            except (KeyboardInterrupt, Interrupted):
                continue
            except Exception:
                break
