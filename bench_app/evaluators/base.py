"""The evaluator interface: prepare the task of one dataset, run it, verify its output into metrics.

An evaluator is a dataclass whose fields are its settings (conf/evaluator/<option>.yaml besides
`_target_`), built by bench_app.config.components. The per-dataset settings it receives (`EvaluatorSettings`)
come from the `aisbench:` block and the dataset's own config (bench_app.config.schema).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from bench_app.common.errors import EvaluationError, UserError
from bench_app.common.files import tail
from bench_app.common.processes import ProcessGroup
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators.samples import answer_sources, reasoning_summary, repeat_summary
from bench_app.evaluators.sandbox import SANDBOX_MODES, SANDBOX_VARIABLE, Sandbox, SandboxLimits, refusal
from bench_app.records.documents import AnswerSources, ReasoningSummary, RepeatSummary, SampleRecord
from bench_app.records.names import SAMPLES_FILE

# The folder of the sitecustomize.py that loads evaluator.override_modules, and the variable it reads.
OVERLAY = str(Path(__file__).parent / "overlay")
OVERRIDES_VARIABLE = "BENCH_APP_OVERRIDE_MODULES"
# Variables of the evaluator's environment that bench_app puts together (evaluator.env's PYTHONPATH goes after
# the overlay) or owns (the sandbox's command line): evaluator.env cannot replace them.
MANAGED_VARIABLES = ("PYTHONPATH", OVERRIDES_VARIABLE, SANDBOX_VARIABLE)
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}


TIMED_OUT = "evaluation timed out"


def reason_to_stop(
    deadline: float, timeout_s: float, stop_reason: Callable[[], Optional[str]]
) -> Optional[str]:
    """Why a running evaluation must stop now: its time (timeout_s, ending at the monotonic deadline) is
    up, or stop_reason() says why (the server died, the run is interrupted); None to go on."""
    if time.monotonic() > deadline:
        return f"{TIMED_OUT} after {timeout_s:.0f} s"
    return stop_reason()


def exit_description(code: int) -> str:
    """ "exited with code 3", "was killed by SIGKILL": how a process ended, in words."""
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Endpoint:
    """The running server an evaluation talks to."""

    host: str
    port: int
    served_model: str
    # Local model folder (or hub id): the tokenizer for evaluators that count tokens.
    model_path: str
    max_model_len: Optional[int] = None


@dataclass
class EvaluationTask:
    """One prepared evaluation: what to run, where, and with which settings."""

    short: str
    name: str
    settings: EvaluatorSettings
    work_dir: Path
    argv: List[str]
    env: Dict[str, str]
    log_file: Path
    model_path: str = ""  # the model's folder (its tokenizer), for evaluators that count tokens
    # "main": the evaluation itself; "samples": writing its per-sample records (Evaluator.samples_task).
    program: str = "main"


@dataclass
class SamplesOutcome:
    """What became of a dataset's per-sample records: how many were written, or why none were."""

    count: Optional[int] = None
    error: Optional[str] = None
    # bench_app.evaluators.samples.reasoning_summary of the records (None: no answer was recorded).
    reasoning: Optional[ReasoningSummary] = None
    # bench_app.evaluators.samples.answer_sources: answers reused from the request cache / generated.
    answers: Optional[AnswerSources] = None
    # bench_app.evaluators.samples.repeat_summary: repeats in one run (None: none).
    repeats: Optional[RepeatSummary] = None


@dataclass
class EvaluationResult:
    metrics: Dict[str, Any]
    work_dir: Path
    details: Dict[str, Any] = field(default_factory=dict)
    samples: SamplesOutcome = field(default_factory=SamplesOutcome)


@dataclass
class Evaluator(ABC):
    """Base of the evaluator components. Subclasses add their own settings as dataclass fields."""

    # The evaluator's command; the task's arguments are appended.
    command: List[str]
    # Extra environment variables of the evaluator process.
    env: Dict[str, str] = field(default_factory=dict)
    # Folders of your own Python modules (dataset loaders, evaluators, postprocessors that your own
    # dataset configs import), put first on the evaluator's import path. Relative to the directory the
    # run starts in; the run keeps a copy of them in configs/python_path/.
    python_path: List[str] = field(default_factory=list)
    # Modules of the evaluator's environment replaced by your files: {dotted module name: .py file}, e.g.
    # {ais_bench.benchmark.datasets.livecodebench: fixes/livecodebench.py}. The file loads under that name
    # (its relative imports resolve in the installed package). A python_path module named like an
    # installed one is refused unless named here. The plan lists them; each dataset runs in its own process.
    override_modules: Dict[str, str] = field(default_factory=dict)
    # The programs a model wrote, where a dataset is scored by running them: auto runs each in a sandbox
    # (bench_app.evaluators.sandbox) and refuses the run where none can start; off runs them as they are.
    sandbox: str = "auto"
    sandbox_tool: str = "bwrap"
    sandbox_limits: SandboxLimits = field(default_factory=SandboxLimits)

    name: ClassVar[str] = "evaluator"
    label: ClassVar[str] = "evaluator"
    # Reported versions: key in metadata.yaml `versions` -> distribution names tried in its env.
    version_packages: ClassVar[Dict[str, Tuple[str, ...]]] = {}

    def check_dataset_names(self, names: Sequence[str]) -> None:
        """At planning: raise UserError for a dataset config the evaluator does not have (naming the
        closest ones). The default has nothing to check against."""
        return None

    def check_config_files(self, paths: Sequence[str]) -> None:
        """At planning: raise UserError for a dataset's own config file the evaluator cannot use (with the
        file and line). The default takes none."""
        if paths:
            raise UserError(f"{self.label} takes no dataset config files (config_file: {paths[0]})")

    def data_files(self, name: str, settings: Any) -> Optional[Any]:
        """At planning: the dataset's data files on this machine (.present, .problem(), .record()), or
        None when the evaluator cannot tell (then nothing is checked)."""
        return None

    def check_model_configs(self, choices: Sequence[Tuple[str, str]]) -> None:
        """At planning: raise UserError for a (model config, mode) the evaluator does not have (e.g.
        aisbench.model), naming the closest ones. The default has nothing to check against."""
        return None

    def check_settings(self, settings: Sequence[Tuple[str, EvaluatorSettings]]) -> None:
        """At planning: raise UserError for a dataset's settings (short name, settings) that the evaluator
        would refuse when its task starts. The default refuses nothing."""
        return None

    def prepare_run(self, dataset_names: Sequence[str]) -> None:
        """Once per run, before any server starts: look up what the datasets need."""
        return None

    @abstractmethod
    def prepare(
        self, short: str, name: str, settings: EvaluatorSettings, endpoint: Endpoint, work_dir: Path
    ) -> EvaluationTask:
        """Write what the evaluator needs for one dataset into work_dir; raise EvaluationError."""

    @abstractmethod
    def verify(self, task: EvaluationTask) -> EvaluationResult:
        """Check the evaluator's output and turn it into metrics; raise EvaluationError with the reason."""

    def rescore_task(
        self, short: str, name: str, settings: EvaluatorSettings, work_dir: Path
    ) -> EvaluationTask:
        """The task that scores again the predictions stored in work_dir, without inference
        (bench_app.reports.rescore); raise EvaluationError if there are none or this evaluator cannot."""
        raise EvaluationError(f"{self.label} cannot re-score stored predictions")

    def samples_task(self, task: EvaluationTask) -> Optional[EvaluationTask]:
        """The task that writes task.work_dir/SAMPLES_FILE from the evaluator's output (run after the
        evaluation, in the same session); None if this evaluator keeps no per-sample output."""
        return None

    @abstractmethod
    def command_preview(self, short: str, settings: EvaluatorSettings) -> List[str]:
        """The command a dataset will run, with placeholders, for the dry-run plan."""

    def prompt_inputs(
        self, short: str, name: str, settings: EvaluatorSettings, model_path: str
    ) -> Tuple[str, List[Path], List[Path]]:
        """What the prompts of a dataset depend on: (task text, data files, tokenizer files), the key of
        the token-count cache (bench_app.run.planning.budget)."""
        raise NotImplementedError(f"{self.label} cannot render prompts for the context budget")

    def count_prompt_tokens(
        self, datasets: Sequence[Tuple[str, str, EvaluatorSettings]], model_path: str
    ) -> Dict[str, Dict[str, Any]]:
        """Per dataset short name: {"prompt_tokens": [...], "max_out_len": [...]} as the evaluator would
        send them (chat template applied), or {"error": why it could not be counted}."""
        return {
            short: {"error": f"{self.label} cannot render prompts for the context budget"}
            for short, _, _ in datasets
        }

    def code_datasets(
        self, datasets: Sequence[Tuple[str, str, EvaluatorSettings]]
    ) -> Dict[str, Tuple[str, Optional[str]]]:
        """Of (short name, name, settings), the datasets scored by running the code the model wrote:
        short -> (what runs it, None where each program runs in the sandbox, else why it cannot). The
        default evaluator runs no code."""
        return {}

    def python(self) -> str:
        """The interpreter of the evaluator's environment (what sandboxed programs run with)."""
        return sys.executable

    def sandboxing(self) -> Sandbox:
        return Sandbox(self.sandbox_tool, self.sandbox_limits, self.python())

    def plan_sandbox(
        self, datasets: Sequence[Tuple[str, str, EvaluatorSettings]]
    ) -> Optional[Dict[str, Any]]:
        """At planning: metadata.yaml `sandbox` for the datasets that run the model's code (None: none
        does). Raises UserError where evaluator.sandbox=auto and the sandbox cannot hold them."""
        if self.sandbox not in SANDBOX_MODES:
            raise UserError(f"evaluator.sandbox={self.sandbox!r}: one of {', '.join(SANDBOX_MODES)}.")
        found = self.code_datasets(datasets)
        if not found:
            return None
        runners = {short: runner for short, (runner, _) in found.items()}
        if self.sandbox == "off":
            return {"mode": "off", "datasets": runners}
        held_out = {short: (runner, why) for short, (runner, why) in found.items() if why}
        if held_out:
            short, (runner, why) = next(iter(held_out.items()))
            raise UserError(
                f"{short}: {runner} runs the code the model wrote where bench_app cannot put it in a sandbox "
                f"({why}). Only on a machine you can afford to lose: evaluator.sandbox=off runs it "
                "unsandboxed (recorded in the snapshot)."
            )
        sandbox = self.sandboxing()
        problem = sandbox.problem()
        if problem:
            raise refusal(runners, problem)
        return sandbox.record(runners)

    def environment(self, work_dir: Path) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(OFFLINE_ENV)
        env.update({k: str(v) for k, v in self.env.items()})
        env.pop(SANDBOX_VARIABLE, None)  # only ever bench_app's own
        if self.sandbox == "auto":  # what the evaluator starts a model's program under (sitecustomize.py)
            env[SANDBOX_VARIABLE] = self.sandboxing().variable()
        front = [OVERLAY] if self.override_modules or self.sandbox == "auto" else []
        if self.python_path or front:
            inherited = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
            env["PYTHONPATH"] = os.pathsep.join([*front, *self.python_path, *inherited])
        if self.override_modules:
            files = {module: str(Path(file).resolve()) for module, file in self.override_modules.items()}
            env[OVERRIDES_VARIABLE] = json.dumps(files)
        return env

    def shadowed_modules(self) -> List[str]:
        """At planning: the modules used in place of the evaluator environment's own (override_modules).
        Raises UserError for a python_path folder that is missing, an override file that is missing or a
        module the environment does not have, and a python_path module that shadows an installed one
        without being named in override_modules."""
        if not isinstance(self.override_modules, Mapping):
            raise UserError(
                f"evaluator.override_modules must map module names to files, got {self.override_modules!r}; "
                "e.g. '++evaluator.override_modules={ais_bench.benchmark.datasets.gsm8k: fixes/gsm8k.py}'"
            )
        site = sorted(Path(self.command[0]).resolve().parent.parent.glob("lib/python3*/site-packages"))
        installed = {p.name.split(".")[0] for p in site[0].iterdir()} if site else set()
        for module, file in self.override_modules.items():
            if not Path(file).is_file():
                raise UserError(f"evaluator.override_modules: {module}: the file {file} does not exist.")
            if site and not installed_module_file(site[0], module):
                raise UserError(
                    f"evaluator.override_modules: {module} is not a module of the evaluator's environment "
                    f"({site[0]}); put a new module on evaluator.python_path instead."
                )
        shadowed = []
        for folder in map(Path, self.python_path):
            if not folder.is_dir():
                raise UserError(f"evaluator.python_path: {folder} is not a folder.")
            shadowed += sorted(name for name in top_level_modules(folder) if name in installed)
        unnamed = [name for name in shadowed if name not in self.override_modules]
        if unnamed:
            example = Path(self.python_path[0]) / f"{unnamed[0]}.py"
            raise UserError(
                "evaluator.python_path shadows module(s) of the evaluator's environment: "
                f"{', '.join(unnamed)}. Rename them, or name each in evaluator.override_modules to use yours "
                f"in its place (e.g. '++evaluator.override_modules={{{unnamed[0]}: {example}}}')."
            )
        return sorted(self.override_modules)

    def run(self, task: EvaluationTask, timeout_s: float, stop_reason: Callable[[], Optional[str]]) -> None:
        """Run the task in its own process group; bounded in time; stopped as soon as stop_reason()
        says why (the server died, the run is interrupted)."""
        group = ProcessGroup(task.argv, task.log_file, env=task.env, cwd=task.work_dir, append=False)
        try:
            group.start()
        except OSError as error:
            raise EvaluationError(
                f"cannot start the {self.label} command {task.argv[0]!r}: {error}"
            ) from None
        deadline = time.monotonic() + timeout_s
        try:
            while group.running():
                reason = reason_to_stop(deadline, timeout_s, stop_reason)
                if reason:
                    where, log_tail = self.stopped_during(task)
                    if not reason.startswith(TIMED_OUT):  # stopped from outside: its reason says it all
                        where = ""
                    raise EvaluationError(reason + where, log_tail)
                time.sleep(0.5)
        finally:
            group.stop()  # also the task workers it left behind
        if group.exit_code() != 0:
            raise self.exit_failure(task, group.exit_code())

    def exit_failure(self, task: EvaluationTask, code: int) -> EvaluationError:
        """The error of a task whose process ended with `code` (negative: killed by that signal): what the
        evaluator's own logs say caused it. This default knows only the code and the log's tail."""
        return EvaluationError(f"{self.label} {exit_description(code)}", tail(task.log_file))

    def stopped_during(self, task: EvaluationTask) -> Tuple[str, str]:
        """Where a task stopped from outside (timed out, the server died) was: (words to add to the reason,
        "" if unknown; the log tail that shows it)."""
        return "", tail(task.log_file)

    def open_session(self, log_file: Path) -> EvaluationSession:
        """What stays up while one engine group's datasets are evaluated, opened before its server
        starts (so slow start-up work overlaps the server's); its own output goes to log_file."""
        return EvaluationSession(self)


class EvaluationSession:
    """The datasets of one engine group, one after another. This default keeps nothing between them:
    each dataset's task runs as its own process group (Evaluator.run)."""

    def __init__(self, evaluator: Evaluator):
        self.evaluator = evaluator

    def __enter__(self) -> EvaluationSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def run(self, task: EvaluationTask, timeout_s: float, stop_reason: Callable[[], Optional[str]]) -> None:
        self.evaluator.run(task, timeout_s, stop_reason)

    def evaluate(
        self,
        short: str,
        name: str,
        settings: EvaluatorSettings,
        endpoint: Endpoint,
        work_dir: Path,
        timeout_s: float,
        stop_reason: Callable[[], Optional[str]],
    ) -> EvaluationResult:
        task = self.evaluator.prepare(short, name, settings, endpoint, work_dir)
        self.run(task, timeout_s, stop_reason)
        samples = self.write_samples(task, timeout_s, stop_reason)
        try:
            result = self.evaluator.verify(task)
        except EvaluationError as error:
            error.samples = samples  # a failed dataset keeps the records of what it answered
            raise
        result.samples = samples
        return result

    def write_samples(
        self, task: EvaluationTask, timeout_s: float, stop_reason: Callable[[], Optional[str]]
    ) -> SamplesOutcome:
        """Run the evaluator's samples task; never raises (records are a view, not the result)."""
        samples_task = self.evaluator.samples_task(task)
        if samples_task is None:
            return SamplesOutcome(error=f"{self.evaluator.label} keeps no per-sample output")
        try:
            self.run(samples_task, timeout_s, stop_reason)
        except EvaluationError as error:
            return SamplesOutcome(error=f"per-sample records not written: {error.reason}")
        out_file = task.work_dir / SAMPLES_FILE
        if not out_file.exists():
            return SamplesOutcome(error="per-sample records not written: " + tail(samples_task.log_file, 1))
        with open(out_file, encoding="utf-8") as handle:
            records = [SampleRecord.from_dict(json.loads(line)) for line in handle if line.strip()]
        return SamplesOutcome(
            count=len(records),
            reasoning=reasoning_summary(records),
            answers=answer_sources(records),
            repeats=repeat_summary(records),
        )

    def close(self) -> None:
        """Stop whatever the session started; must not raise."""


def installed_module_file(site_packages: Path, module: str) -> Optional[Path]:
    """The file of an installed module (name.py or name/__init__.py) under site-packages, if any."""
    base = site_packages.joinpath(*module.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)


def top_level_modules(folder: Path) -> List[str]:
    """The names `import` finds in a folder: name.py, and packages (folders holding .py files)."""
    names = {p.stem for p in folder.glob("*.py")}
    names |= {p.name for p in folder.iterdir() if p.is_dir() and any(p.rglob("*.py"))}
    return sorted(names)
