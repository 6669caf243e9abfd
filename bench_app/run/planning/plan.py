"""Planning: from the validated config to what will run. Pure: no server, no process, no file written.

For every dataset: effective engine args = model engine args (+) that dataset's vllm_config_override,
computed from fresh copies so an override never leaks into another dataset, whatever the order; and
the effective evaluator settings. Datasets with identical effective engine args share one server
(one engine group); K distinct engine configs give K server starts. The engine and evaluator
components are built here from their conf groups, so a bad `_target_` or setting stops the run early.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench_app.common.errors import UserError
from bench_app.common.files import file_sha256
from bench_app.config.components import instantiate_component
from bench_app.config.schema import (
    AISBENCH_MODES,
    CUT_IN_THINKING_POLICIES,
    AisbenchConf,
    BenchAppConfig,
    EvaluatorSettings,
    VllmArgs,
)
from bench_app.engines import Engine
from bench_app.evaluators import Evaluator
from bench_app.evaluators.sandbox import sandbox_off_warning
from bench_app.records.documents import ContextBudget, DataRecord
from bench_app.run.planning import devices, load_levels, repeats

VLLM_ARG_NAMES = tuple(f.name for f in fields(VllmArgs))


@dataclass
class DatasetPlan:
    short: str  # key in the config (dataset group option), used for folder and file names
    name: str  # the evaluator's dataset config name
    description: str
    engine_args: Dict[str, Any]
    override_applied: Dict[str, Any]
    evaluator: EvaluatorSettings
    group: int = -1
    # Filled by bench_app.run.planning.budget before the snapshot: prompt token counts against max_model_len.
    context_budget: Optional[ContextBudget] = None
    # execution.load_levels: the requests in flight of this level (short = <dataset>@c<level>).
    load_level: Optional[int] = None
    # The data files it reads on this machine (None: the evaluator cannot tell).
    data: Optional[DataRecord] = None
    # execution.decide (bench_app.run.staging): per stage, per subset, the indices asked; their counts.
    stages: Optional[List[List[List[int]]]] = None
    stage_questions: Optional[List[int]] = None


@dataclass
class EngineGroup:
    index: int
    engine_args: Dict[str, Any]
    argv: List[str]
    # Derived launch facts recorded next to the argv (vLLM: the translated hf_overrides).
    launch_details: Dict[str, Any]
    fingerprint: str
    datasets: List[str] = field(default_factory=list)
    # Why this server would not run as planned; a real run refuses to start while there are any.
    problems: List[str] = field(default_factory=list)
    # Servers of this engine configuration behind the relay (execution.replicas).
    replicas: int = 1


@dataclass
class RunPlan:
    datasets: List[DatasetPlan]
    groups: List[EngineGroup]
    engine: Engine
    evaluator: Evaluator
    # Modules of evaluator.python_path used in place of the evaluator environment's own.
    shadowed: List[str] = field(default_factory=list)
    # Datasets whose data is missing or incomplete (execution.data_check=error: a real run refuses).
    data_problems: List[str] = field(default_factory=list)
    # execution.decide: what each stage is tested with (bench_app.run.staging.Decider; built above run/).
    decider: Any = None
    # metadata.yaml `sandbox`: where the model's code runs for the datasets scored by running it (None: none).
    sandbox: Optional[Dict[str, Any]] = None

    def dataset(self, short: str) -> DatasetPlan:
        return next(d for d in self.datasets if d.short == short)

    def group_of(self, short: str) -> EngineGroup:
        return self.groups[self.dataset(short).group]

    @property
    def problems(self) -> List[str]:
        return [problem for group in self.groups for problem in group.problems]

    @property
    def warnings(self) -> List[str]:
        """What will run but may not measure what the user wants (printed before anything starts)."""
        said = [w for dataset in self.datasets for w in greedy_thinking_warning(dataset)]
        return said + sandbox_off_warning(self.sandbox)


# AISBench's own configs use temperature 0.01 as their stand-in for greedy decoding.
GREEDY_TEMPERATURE = 0.01


def greedy_thinking_warning(dataset: DatasetPlan) -> List[str]:
    """Thinking on (or left to a model served with a reasoning parser) with greedy decoding."""
    settings = dataset.evaluator
    parser = dataset.engine_args.get("reasoning_parser")
    thinking = settings.thinking or (settings.thinking is None and parser)
    temperature = settings.generation_kwargs.get("temperature")
    if not thinking or temperature is None or float(temperature) > GREEDY_TEMPERATURE:
        return []
    return [
        f"dataset {dataset.short}: thinking mode with greedy decoding (temperature {temperature}). Qwen3's "
        "model card: do not use greedy decoding in thinking mode, it can degrade into endless repetition; "
        "it recommends temperature 0.6, top_p 0.95, top_k 20, min_p 0 (aisbench.generation_kwargs), or "
        "aisbench.thinking=false with temperature 0.7, top_p 0.8."
    ]


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Dict[str, Any]:
    """A new dict: `base` with `override` merged in (nested mappings merged, everything else replaced)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@functools.cache
def _engine_args_schema():
    # Built once: OmegaConf.structured is slow and merge() copies it anyway.
    return OmegaConf.structured(VllmArgs)


def validate_engine_args(args: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """Check merged engine args against the VllmArgs schema (a dataset's override is not typed)."""
    unknown = sorted(set(args) - set(VLLM_ARG_NAMES))
    if unknown:
        raise UserError(
            f"{where}: unknown engine argument(s) {unknown}. Valid engine arguments: "
            f"{', '.join(VLLM_ARG_NAMES)}; "
            "any other vLLM flag goes under extra_args (e.g. extra_args: {enable_chunked_prefill: true})."
        )
    try:
        typed = OmegaConf.merge(_engine_args_schema(), dict(args))
        return OmegaConf.to_container(typed, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        key = f" {error.full_key}" if getattr(error, "full_key", None) else "s"
        raise UserError(f"{where}: invalid engine argument{key}: {str(error).splitlines()[0]}") from None


def fingerprint(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def evaluator_settings(config: BenchAppConfig, dataset) -> EvaluatorSettings:
    """The run-wide aisbench block with this dataset's values; every field flows from the schema."""
    run_wide = {f.name: copy.deepcopy(getattr(config.aisbench, f.name)) for f in fields(AisbenchConf)}
    if run_wide["mode"] not in AISBENCH_MODES:
        raise UserError(
            f"aisbench.mode: {run_wide['mode']!r} is not supported. Valid modes: {', '.join(AISBENCH_MODES)}."
        )
    if run_wide["cut_in_thinking"] not in CUT_IN_THINKING_POLICIES:
        raise UserError(
            f"aisbench.cut_in_thinking: {run_wide['cut_in_thinking']!r} is not a policy. "
            f"Valid: {', '.join(CUT_IN_THINKING_POLICIES)}."
        )
    num_prompts = dataset.num_prompts if dataset.num_prompts is not None else run_wide["num_prompts"]
    if num_prompts is not None and num_prompts < 1:
        raise UserError(f"num_prompts must be >= 1 (or null for all prompts), got {num_prompts}.")
    sample_size = dataset.sample_size if dataset.sample_size is not None else run_wide["sample_size"]
    if sample_size is not None and (sample_size < 1 or num_prompts is not None):
        raise UserError(
            f"sample_size {sample_size}: a probe of at least 1 prompt, and not with num_prompts "
            f"({num_prompts}; the first N of each subset); choose one."
        )
    given = dataset.repeats if dataset.repeats is not None else config.benchmark.repeats
    return EvaluatorSettings(
        **{
            **run_wide,
            "repeats": repeats.checked_repeats(given, run_wide["mode"]),
            "num_prompts": num_prompts,
            "sample_size": sample_size,
            "max_out_len": dataset.model_config.max_out_len
            if run_wide["max_out_len"] is None
            else run_wide["max_out_len"],
            # Run-wide kwargs win: they are what a sweep varies (e.g. aisbench.generation_kwargs.seed=1,2,3).
            "generation_kwargs": deep_merge(
                dataset.model_config.generation_kwargs, run_wide["generation_kwargs"]
            ),
            "thinking": dataset.model_config.thinking
            if dataset.model_config.thinking is not None
            else run_wide["thinking"],
            "subsets": list(dataset.subsets) if dataset.subsets is not None else None,
            "data_path": dataset.data_path,
            "config_file": dataset.config_file,
        }
    )


def build_plan(config: BenchAppConfig) -> RunPlan:
    if not config.datasets:
        raise UserError("No dataset selected. Choose at least one, e.g. 'dataset=[ceval,longbenchv2]'.")
    repeats.check_form(config.benchmark)
    engine = instantiate_component(config.engine, Engine, "engine")
    evaluator = instantiate_component(config.evaluator, Evaluator, "evaluator")
    if not engine.starts_server and str(config.execution.replicas).strip() != "1":
        raise UserError(
            f"execution.replicas={config.execution.replicas}: the {engine.label} runs as it is "
            f"(engine={engine.name}); bench_app starts no servers for it. Leave execution.replicas at 1."
        )
    # typed by the schema when Hydra composed the config; a running server's own values (engine=external)
    model_args = engine.planned_args(asdict(config.vllm))
    engine.argv(model_args, "vllm")  # checks the model's own args (e.g. rope_scaling) once
    validated: Dict[str, Dict[str, Any]] = {}  # by override: suites share a few (e.g. one YaRN bundle)
    plans: List[DatasetPlan] = []
    for short, dataset in config.datasets.items():
        override = copy.deepcopy(dict(dataset.vllm_config_override or {}))
        where = f"dataset {short} (vllm_config_override)"
        if override and not engine.starts_server:
            raise UserError(
                f"dataset {short}: its vllm_config_override ({', '.join(sorted(override))}) needs a server "
                f"started with other arguments, but the {engine.label} runs as it is (engine={engine.name}). "
                "Leave the dataset out, or give it a run with its own server."
            )
        if override:  # untyped in the schema (Dict[str, Any]): checked here, once per distinct override
            key = fingerprint(override)
            if key not in validated:
                validated[key] = validate_engine_args(deep_merge(model_args, override), where)
                engine.argv(validated[key], where)
            engine_args = copy.deepcopy(validated[key])
        else:
            engine_args = copy.deepcopy(model_args)
        if not dataset.name and not dataset.config_file:
            raise UserError(
                f"dataset {short}: give `name:` (an AISBench dataset config, e.g. "
                "gsm8k_gen_0_shot_cot_chat_prompt; bench-app catalog lists them) or `config_file:` (your own "
                "AISBench dataset config)."
            )
        plans.append(
            DatasetPlan(
                short=short,
                name=dataset.name or Path(dataset.config_file).stem,
                description=dataset.description,
                engine_args=engine_args,
                override_applied=override,
                evaluator=evaluator_settings(config, dataset),
            )
        )
    if config.execution.load_levels:
        levels = load_levels.check_levels(config.execution.load_levels, {p.evaluator.mode for p in plans})
        plans = load_levels.expand(plans, levels, f"{config.benchmark.name} {config.benchmark.timestamp}")
    if engine.headers() and any(p.evaluator.mode == "perf" for p in plans):
        raise UserError(
            f"aisbench.mode=perf talks to the {engine.label} directly (its latency is the measurement), and "
            "AISBench would need the API key written into its task file, which bench_app never does. "
            "Measure perf against a server without a key (engine.api_key_env=null)."
        )
    shadowed = evaluator.shadowed_modules()  # before anything loads the user's modules
    evaluator.check_dataset_names(sorted({p.name for p in plans if not p.evaluator.config_file}))
    evaluator.check_config_files(sorted({p.evaluator.config_file for p in plans if p.evaluator.config_file}))
    evaluator.check_model_configs(sorted({(plan.evaluator.model, plan.evaluator.mode) for plan in plans}))
    evaluator.check_settings([(plan.short, plan.evaluator) for plan in plans])
    sandbox = evaluator.plan_sandbox([(plan.short, plan.name, plan.evaluator) for plan in plans])
    data_problems = check_data(config.execution.data_check, evaluator, plans)
    groups = group_by_engine(plans, engine, config.execution.restart_per_dataset)
    plan_replicas(config, engine, groups, plans)
    return RunPlan(
        datasets=plans,
        groups=groups,
        engine=engine,
        evaluator=evaluator,
        shadowed=shadowed,
        sandbox=sandbox,
        data_problems=data_problems if config.execution.data_check == "error" else [],
    )


DATA_CHECKS = ("error", "warn", "off")


def check_data(setting: str, evaluator: Evaluator, plans: List[DatasetPlan]) -> List[str]:
    """Each dataset's data files (DatasetPlan.data) and what is wrong with them, before anything starts."""
    if setting not in DATA_CHECKS:
        raise UserError(f"execution.data_check={setting!r}: one of {', '.join(DATA_CHECKS)}")
    if setting == "off":
        return []
    problems: List[str] = []
    seen: Dict[str, Any] = {}
    for plan in plans:
        key = json.dumps([plan.name, plan.evaluator.data_path, plan.evaluator.config_file])
        if key not in seen:
            seen[key] = evaluator.data_files(plan.name, plan.evaluator)
            found = seen[key]
            problem = found.problem() if found is not None else None
            if problem:
                base = plan.short.split("@")[0]
                problems.append(
                    f"dataset {base}: its data is missing: {problem}. Get it with `bench-app datasets fetch "
                    f"dataset={base}` (offline: `--from DIR` with the archive copied by hand); "
                    f"`bench-app datasets check` lists what each dataset reads."
                )
        if seen[key] is not None:
            plan.data = seen[key].record()
    return problems


def plan_replicas(config: BenchAppConfig, engine: Engine, groups: List[EngineGroup], plans) -> None:
    """How many servers each engine group runs (its datasets' `replicas`, else execution.replicas), refused
    here when the devices or CPU slots cannot hold them, before anything is written or started."""
    execution = config.execution
    pool = None  # looked up (nvidia-smi, perhaps) only for a group that asks for more than one server
    side_by_side = max(1, min(int(execution.parallel_groups), len(groups)))
    for group in groups:
        bases = sorted({short.split("@")[0] for short in group.datasets})
        given = {str(config.datasets[b].replicas) for b in bases if config.datasets[b].replicas is not None}
        if len(given) > 1:
            raise UserError(
                f"datasets {', '.join(bases)} share one engine configuration (group {group.index}) but ask "
                f"for different replicas ({', '.join(sorted(given))}); give them the same, or set "
                "execution.replicas."
            )
        setting = given.pop() if given else execution.replicas
        if str(setting).strip() == "1":
            continue
        where = f"replicas={setting} (group {group.index}: {', '.join(bases)})"
        if not engine.starts_server:
            raise UserError(f"{where}: the {engine.label} runs as it is; bench_app starts no servers for it.")
        perf = [p.short for p in plans if p.group == group.index and p.evaluator.mode == "perf"]
        if perf:
            raise UserError(
                f"{where}: perf mode measures one server's latency and talks to it directly "
                f"({', '.join(perf)}); measure perf with one replica."
            )
        if pool is None:
            pool, _ = devices.device_pool(execution.devices, engine.device_visibility_env, os.environ)
        group.replicas = devices.replica_count(
            setting,
            devices.devices_per_server(group.engine_args),
            pool,
            execution.max_cpu_servers,
            side_by_side,
            execution.cpu_cores_per_server,
        )


def group_by_engine(plans: List[DatasetPlan], engine: Engine, restart_per_dataset: bool) -> List[EngineGroup]:
    """One group per distinct effective engine config, in order of first use."""
    groups: List[EngineGroup] = []
    by_fingerprint: Dict[str, EngineGroup] = {}
    for plan in plans:
        key = fingerprint(plan.engine_args)
        group = None if restart_per_dataset else by_fingerprint.get(key)
        if group is None:
            where = f"dataset {plan.short}"
            group = EngineGroup(
                index=len(groups),
                engine_args=plan.engine_args,
                argv=engine.argv(plan.engine_args, where),
                launch_details=engine.launch_details(plan.engine_args, where),
                fingerprint=key,
                problems=engine.launch_problems(plan.engine_args, where),
            )
            groups.append(group)
            by_fingerprint[key] = group
        group.datasets.append(plan.short)
        plan.group = group.index
    return groups


def config_fingerprint(plan: RunPlan) -> Dict[str, str]:
    """Per-dataset fingerprint of everything that decides a result (used by resume)."""
    return {d.short: fingerprint(effective_dataset_record(d)) for d in plan.datasets}


# Settings added after runs first recorded their fingerprints, with their defaults: left out while at
# their default, so that runs made before them still resume.
_LATER_ENGINE_ARGS: Dict[str, Any] = {"reasoning_parser": None}
_LATER_EVALUATOR_SETTINGS: Dict[str, Any] = {
    "thinking": None,
    "cut_in_thinking": "no_answer",
    "config_file": None,
    "sample_size": None,
    "sample_seed": 0,
    "sample_ids": None,
    "repeats": 1,
}


def effective_dataset_record(plan: DatasetPlan) -> Dict[str, Any]:
    def at_later_default(key: str, value: Any, later: Dict[str, Any]) -> bool:
        return key in later and value == later[key]

    engine_args = {
        k: v for k, v in plan.engine_args.items() if not at_later_default(k, v, _LATER_ENGINE_ARGS)
    }
    settings = asdict(plan.evaluator)
    settings = {k: v for k, v in settings.items() if not at_later_default(k, v, _LATER_EVALUATOR_SETTINGS)}
    if plan.evaluator.config_file:  # what the file says decides the result, wherever it lies
        settings["config_file_sha256"] = file_sha256(Path(plan.evaluator.config_file))
    record = {"name": plan.name, "vllm": engine_args, "evaluator": settings}
    if plan.data and plan.data.sha256:  # a changed dataset is never resumed with the old one's answers
        record["data_sha256"] = plan.data.sha256
    return record
