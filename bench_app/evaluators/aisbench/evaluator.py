"""AISBench (ais-bench-benchmark) as a bench_app evaluator: its sessions (a task host per engine group,
or one `ais_bench` process per dataset), planning checks, and rescoring.

The task file and command line are bench_app.evaluators.aisbench.task's; reading AISBench's output is
bench_app.evaluators.aisbench.results'.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_app.common.errors import EvaluationError, UserError
from bench_app.common.files import tail
from bench_app.config.hub import model_folder
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators.aisbench import catalog
from bench_app.evaluators.aisbench.code_runners import code_runners
from bench_app.evaluators.aisbench.datafiles import locate as locate_data_files
from bench_app.evaluators.aisbench.install import AisbenchInstall
from bench_app.evaluators.aisbench.memory import memory_refusal
from bench_app.evaluators.aisbench.results import collect_results, running_task_log, task_failure, task_label
from bench_app.evaluators.aisbench.session import TaskHostSession
from bench_app.evaluators.aisbench.task import (
    CUSTOM_CONFIG_FOLDER,
    LOG_FILE,
    MODEL_ABBR,
    PROMPTS_SCRIPT,
    SAMPLES_SCRIPT,
    TASK_FILE,
    check_config_files,
    copy_config_folder,
    evaluator_argv,
    evaluator_python,
    task_config_text,
)
from bench_app.evaluators.base import (
    MANAGED_VARIABLES,
    Endpoint,
    EvaluationResult,
    EvaluationSession,
    EvaluationTask,
    Evaluator,
    exit_description,
)
from bench_app.records.names import REQUESTS_FILE, SAMPLES_FILE

# ais_bench/benchmark/openicl/icl_inferencer/icl_base_inferencer.py: MAX_BATCH_SIZE.
AISBENCH_MAX_BATCH_SIZE = 100000


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
        self.custom: Dict[str, List[str]] = {}  # own config file -> its *_datasets lists (checked)

    @cached_property
    def install(self) -> AisbenchInstall:
        """The evaluator environment's AISBench, looked into on first use and kept for the run."""
        # The base class's variables do not depend on the work dir: any folder gives them.
        env = super().environment(Path(tempfile.gettempdir()))
        return AisbenchInstall(self.python(), env, self.datasets_root)

    def check_dataset_names(self, names: Sequence[str]) -> None:
        # The config files of the evaluator environment's AISBench (no process: a directory listing).
        folder = self.install.datasets_folder
        if folder is None:
            return  # an environment we cannot look into: prepare_run reports what it cannot find
        # One level (<family>/<name>.py) answers for the configs in use; the full scan only on a miss.
        unknown = [name for name in names if not any(folder.glob(f"*/{name}.py"))]
        known = self.install.stock_configs if unknown else {}
        unknown = [name for name in unknown if name not in known]
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], list(known), 3, 0.6)
            raise UserError(
                f"AISBench has no dataset config {unknown[0]!r} (a dataset's `name:`). "
                + (f"Closest: {', '.join(close)}. " if close else "")
                + f"All {len(known)}: bench-app catalog [TEXT] (files in {folder})."
            )

    def python(self) -> str:
        return evaluator_python(self.command)  # not self.install.python: building the install asks for it

    def code_datasets(
        self, datasets: Sequence[Tuple[str, str, EvaluatorSettings]]
    ) -> Dict[str, Tuple[str, Optional[str]]]:
        return code_runners(self.install.datasets_folder, datasets)

    def check_model_configs(self, choices: Sequence[Tuple[str, str]]) -> None:
        folder = self.install.models_folder
        if folder is None:
            return  # an environment we cannot look into: the task fails naming the module
        known = self.install.model_configs
        for name, mode in choices:
            if name not in known:
                import difflib

                close = difflib.get_close_matches(name, list(known), 3, 0.5)
                raise UserError(
                    f"AISBench has no model config {name!r} (aisbench.model). "
                    + (f"Closest: {', '.join(close)}. " if close else "")
                    + f"All {len(known)}: bench-app catalog --models (files in {folder})."
                )
            if mode == "perf" and catalog.stream_variant(name, known) is None:
                raise UserError(
                    f"aisbench.mode=perf measures streamed requests, but AISBench's model config {name!r} "
                    "does not stream and has no streaming config beside it; choose a streaming one "
                    "(bench-app catalog --models shows which stream)."
                )

    def check_settings(self, settings: Sequence[Tuple[str, EvaluatorSettings]]) -> None:
        # AISBench's inference task refuses a concurrency outside 1..MAX_BATCH_SIZE (TINFER-PARAM-001) only
        # once it has started; said here before any server starts.
        for short, dataset in settings:
            if not 1 <= int(dataset.batch_size) <= AISBENCH_MAX_BATCH_SIZE:
                raise UserError(
                    f"{short}: aisbench.batch_size={dataset.batch_size} (requests in flight): AISBench "
                    f"refuses a concurrency outside 1..{AISBENCH_MAX_BATCH_SIZE} (TINFER-PARAM-001)."
                )

    def model_module(self, settings: EvaluatorSettings) -> str:
        """The AISBench model config a dataset's task file starts from (its streaming variant in perf)."""
        known = self.install.model_configs
        if settings.model not in known:
            raise EvaluationError(f"AISBench has no model config named {settings.model!r} (aisbench.model)")
        name = catalog.stream_variant(settings.model, known) if settings.mode == "perf" else settings.model
        return catalog.model_module(known[name or settings.model], self.install.models_folder)

    def load_config_files(self, paths: Sequence[str]) -> Dict[str, Dict[str, Any]]:
        """Each dataset config file loaded in the evaluator's environment as AISBench loads it:
        {path: {"variables": [...]}} or {path: {"error": ..., "file": ..., "line": N}}."""
        return check_config_files(self.install, list(paths))

    def data_files(self, name: str, settings: EvaluatorSettings):
        return locate_data_files(name, settings.config_file, settings.data_path, self.install)

    def check_config_files(self, paths: Sequence[str]) -> None:
        unknown = [p for p in paths if p not in self.custom]
        if not unknown:
            return
        for path, found in self.load_config_files(unknown).items():
            if "variables" in found:
                self.custom[path] = found["variables"]
                continue
            file = found.get("file") or path
            at = f"{file}, line {found['line']}" if found.get("line") else file
            at += "" if file == path else f" (imported by {path})"
            raise UserError(
                f"dataset config file {at}: {found['error']}. AISBench loads it like its own dataset configs "
                "(mmengine: `with read_base():` imports, classes imported from AISBench or your "
                "evaluator.python_path), and it must define a list named like `mydata_datasets`."
            )

    def _dataset_source(self, name: str, settings: EvaluatorSettings, work_dir: Path) -> Dict[str, Any]:
        """What the task file imports the dataset from: AISBench's stock config, or the dataset's own
        file copied with its siblings beside the task file."""
        if not settings.config_file:
            stock = self.install.stock_modules([name])
            if name not in stock:
                raise EvaluationError(f"AISBench has no dataset config named {name!r}")
            return stock[name]
        self.check_config_files([settings.config_file])
        source = copy_config_folder(Path(settings.config_file), work_dir / CUSTOM_CONFIG_FOLDER)
        return {**source, "variables": self.custom[settings.config_file]}

    def prepare_run(self, dataset_names: Sequence[str]) -> None:
        self.install.stock_modules(dataset_names)  # all in one process, not one per dataset

    def environment(self, work_dir: Path) -> Dict[str, str]:
        env = dict(self.install.env)
        # Keep AISBench's and HF evaluate's caches inside the run, not in the repo or $HOME.
        env["HF_HOME"] = str(work_dir / ".hf_home")
        env["TERM"] = "dumb"
        if self.datasets_root:
            env["AIS_BENCH_DATASETS_CACHE"] = self.datasets_root
        # The user's settings win, but for the variables the base class puts together from them (PYTHONPATH
        # with the overlay in front: the sandbox and override_modules need it).
        env.update({k: str(v) for k, v in self.env.items() if k not in MANAGED_VARIABLES})
        return env

    def open_session(self, log_file: Path) -> EvaluationSession:
        # The host replaces the `ais_bench` console script of an environment; another command runs as is.
        command = self.command
        if (
            self.task_host
            and not self.override_modules  # a fresh process imports yours
            and len(command) == 1
            and Path(command[0]).name == "ais_bench"
            and (Path(command[0]).with_name("python").exists())
        ):
            return TaskHostSession(self, log_file)
        return EvaluationSession(self)

    def prepare(
        self, short: str, name: str, settings: EvaluatorSettings, endpoint: Endpoint, work_dir: Path
    ) -> EvaluationTask:
        if settings.data_path and not Path(settings.data_path).exists():
            raise EvaluationError(f"dataset files missing: {settings.data_path} does not exist")
        if settings.mode in ("all", "infer", "perf"):  # AISBench's memory guard, said with its cause
            refusal = memory_refusal()
            if refusal:
                raise EvaluationError(refusal)
        work_dir.mkdir(parents=True, exist_ok=True)
        source = self._dataset_source(name, settings, work_dir)
        task_file = work_dir / TASK_FILE
        task_file.write_text(
            task_config_text(
                source,
                self.model_module(settings),
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
        stamp = time.strftime("%Y%m%d_%H%M%S")
        results = runs[-1] / "results"
        if results.exists():  # AISBench writes the new scores over these: keep them
            results.rename(results.with_name(f"results_before_rescore_{stamp}"))
        # Scored with today's task file: the model config's postprocessors (e.g. the reasoning removed
        # before scoring) and the dataset config as they are now. A run made before keeps its own file.
        source = self._dataset_source(name, settings, work_dir)
        current = task_config_text(
            source, self.model_module(settings), settings, "127.0.0.1", 1, "rescore", ""
        )
        if task_file.read_text() != current:
            task_file.rename(task_file.with_name(f"{task_file.stem}_before_rescore_{stamp}.py"))
            task_file.write_text(current)
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
        work_dir = task.work_dir
        argv = [
            str(task.model_path),
            str(work_dir),
            str(work_dir / REQUESTS_FILE),
            str(work_dir / SAMPLES_FILE),
        ]
        return replace(
            task,
            argv=[
                self.install.python,
                str(script),
                *argv,
                str(task.settings.max_out_len or 0),
                str(task.settings.repeats),
            ],
            log_file=task.work_dir / "samples.log",
            program="samples",
        )

    def exit_failure(self, task: EvaluationTask, code: int) -> EvaluationError:
        """AISBench's cause when its logs name one (its error code and message, or the exception a task
        ended with); else where it was when it was killed."""
        if task.program != "main":  # the samples script: its own log says it
            return super().exit_failure(task, code)
        ended = f"{self.label} {exit_description(code)}"
        failure = task_failure(task.work_dir, task.log_file)
        if failure is not None:
            return EvaluationError(f"{ended}: {failure[0]}", failure[1])
        where, log_tail = self._running_task(task)
        return EvaluationError(ended + where, log_tail)

    def stopped_during(self, task: EvaluationTask) -> Tuple[str, str]:
        # A task that failed before (e.g. its process was killed: AISBench's own monitor then waits for it
        # until the timeout) is the cause, not merely where AISBench was.
        failure = task_failure(task.work_dir, task.log_file)
        if failure is not None:
            return f"; {failure[0]}", failure[1]
        return self._running_task(task)

    def _running_task(self, task: EvaluationTask) -> Tuple[str, str]:
        """Where AISBench was: the task it wrote to last, and that task's log tail."""
        running = running_task_log(task.work_dir)
        if running is None:
            return "", tail(task.log_file)
        return f" during its {task_label(running)}", tail(running)

    def verify(self, task: EvaluationTask) -> EvaluationResult:
        return collect_results(task.work_dir, task.settings)

    def _budget_task_text(
        self, name: str, settings: EvaluatorSettings, model_path: str, work_dir: Path
    ) -> str:
        # The endpoint does not change the prompts; a fixed one keeps the cache key stable.
        module = self.model_module(settings)
        endpoint = ("127.0.0.1", 1, "context-budget")
        return task_config_text(
            self._dataset_source(name, settings, work_dir), module, settings, *endpoint, model_path
        )

    def prompt_inputs(
        self, short: str, name: str, settings: EvaluatorSettings, model_path: str
    ) -> Tuple[str, List[Path], List[Path]]:
        # Everything the task file is made of, without asking the evaluator environment (a cache hit must
        # cost no process): the dataset name and settings, and the installed AISBench itself.
        shaping = {k: getattr(settings, k) for k in ("subsets", "data_path", "max_out_len", "config_file")}
        task = json.dumps([name, shaping, model_path, self.datasets_root], sort_keys=True, default=str)
        folder = model_folder(model_path)
        data = [Path(settings.data_path)] if settings.data_path else []
        if settings.config_file:  # the dataset's own config and what it may import beside it
            data += sorted(Path(settings.config_file).parent.glob("*.py"))
        # the user's code that may load or shape the data: loaders, fixed modules of AISBench
        data += [p for folder in self.python_path for p in sorted(Path(folder).rglob("*.py"))]
        data += [Path(file) for _, file in sorted(self.override_modules.items())]
        # the installed AISBench, and how prompts are rendered and counted
        package = [*self.install.package_inits, Path(__file__).with_name(PROMPTS_SCRIPT)]
        return task, [*data, *package], [folder] if folder else [Path(model_path)]

    def count_prompt_tokens(
        self, datasets: Sequence[Tuple[str, str, EvaluatorSettings]], model_path: str
    ) -> Dict[str, Dict[str, Any]]:
        stock = self.install.stock_modules(
            [name for _, name, settings in datasets if not settings.config_file]
        )
        results: Dict[str, Dict[str, Any]] = {}
        with tempfile.TemporaryDirectory(prefix="bench_app_budget_") as tmp:
            task_files: Dict[str, str] = {}
            for short, name, settings in datasets:
                if name not in stock and not settings.config_file:
                    results[short] = {"error": f"AISBench has no dataset config named {name!r}"}
                    continue
                task_file = Path(tmp) / short / TASK_FILE
                task_file.parent.mkdir(parents=True)
                task_file.write_text(self._budget_task_text(name, settings, model_path, task_file.parent))
                task_files[str(task_file)] = short
            if not task_files:
                return results
            env = dict(self.install.env)  # offline; the user's HF cache for the tokenizer
            if self.datasets_root:
                env["AIS_BENCH_DATASETS_CACHE"] = self.datasets_root
            done = subprocess.run(
                [
                    self.install.python,
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
