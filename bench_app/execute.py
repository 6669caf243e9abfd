"""Execution: one server per engine group, AISBench for each of its datasets, every outcome recorded.

A dataset is `ok` only with verified results; otherwise `failed` with the reason and a log excerpt, or
`skipped` (interrupted, or already ok when resuming). Ctrl-C or SIGTERM stop the running server and
evaluator process groups the same way a normal stop does.
"""
from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List

from . import evaluator as ev
from .engine import OFFLINE_ENV, EngineError, EngineServer, free_port, port_is_free
from .metadata import now_iso
from .outcome import DatasetResult, RunOutcome, ServerRecord
from .plan import EngineGroup, RunPlan
from .processes import tail
from .progress import Progress
from .resolvers import PROJECT_ROOT


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


def _choose_port(group: EngineGroup) -> int:
    host, port = group.engine_args["host"], int(group.engine_args["port"])
    if port == 0:
        return free_port(host)
    if not port_is_free(host, port):
        raise EngineError(f"port {port} on {host} is already in use; free it or set vllm.port=0 to pick a free port automatically")
    return port


def execute(config, plan: RunPlan, run_dir: Path, snapshot, console, already_ok: Dict[str, dict]) -> RunOutcome:
    started = time.monotonic()
    progress = Progress(console, total=len(plan.datasets), enabled=config.execution.progress)
    results: Dict[str, DatasetResult] = {}
    servers: List[ServerRecord] = []
    index = {d.short: i + 1 for i, d in enumerate(plan.datasets)}
    stock: Dict[str, dict] = {}
    status = "completed"
    try:
        with _sigterm_as_interrupt():
            for group in plan.groups:
                pending = [s for s in group.datasets if s not in already_ok]
                for short in group.datasets:
                    if short in already_ok:
                        results[short] = DatasetResult(short, plan.dataset(short).name, "ok", group.index,
                                                       metrics=already_ok[short].get("metrics", {}),
                                                       reason="kept from the resumed run")
                if not pending:
                    continue
                if not stock:
                    stock.update(ev.locate_dataset_modules(config.evaluator.command, sorted({d.name for d in plan.datasets})))
                _run_group(config, plan, group, pending, run_dir, snapshot, progress, index, results, servers, stock)
    except (KeyboardInterrupt, Interrupted):
        status = "interrupted"
        progress.log("interrupted: servers and evaluations stopped")
    for dataset in plan.datasets:  # whatever did not run is recorded, never silently absent
        if dataset.short not in results:
            results[dataset.short] = DatasetResult(dataset.short, dataset.name, "skipped", dataset.group,
                                                   reason="run interrupted before this dataset")
            snapshot.record_dataset(dataset.short, {"result": results[dataset.short].to_dict()})
    ordered = {d.short: results[d.short] for d in plan.datasets}
    if status == "completed" and any(r.status != "ok" for r in ordered.values()):
        status = "failed"
    return RunOutcome(status=status, results=ordered, servers=servers, wall_s=time.monotonic() - started)


def _run_group(config, plan, group, pending, run_dir, snapshot, progress, index, results, servers, stock) -> None:
    record = ServerRecord(group=group.index, argv=group.argv, port=int(group.engine_args["port"]))
    servers.append(record)
    server = None

    def fail_all(shorts, reason, log_tail=""):
        for short in shorts:
            result = DatasetResult(short, plan.dataset(short).name, "failed", group.index, reason=reason,
                                   log_tail=log_tail or None, server_started_at=record.started_at)
            results[short] = result
            snapshot.record_dataset(short, {"server": record.__dict__, "result": result.to_dict()})

    try:
        with progress.phase(f"starting server for group {group.index} ({', '.join(pending)})", index[pending[0]]):
            try:
                port = _choose_port(group)
                record.port = port
                record.log_file = str(run_dir / "logs" / f"engine_group{group.index}.log")
                server = EngineServer(group.argv, group.engine_args["host"], port, engine_environment(config),
                                      Path(record.log_file), config.execution.server_start_timeout_s,
                                      config.execution.server_stop_timeout_s)
                record.argv = server.argv
                record.started_at = now_iso()
                server.start()
                record.ready_after_s = round(server.wait_ready(), 1)
                record.__dict__.update(server.read_back())
            except EngineError as error:
                record.error = error.reason
                progress.log(f"group {group.index} failed: {error.reason}")
                fail_all(pending, error.reason, error.log_tail)
                return
        planned = group.engine_args["max_model_len"]
        if record.max_model_len != planned:
            reason = f"server runs with max_model_len {record.max_model_len}, planned {planned}; not evaluating at the wrong context"
            record.error = reason
            fail_all(pending, reason)
            return
        progress.log(f"server ready in {record.ready_after_s} s on port {record.port} "
                     f"(max_model_len {record.max_model_len}, vLLM {record.version})")
        for position, short in enumerate(pending):
            death = server.death()
            if death:
                fail_all(pending[position:], f"server died before this dataset ({death})", tail(Path(record.log_file), 30))
                return
            with progress.phase(f"evaluating {short}", index[short]):
                results[short] = _evaluate(config, plan.dataset(short), group, record, server, run_dir, stock)
            snapshot.record_dataset(short, {"server": record.__dict__, "result": results[short].to_dict()})
            progress.log(f"{short}: {results[short].status} {results[short].metrics or results[short].reason or ''}")
    finally:
        if server is not None:
            with progress.phase(f"stopping server of group {group.index}"):
                try:
                    server.stop()
                except EngineError as error:
                    record.error = error.reason
                    progress.log(f"warning: {error.reason}")


def _evaluate(config, dataset, group, record: ServerRecord, server: EngineServer, run_dir: Path, stock) -> DatasetResult:
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
                          config.execution.evaluation_timeout_s, server.death)
        collected = ev.collect_results(dataset_dir, dataset.evaluator)
        result.status, result.metrics = "ok", collected.metrics
    except ev.EvaluationError as error:
        result.reason, result.log_tail = error.reason, error.log_tail or None
    finally:
        result.evaluation_s = round(time.monotonic() - started, 1)
    return result
