"""Execution: one server per engine group, AISBench for each of its datasets, every outcome recorded.

A dataset is `ok` only with verified results; otherwise `failed` with the reason and a log excerpt, or
`skipped` (interrupted, or already ok when resuming). Ctrl-C or SIGTERM stop the running server and
evaluator process groups the same way a normal stop does.
"""
from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

from . import evaluator as ev
from .engine import OFFLINE_ENV, EngineError, EngineServer
from .metadata import now_iso
from .outcome import DatasetResult, RunOutcome, ServerRecord
from .plan import EngineGroup, RunPlan
from .processes import tail
from .progress import Progress
from .resolvers import PROJECT_ROOT
from .resources import LeaseError, ResourcePool, default_lease_dir, device_pool


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


def engine_environment(config) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    env.setdefault("VLLM_CACHE_ROOT", str(PROJECT_ROOT / ".cache" / "vllm"))
    env.update({k: str(v) for k, v in config.engine.env.items()})
    return env


def evaluator_environment(config, dataset_dir: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(OFFLINE_ENV)
    # Keep AISBench's and HF evaluate's caches inside the run, not in the repo or $HOME.
    env["HF_HOME"] = str(dataset_dir / ".hf_home")
    env["TERM"] = "dumb"
    if config.evaluator.datasets_root:
        env["AIS_BENCH_DATASETS_CACHE"] = config.evaluator.datasets_root
    env.update({k: str(v) for k, v in config.evaluator.env.items()})
    return env


def resource_pool(config, run_dir: Path) -> ResourcePool:
    devices, visibility_env = device_pool(config.execution.devices, config.engine.device_visibility_env, os.environ)
    lease_dir = Path(config.execution.lease_dir) if config.execution.lease_dir else default_lease_dir()
    return ResourcePool(lease_dir, devices, visibility_env, config.execution.max_cpu_servers, holder=str(run_dir))


def execute(config, plan: RunPlan, run_dir: Path, snapshot, console, already_ok: Dict[str, dict],
            stop_requested: Callable[[], bool] = lambda: False, label: str = "") -> RunOutcome:
    started = time.monotonic()
    parallel = max(1, int(config.execution.parallel_groups))
    # rich's live status line is one per console: side-by-side groups report in plain lines.
    progress = Progress(console, total=len(plan.datasets), enabled=config.execution.progress, live=parallel == 1,
                        label=label)
    groups = GroupRunner(config, plan, run_dir, snapshot, progress, resource_pool(config, run_dir))
    for short, previous in already_ok.items():
        if short in {d.short for d in plan.datasets}:
            dataset = plan.dataset(short)
            groups.results[short] = DatasetResult(short, dataset.name, "ok", dataset.group, metrics=previous.get("metrics", {}),
                                                  reason="kept from the resumed run")
    todo = [(g, [s for s in g.datasets if s not in already_ok]) for g in plan.groups]
    todo = [(g, pending) for g, pending in todo if pending]
    status = "completed"
    futures = []
    with _sigterm_as_interrupt():
        try:
            if todo:
                groups.stock = ev.locate_dataset_modules(config.evaluator.command, sorted({d.name for d in plan.datasets}))
            with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="engine-group") as workers:
                futures += [workers.submit(groups.run_group, g, pending) for g, pending in todo]
                try:
                    while wait(futures, timeout=1.0).not_done:
                        if stop_requested():
                            raise Interrupted("the sweep was interrupted")
                    for future in futures:
                        future.result()  # re-raises an unexpected error of a worker
                except (KeyboardInterrupt, Interrupted):
                    # Before the pool's shutdown waits for them: workers stop their evaluator and server, then return.
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
            results[dataset.short] = DatasetResult(dataset.short, dataset.name, "skipped", dataset.group,
                                                   reason="run interrupted before this dataset")
            snapshot.record_dataset(dataset.short, {"result": results[dataset.short].to_dict()})
    ordered = {d.short: results[d.short] for d in plan.datasets}
    if status == "completed" and any(r.status != "ok" for r in ordered.values()):
        status = "failed"
    servers = sorted(groups.servers, key=lambda s: s.group)
    return RunOutcome(status=status, results=ordered, servers=servers, wall_s=time.monotonic() - started)


def _died(server: EngineServer) -> Optional[str]:
    death = server.death()
    return f"server died during the evaluation ({death})" if death else None


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


class GroupRunner:
    """Runs engine groups (possibly side by side in threads) and collects their results."""

    def __init__(self, config, plan: RunPlan, run_dir: Path, snapshot, progress: Progress, pool: ResourcePool):
        self.config = config
        self.plan = plan
        self.run_dir = run_dir
        self.snapshot = snapshot
        self.progress = progress
        self.pool = pool
        self.stock: Dict[str, dict] = {}
        self.results: Dict[str, DatasetResult] = {}
        self.servers: List[ServerRecord] = []
        self.cancel = threading.Event()
        self.index = {d.short: i + 1 for i, d in enumerate(plan.datasets)}

    def _interrupted(self) -> Optional[str]:
        return "run interrupted" if self.cancel.is_set() else None

    def _record(self, result: DatasetResult, record: ServerRecord) -> None:
        if self.cancel.is_set() and result.status == "failed":
            # A failure caused by stopping the run is not a finding about the model or the config.
            result.status, result.reason = "skipped", f"run interrupted during this dataset ({result.reason})"
        self.results[result.short] = result
        self.snapshot.record_dataset(result.short, {"server": record.to_dict(), "result": result.to_dict()})

    def run_group(self, group: EngineGroup, pending: List[str]) -> None:
        if self.cancel.is_set():
            return
        config, progress = self.config, self.progress
        record = ServerRecord(group=group.index, argv=group.argv, port=int(group.engine_args["port"]))
        self.servers.append(record)
        server = lease = None

        def fail_all(shorts, reason, log_tail=""):
            for short in shorts:
                self._record(DatasetResult(short, self.plan.dataset(short).name, "failed", group.index, reason=reason,
                                           log_tail=log_tail or None, server_started_at=record.started_at), record)

        try:
            with progress.phase(f"starting server for group {group.index} ({', '.join(pending)})", self.index[pending[0]]):
                try:
                    lease = self.pool.acquire(group.engine_args["host"], int(group.engine_args["port"]),
                                              int(group.engine_args.get("tensor_parallel_size") or 1),
                                              config.execution.resource_wait_timeout_s, self.cancel.is_set,
                                              lambda message: progress.log(f"group {group.index}: {message}"))
                    record.__dict__.update(lease.record())
                    record.log_file = str(self.run_dir / "logs" / f"engine_group{group.index}.log")
                    server = EngineServer(group.argv, group.engine_args["host"], lease.port,
                                          {**engine_environment(config), **lease.environment()},
                                          Path(record.log_file), config.execution.server_start_timeout_s,
                                          config.execution.server_stop_timeout_s)
                    record.argv = server.argv
                    record.started_at = now_iso()
                    server.start()
                    record.ready_after_s = round(server.wait_ready(self._interrupted), 1)
                    record.__dict__.update(server.read_back())
                except (EngineError, LeaseError) as error:
                    reason = getattr(error, "reason", str(error))
                    record.error = reason
                    progress.log(f"group {group.index} failed: {reason}")
                    fail_all(pending, reason, getattr(error, "log_tail", ""))
                    return
            planned = group.engine_args["max_model_len"]
            if record.max_model_len != planned:
                reason = f"server runs with max_model_len {record.max_model_len}, planned {planned}; not evaluating at the wrong context"
                record.error = reason
                fail_all(pending, reason)
                return
            devices = f", devices {record.devices}" if record.devices else ""
            progress.log(f"group {group.index}: server ready in {record.ready_after_s} s on port {record.port}{devices} "
                         f"(max_model_len {record.max_model_len}, vLLM {record.version})")
            for position, short in enumerate(pending):
                if self.cancel.is_set():
                    return
                death = server.death()
                if death:
                    fail_all(pending[position:], f"server died before this dataset ({death})", tail(Path(record.log_file), 30))
                    return
                with progress.phase(f"evaluating {short}", self.index[short]):
                    result = _evaluate(config, self.plan.dataset(short), group, record, server, self.run_dir, self.stock,
                                       lambda: self._interrupted() or _died(server))
                self._record(result, record)
                progress.log(f"{short}: {result.status} {result.metrics or result.reason or ''}")
        finally:
            if server is not None:
                with progress.phase(f"stopping server of group {group.index}"):
                    try:
                        server.stop()
                    except EngineError as error:
                        record.error = error.reason
                        progress.log(f"warning: {error.reason}")
            if lease is not None:
                lease.release()  # only once the server's processes are gone


def _evaluate(config, dataset, group, record: ServerRecord, server: EngineServer, run_dir: Path, stock,
              stop_reason: Callable[[], Optional[str]]) -> DatasetResult:
    dataset_dir = run_dir / dataset.short
    result = DatasetResult(dataset.short, dataset.name, "failed", group.index, server_started_at=record.started_at,
                           output_dir=str(dataset_dir))
    started = time.monotonic()
    try:
        if dataset.name not in stock:
            raise ev.EvaluationError(f"AISBench has no dataset config named {dataset.name!r}")
        data_path = dataset.evaluator.data_path
        if data_path and not Path(data_path).exists():
            raise ev.EvaluationError(f"dataset files missing: {data_path} does not exist")
        dataset_dir.mkdir(parents=True, exist_ok=True)
        task_file = dataset_dir / ev.TASK_FILE
        task_file.write_text(ev.task_config_text(stock[dataset.name], dataset.evaluator, server.host if server.host != "0.0.0.0" else "127.0.0.1",
                                                 record.port, record.served_model or "", dataset.engine_args["model_path"]))
        argv = ev.evaluator_argv(config.evaluator.command, str(task_file), str(dataset_dir), dataset.evaluator)
        ev.run_evaluation(argv, dataset_dir, evaluator_environment(config, dataset_dir),
                          config.execution.evaluation_timeout_s, stop_reason)
        collected = ev.collect_results(dataset_dir, dataset.evaluator)
        result.status, result.metrics = "ok", collected.metrics
    except ev.EvaluationError as error:
        result.reason, result.log_tail = error.reason, error.log_tail or None
    finally:
        result.evaluation_s = round(time.monotonic() - started, 1)
    return result
