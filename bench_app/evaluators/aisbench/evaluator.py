"""AISBench (ais-bench-benchmark): the task config bench_app writes, its command line, and the
verification of its output.

AISBench exits 0 even when its tasks fail (server down, missing data, failed requests), so a dataset
counts as done only when its results JSON holds the metric and no request failed.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from bench_app.common.errors import EvaluationError, UserError
from bench_app.common.files import tail
from bench_app.config.hub import model_folder
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators.aisbench import catalog
from bench_app.evaluators.base import (
    SAMPLES_FILE,
    Endpoint,
    EvaluationResult,
    EvaluationSession,
    EvaluationTask,
    Evaluator,
)
from bench_app.evaluators.task_host import TaskHost

TASK_FILE = "aisbench_task.py"
PROMPTS_SCRIPT = "aisbench_prompts.py"  # runs in the evaluator's environment (context budget)
HOST_SCRIPT = "aisbench_host.py"  # runs in the evaluator's environment (task host)
SAMPLES_SCRIPT = "aisbench_samples.py"  # runs in the evaluator's environment (per-sample records)
LOG_FILE = "aisbench.log"
MODEL_ABBR = "bench_app"

# Finds the module of a stock dataset config inside the evaluator environment (run with its python).
_LOCATE_SCRIPT = r"""
import importlib.util, json, pathlib, re, sys
spec = importlib.util.find_spec("ais_bench")
root = pathlib.Path(list(spec.submodule_search_locations)[0]) / "benchmark" / "configs" / "datasets"
found = {}
for name in sys.argv[1:]:
    hits = sorted(root.rglob(name + ".py"))
    if hits:
        parts = hits[0].relative_to(root).with_suffix("").parts
        module = "ais_bench.benchmark.configs.datasets." + ".".join(parts)
        variables = sorted(set(re.findall(r"\b([A-Za-z0-9_]+_datasets)\b", hits[0].read_text())))
        found[name] = {"module": module, "variables": variables}
print(json.dumps(found))
"""

_PERF_KEYS = {
    "TTFT": "ttft_ms",
    "TPOT": "tpot_ms",
    "ITL": "itl_ms",
    "OutputTokenThroughput": "output_tokens_per_s",
    "Output Token Throughput": "output_tokens_per_s",
    "Request Throughput": "requests_per_s",
    "RequestThroughput": "requests_per_s",
    "E2EL": "e2el_ms",
}


def evaluator_python(command: List[str]) -> str:
    """The interpreter of the evaluator's environment (next to its console script)."""
    candidate = Path(command[0]).parent / "python"
    return str(candidate) if candidate.exists() else "python3"


def locate_dataset_modules(command: List[str], names: Sequence[str]) -> Dict[str, dict]:
    done = subprocess.run(
        [evaluator_python(command), "-c", _LOCATE_SCRIPT, *names], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise EvaluationError(
            "cannot inspect the evaluator environment (is AISBench installed? run `make setup`)",
            done.stderr[-2000:],
        )
    return json.loads(done.stdout.strip().splitlines()[-1])


def task_config_text(
    stock: Dict[str, Any],
    settings: EvaluatorSettings,
    host: str,
    port: int,
    served_model: str,
    tokenizer_path: str,
) -> str:
    """The AISBench config file for one dataset: literal values only (mmengine's lazy import forbids
    calls)."""
    perf = settings.mode == "perf"
    model = {
        "attr": "service",
        "abbr": MODEL_ABBR,
        "path": tokenizer_path if perf else "",
        "model": served_model,
        "stream": perf,
        "request_rate": 0,
        "retry": settings.retry,
        "host_ip": host,
        "host_port": port,
        "url": "",
        "max_out_len": settings.max_out_len,
        "batch_size": settings.batch_size,
        "trust_remote_code": False,
        "generation_kwargs": settings.generation_kwargs,
    }
    model_type = "VLLMCustomAPIChatStream" if perf else "VLLMCustomAPIChat"
    lines = [
        "# Written by bench_app for one dataset; literal values only.",
        "from mmengine.config import read_base",
        "with read_base():",
        f"    from {stock['module']} import {', '.join(stock['variables'])}",
        f"from ais_bench.benchmark.models import {model_type}",
        "",
        f"models = [dict(type={model_type}, **{model!r})]",
        f"_stock = {' + '.join(stock['variables'])}",
    ]
    if settings.subsets is not None:
        lines.append(f"_stock = [d for d in _stock if d.get('name') in {settings.subsets!r}]")
    if settings.data_path:
        lines.append(f"_stock = [dict(d, path={settings.data_path!r}) for d in _stock]")
    lines += ["datasets = _stock", "summarizer = dict(attr='accuracy')", ""]
    return "\n".join(lines)


def evaluator_argv(
    command: List[str], task_file: str, work_dir: str, settings: EvaluatorSettings
) -> List[str]:
    argv = [
        *command,
        task_file,
        "--work-dir",
        work_dir,
        "--mode",
        settings.mode,
        "--max-num-workers",
        str(settings.max_num_workers),
    ]
    if settings.num_prompts is not None:
        argv += ["--num-prompts", str(settings.num_prompts)]
    # Always: AISBench's own default is one warmup request, in every mode.
    argv += ["--num-warmups", str(settings.num_warmups)]
    if settings.dump_eval_details:
        argv.append("--dump-eval-details")
    for key, value in sorted(settings.extra_args.items()):
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (False, None):
            argv += [flag, *(str(v) for v in value)] if isinstance(value, list) else [flag, str(value)]
    return argv


def _number(value: Any) -> Optional[float]:
    match = re.search(r"-?\d+(\.\d+)?", str(value))
    return float(match.group()) if match else None


def _parse_perf(run_dir: Path) -> Dict[str, Any]:
    """Numbers from AISBench's perf output: per-request stats (CSV, Average column) and totals (JSON)."""
    import csv  # here: a dry run never reads results

    metrics: Dict[str, Any] = {}
    for path in sorted(run_dir.glob("performances/*/*.csv")):
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows:
            continue
        header = rows[0]
        column = next((i for i, cell in enumerate(header) if cell.strip() in ("Average", "Mean")), None)
        for row in rows[1:]:
            name = _PERF_KEYS.get(row[0].strip()) if row else None
            if name and column is not None and column < len(row) and _number(row[column]) is not None:
                metrics[name] = _number(row[column])
    for path in sorted(run_dir.glob("performances/*/*.json")):
        data = json.loads(path.read_text())
        for key, value in data.items():
            name = _PERF_KEYS.get(key)
            chosen = value.get("total", value.get("Average")) if isinstance(value, dict) else value
            if name and name not in metrics and _number(chosen) is not None:
                metrics[name] = _number(chosen)
    return metrics


def _failure_reason(logs: str) -> str:
    reason = "no results were written"
    request_failures = re.search(r"failed reasons: (\{[^}]*\})", logs)
    if request_failures:
        return reason + f": requests failed {request_failures.group(1)}"
    if re.search(r"(is not exist|No such file|FileNotFoundError|FileExistsError)", logs):
        return reason + ": dataset files missing"
    if re.search(r"(Connection refused|ConnectError|Cannot connect)", logs):
        return reason + ": server unreachable"
    return reason


def collect_results(work_dir: Path, settings: EvaluatorSettings) -> EvaluationResult:
    """Verify AISBench's output and return the metrics; raise EvaluationError with the reason otherwise."""
    runs = (
        sorted(p for p in work_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d{8}_\d{6}", p.name))
        if work_dir.exists()
        else []
    )
    if not runs:
        raise EvaluationError("AISBench produced no output folder", tail(work_dir / LOG_FILE))
    run_dir = runs[-1]
    logs = "\n".join(tail(p, 15) for p in sorted(run_dir.glob("logs/**/*.out")))
    failed = sorted(run_dir.glob("**/*_failed.jsonl"))
    if failed:
        count = sum(1 for path in failed for line in path.read_text().splitlines() if line.strip())
        raise EvaluationError(
            f"{count} request(s) failed (see {failed[0].relative_to(work_dir)})", logs[-3000:]
        )
    if settings.mode == "perf":
        metrics = _parse_perf(run_dir)
        if not metrics:
            raise EvaluationError("no performance results were written", logs[-3000:])
        return EvaluationResult(metrics, run_dir)
    results = sorted(run_dir.glob(f"results/{MODEL_ABBR}/*.json"))
    if not results:
        raise EvaluationError(_failure_reason(logs), logs[-3000:])
    per_subset: Dict[str, Dict[str, float]] = {}
    for path in results:
        data = json.loads(path.read_text())
        numbers = {k: v for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not numbers:
            raise EvaluationError(f"{path.name} holds no metric: {data}", logs[-3000:])
        per_subset[path.stem] = numbers
    if settings.subsets is not None and len(per_subset) < len(settings.subsets):
        raise EvaluationError(
            f"results for {len(per_subset)} of {len(settings.subsets)} subsets", logs[-3000:]
        )
    if len(per_subset) == 1:
        return EvaluationResult(dict(next(iter(per_subset.values()))), run_dir)
    # Several subsets (ceval/mmlu subjects): unweighted mean of each metric, per-subset values kept.
    metrics: Dict[str, Any] = {}
    for name in sorted({k for numbers in per_subset.values() for k in numbers}):
        values = [numbers[name] for numbers in per_subset.values() if name in numbers]
        metrics[name] = round(sum(values) / len(values), 4)
    metrics["subsets"] = per_subset
    return EvaluationResult(metrics, run_dir)


class TaskHostSession(EvaluationSession):
    """One AISBench task host for the datasets of an engine group: AISBench is imported once, while the
    server starts, instead of once per dataset plus twice per subset (aisbench_host.py). A host that
    dies, times out or is stopped fails only the dataset it was running; the next one starts a new
    host."""

    def __init__(self, evaluator: AisbenchEvaluator, log_file: Path):
        super().__init__(evaluator)
        self.log_file = log_file
        self.host: Optional[TaskHost] = None
        try:
            self._start_host()
        except EvaluationError:
            pass  # tried again by the first dataset, which then fails with the reason

    def _start_host(self) -> None:
        evaluator = self.evaluator
        # HF libraries read HF_HOME when imported, i.e. once for the host: keep it inside the run.
        env = evaluator.environment(self.log_file.parent.parent)
        host = TaskHost(
            [evaluator_python(evaluator.command), str(Path(__file__).with_name(HOST_SCRIPT))],
            env,
            self.log_file,
            evaluator.label,
        )
        host.start()
        self.host = host  # only a started host

    def run(self, task: EvaluationTask, timeout_s: float, stop_reason: Callable[[], Optional[str]]) -> None:
        if self.host is None or not self.host.alive():
            self._start_host()
        # The host runs `ais_bench` or the samples script in a fork: it is sent their arguments.
        arguments = task.argv[len(self.evaluator.command) :] if task.program == "main" else task.argv[2:]
        try:
            code = self.host.run(
                task.program,
                arguments,
                task.work_dir,
                task.env,
                task.log_file,
                timeout_s,
                stop_reason,
            )
        except EvaluationError:
            self.host = None  # stopped by TaskHost.run
            raise
        if code != 0:
            raise EvaluationError(f"{self.evaluator.label} exited with code {code}", tail(task.log_file))

    def close(self) -> None:
        if self.host is not None:
            self.host.stop()
            self.host = None


@dataclass
class AisbenchEvaluator(Evaluator):
    # AISBench resolves relative dataset paths under this folder (AIS_BENCH_DATASETS_CACHE).
    datasets_root: Optional[str] = None
    # Run each engine group's datasets in one AISBench task host that imports AISBench once
    # (aisbench_host.py); false: one `ais_bench` process per dataset, as reproduce.sh runs it.
    task_host: bool = True

    name = "ais_bench"
    label = "AISBench"
    version_packages = {
        "ais_bench": ("ais-bench-benchmark",),
        "evaluator_torch": ("torch",),
        "evaluator_transformers": ("transformers",),
    }

    def __post_init__(self) -> None:
        self.stock: Dict[str, dict] = {}  # stock dataset configs found by prepare_run (not a setting)

    def check_dataset_names(self, names: Sequence[str]) -> None:
        # The config files of the evaluator environment's AISBench (no process: a directory listing).
        folder = catalog.configs_dir(Path(evaluator_python(self.command)).parent.parent)
        if folder is None:
            return  # an environment we cannot look into: prepare_run reports what it cannot find
        # One level (<family>/<name>.py) answers for the configs in use; the full scan only on a miss.
        unknown = [name for name in names if not any(folder.glob(f"*/{name}.py"))]
        known = catalog.stock_configs(folder) if unknown else {}
        unknown = [name for name in unknown if name not in known]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], list(known), 3, 0.6)
            raise UserError(
                f"AISBench has no dataset config {unknown[0]!r} (a dataset's `name:`). "
                + (f"Closest: {', '.join(close)}. " if close else "")
                + f"All {len(known)}: python -m bench_app.catalog [TEXT] (files in {folder})."
            )

    def prepare_run(self, dataset_names: Sequence[str]) -> None:
        self.stock = locate_dataset_modules(self.command, sorted(set(dataset_names)))

    def environment(self, work_dir: Path) -> Dict[str, str]:
        env = super().environment(work_dir)
        # Keep AISBench's and HF evaluate's caches inside the run, not in the repo or $HOME.
        env["HF_HOME"] = str(work_dir / ".hf_home")
        env["TERM"] = "dumb"
        if self.datasets_root:
            env["AIS_BENCH_DATASETS_CACHE"] = self.datasets_root
        env.update({k: str(v) for k, v in self.env.items()})  # the user's settings win
        return env

    def open_session(self, log_file: Path) -> EvaluationSession:
        # The host replaces the `ais_bench` console script of an environment; another command runs as is.
        command = self.command
        if (
            self.task_host
            and len(command) == 1
            and Path(command[0]).name == "ais_bench"
            and (Path(command[0]).with_name("python").exists())
        ):
            return TaskHostSession(self, log_file)
        return EvaluationSession(self)

    def prepare(
        self, short: str, name: str, settings: EvaluatorSettings, endpoint: Endpoint, work_dir: Path
    ) -> EvaluationTask:
        if name not in self.stock:
            raise EvaluationError(f"AISBench has no dataset config named {name!r}")
        if settings.data_path and not Path(settings.data_path).exists():
            raise EvaluationError(f"dataset files missing: {settings.data_path} does not exist")
        work_dir.mkdir(parents=True, exist_ok=True)
        task_file = work_dir / TASK_FILE
        task_file.write_text(
            task_config_text(
                self.stock[name],
                settings,
                endpoint.host,
                endpoint.port,
                endpoint.served_model,
                endpoint.model_path,
            )
        )
        return EvaluationTask(
            short=short,
            name=name,
            settings=settings,
            work_dir=work_dir,
            argv=evaluator_argv(self.command, str(task_file), str(work_dir), settings),
            env=self.environment(work_dir),
            log_file=work_dir / LOG_FILE,
            model_path=endpoint.model_path,
        )

    def rescore_task(
        self, short: str, name: str, settings: EvaluatorSettings, work_dir: Path
    ) -> EvaluationTask:
        task_file = work_dir / TASK_FILE
        runs = sorted(p for p in work_dir.glob("*") if p.is_dir() and re.fullmatch(r"\d{8}_\d{6}", p.name))
        if not task_file.exists() or not runs or not list(runs[-1].glob(f"predictions/{MODEL_ABBR}/*.jsonl")):
            raise EvaluationError(f"no stored predictions to re-score in {work_dir}")
        results = runs[-1] / "results"
        if results.exists():  # AISBench writes the new scores over these: keep them
            results.rename(results.with_name(f"results_before_rescore_{time.strftime('%Y%m%d_%H%M%S')}"))
        # Only the evaluation step, on that output folder; details on, for samples.jsonl.
        settings = replace(settings, mode="eval", dump_eval_details=True)
        argv = evaluator_argv(self.command, str(task_file), str(work_dir), settings)
        return EvaluationTask(
            short=short,
            name=name,
            settings=settings,
            work_dir=work_dir,
            argv=[*argv, "--reuse", runs[-1].name],
            env=self.environment(work_dir),
            log_file=work_dir / "rescore.log",
        )

    def samples_task(self, task: EvaluationTask) -> Optional[EvaluationTask]:
        script = Path(__file__).with_name(SAMPLES_SCRIPT)
        argv = [str(task.model_path), str(task.work_dir), str(task.work_dir / SAMPLES_FILE)]
        return replace(
            task,
            argv=[evaluator_python(self.command), str(script), *argv, str(task.settings.max_out_len or 0)],
            log_file=task.work_dir / "samples.log",
            program="samples",
        )

    def verify(self, task: EvaluationTask) -> EvaluationResult:
        return collect_results(task.work_dir, task.settings)

    def _stock_for(self, names: Sequence[str]) -> None:
        if not set(names) <= set(self.stock):
            self.prepare_run(sorted(set(names) | set(self.stock)))

    def _budget_task_text(self, name: str, settings: EvaluatorSettings, model_path: str) -> str:
        # The endpoint does not change the prompts; a fixed one keeps the cache key stable.
        return task_config_text(self.stock[name], settings, "127.0.0.1", 1, "context-budget", model_path)

    def prompt_inputs(
        self, short: str, name: str, settings: EvaluatorSettings, model_path: str
    ) -> Tuple[str, List[Path], List[Path]]:
        # Everything the task file is made of, without asking the evaluator environment (a cache hit must
        # cost no process): the dataset name and settings, and the installed AISBench itself.
        shaping = {k: getattr(settings, k) for k in ("subsets", "data_path", "max_out_len")}
        task = json.dumps([name, shaping, model_path, self.datasets_root], sort_keys=True, default=str)
        folder = model_folder(model_path)
        data = [Path(settings.data_path)] if settings.data_path else []
        env_root = Path(evaluator_python(self.command)).parent.parent
        package = [p / "__init__.py" for p in env_root.glob("lib/python3*/site-packages/ais_bench")]
        package.append(Path(__file__).with_name(PROMPTS_SCRIPT))  # how prompts are rendered and counted
        return task, [*data, *package], [folder] if folder else [Path(model_path)]

    def count_prompt_tokens(
        self, datasets: Sequence[Tuple[str, str, EvaluatorSettings]], model_path: str
    ) -> Dict[str, Dict[str, Any]]:
        self._stock_for([name for _, name, _ in datasets])
        results: Dict[str, Dict[str, Any]] = {}
        with tempfile.TemporaryDirectory(prefix="bench_app_budget_") as tmp:
            task_files: Dict[str, str] = {}
            for short, name, settings in datasets:
                if name not in self.stock:
                    results[short] = {"error": f"AISBench has no dataset config named {name!r}"}
                    continue
                task_file = Path(tmp) / short / TASK_FILE
                task_file.parent.mkdir(parents=True)
                task_file.write_text(self._budget_task_text(name, settings, model_path))
                task_files[str(task_file)] = short
            if not task_files:
                return results
            env = super().environment(Path(tmp))  # offline; the user's HF cache for the tokenizer
            if self.datasets_root:
                env["AIS_BENCH_DATASETS_CACHE"] = self.datasets_root
            done = subprocess.run(
                [
                    evaluator_python(self.command),
                    str(Path(__file__).with_name(PROMPTS_SCRIPT)),
                    model_path,
                    *task_files,
                ],
                capture_output=True,
                text=True,
                cwd=tmp,
                env=env,
                timeout=3600,
            )
        lines = done.stdout.strip().splitlines()
        try:
            found = json.loads(lines[-1]) if lines else {}
        except json.JSONDecodeError:
            found = {}
        if not isinstance(found, dict) or (done.returncode != 0 and "error" not in found):
            found = {
                "error": f"prompt rendering failed (exit {done.returncode}): "
                f"{(done.stderr.strip().splitlines() or ['no output'])[-1][:300]}"
            }
        for task_file, short in task_files.items():
            results[short] = (
                {"error": found["error"]}
                if "error" in found
                else found.get(task_file, {"error": "not rendered"})
            )
        return results

    def command_preview(self, short: str, settings: EvaluatorSettings) -> List[str]:
        return evaluator_argv(["ais_bench"], f"<run>/{short}/{TASK_FILE}", f"<run>/{short}", settings)
