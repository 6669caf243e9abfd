"""The run folder's documents as typed records: results.yaml (RunResults, with DatasetEntry and ServerEntry),
configs/metadata.yaml (RunMetadata), configs/per_dataset/<short>.yaml (PerDataset), <dataset>/samples.jsonl
(SampleRecord), <dataset>/requests.jsonl (RequestLine) and a sweep's results.yaml (SweepResults). Each field
is declared once, here; bench_app.records.base says how they are read and written.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional, Sequence, Type

from pydantic import Field, create_model, model_validator

from bench_app.config.schema import EvaluatorSettings
from bench_app.records.base import Record

# results.yaml: 1 = the first versioned layout (the same documents as before versions were written down).
RESULTS_SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------------- results.yaml
class Benchmark(Record):
    """results.yaml benchmark."""

    name: Optional[str] = None  # the run's name (its folder)
    timestamp: Optional[str] = None  # when it started


class ServedModel(Record):
    """results.yaml model: what `bench-app runs` lists without the snapshot."""

    name: Optional[str] = None  # the served model name, else the model folder's name
    path: Optional[str] = None
    dtype: Optional[str] = None
    quantization: Optional[str] = None
    kv_cache_dtype: Optional[str] = None


class StageLook(Record):
    """results.yaml datasets.<short>.decided.looks[]: one stage's look at the answers so far
    (bench_app.run.sequential.Look), and what it was tested against."""

    verdict: Optional[str] = None  # gate: PASS / FAIL; parity: consistent / below / above; null: not yet
    estimate: Optional[float] = None  # points: run - baseline (gate) or run - reference (parity)
    standard_error: Optional[float] = None  # points
    statistics: List[Optional[float]] = Field(default_factory=list)  # z; parity: against -tol, then +tol
    boundary: Optional[float] = None  # null: a look that could never decide
    interval: Optional[List[Optional[float]]] = None  # points: the repeated confidence interval
    questions: Optional[int] = None  # answers the look tested
    note: Optional[str] = None  # why there was nothing to test yet
    baseline: Optional[str] = None  # gate: the baseline run folder
    max_drop: Optional[float] = None  # gate: the most the run may be worse (points)
    reference: Optional[str] = None  # parity: the reference file
    published: Optional[float] = None  # parity: its figure
    tolerance: Optional[float] = None  # parity: points either side
    alpha: Optional[float] = None  # the one-sided error rate spent over the looks


class Decided(Record):
    """results.yaml datasets.<short>.decided: where execution.decide stopped a dataset, and on what."""

    decision: Optional[str] = None  # gate | parity
    verdict: Optional[str] = None  # null when a stage failed before a verdict
    stage: Optional[int] = None  # the stage it was decided at (from 1)
    stages: Optional[int] = None  # of how many
    questions: Optional[int] = None  # asked
    total: Optional[int] = None  # of the dataset's
    requests_saved: Optional[int] = None
    looks: List[StageLook] = Field(default_factory=list)  # one per stage asked, the last one decided

    @property
    def partial(self) -> bool:
        """Stopped before its last stage: the score is not a full one."""
        return self.stage != self.stages


class PromptCount(Record):
    """results.yaml datasets.<short>.prompts: the requests answered of those the evaluator sent."""

    done: Optional[int] = None
    total: Optional[int] = None


class AnswerSources(Record):
    """results.yaml datasets.<short>.answers: where its answers came from."""

    reused: int = 0  # from the request cache
    generated: int = 0  # by the server, in this run


class ReasoningSummary(Record):
    """results.yaml datasets.<short>.reasoning: a reasoning model's answers at a glance (samples.jsonl)."""

    answers: Optional[int] = None  # recorded as the server gave them
    finished: Optional[int] = None  # the server said stop
    cut_in_thinking: Optional[int] = None  # max_out_len ended them inside their thinking
    score_all: Optional[float] = None  # over every scored answer
    score_finished: Optional[float] = None  # over those that finished
    reasoning_tokens_median: Optional[int] = None
    reasoning_tokens_p95: Optional[int] = None
    longest_prompt_tokens: Optional[int] = None


class ProbeSummary(Record):
    """results.yaml datasets.<short>.probe: a seeded probe (aisbench.sample_size)."""

    size: Optional[int] = None  # prompts drawn
    seed: Optional[int] = None
    ci95: Optional[List[float]] = None  # the accuracy's Wilson interval


class RepeatSummary(Record):
    """results.yaml datasets.<short>.repeats: repeats in one run (k answers per question); pass@k and maj@k
    are written under their names with k (pass@4)."""

    k: Optional[int] = None
    questions: Optional[int] = None
    seeds: List[int] = Field(default_factory=list)  # each repeat's
    scores: List[float] = Field(default_factory=list)  # each repeat's, in the order of the seeds
    mean: Optional[float] = None  # avg@k
    std_error: Optional[float] = None  # across repeats
    ci95: Optional[List[float]] = None  # Student-t, across repeats
    pass_at_k: Optional[float] = None  # a question counts when any of its k answers is right
    maj_at_k: Optional[float] = None  # each question scored by its most frequent extracted answer

    _NAMED_BY_K: ClassVar[Dict[str, str]] = {"pass_at_k": "pass", "maj_at_k": "maj"}

    @model_validator(mode="before")
    @classmethod
    def _read_names_with_k(cls, document: Any) -> Any:
        if isinstance(document, dict) and document.get("k") is not None:
            document = dict(document)
            for field, prefix in cls._NAMED_BY_K.items():
                if f"{prefix}@{document['k']}" in document:
                    document[field] = document.pop(f"{prefix}@{document['k']}")
        return document

    def to_dict(self) -> Dict[str, Any]:
        document = super().to_dict()
        for field, prefix in self._NAMED_BY_K.items():
            if field in document:
                document[f"{prefix}@{self.k}"] = document.pop(field)
        return document


class ReplicaShare(Record):
    """results.yaml datasets.<short>.replicas[]: one replica's share of the dataset (execution.replicas)."""

    replica: Optional[int] = None
    requests: int = 0  # answered by it (any status)
    failures: int = 0  # could not be reached, broke off, or timed out
    prompt_tokens: int = 0
    completion_tokens: int = 0
    busy_s: float = 0.0  # time with a request in flight


class DatasetEntry(Record):
    """results.yaml datasets.<short> (and per_dataset/<short>.yaml `result`); empty values left out."""

    LEAVE_OUT: ClassVar[tuple] = (None, {}, "")

    name: Optional[str] = None  # the AISBench dataset config
    status: Optional[str] = None  # ok | failed | skipped
    group: Optional[int] = None  # its engine group
    # The evaluator's metrics (numbers; `subsets`: the same per subset).
    metrics: Dict[str, Any] = Field(default_factory=dict)
    reason: Optional[str] = None  # why it failed, or what to know about an ok one (answers cut, ...)
    log_tail: Optional[str] = None  # the end of the log that says why
    server_started_at: Optional[str] = None  # when its group's server started
    evaluation_started_at: Optional[str] = None
    evaluation_s: Optional[float] = None  # the evaluator's time for it
    finished_requests: Dict[str, int] = Field(default_factory=dict)  # the server's, by finish reason
    output_dir: Optional[str] = None  # its folder, <run>/<dataset>
    prompts: Optional[PromptCount] = None
    samples: Optional[int] = None  # records in samples.jsonl
    samples_error: Optional[str] = None  # why samples.jsonl could not be written
    reasoning: Optional[ReasoningSummary] = None  # a reasoning model's answers
    answers: Optional[AnswerSources] = None
    server_restarts: List[str] = Field(default_factory=list)  # why its server was started again
    replicas: Optional[List[ReplicaShare]] = None  # execution.replicas > 1: each replica's share
    probe: Optional[ProbeSummary] = None  # a seeded probe (sample_size)
    repeats: Optional[RepeatSummary] = None  # repeats in one run
    decided: Optional[Decided] = None  # execution.decide: where it was decided, on what
    rescored_at: Optional[str] = None  # bench-app rescore scored it again

    _SUMMARIES: ClassVar[tuple] = ("prompts", "reasoning", "answers", "probe", "repeats")

    @model_validator(mode="before")
    @classmethod
    def _empty_summary_is_none(cls, document: Any) -> Any:
        """Earlier runs wrote {} for a summary they did not have."""
        if isinstance(document, dict) and any(document.get(k) == {} for k in cls._SUMMARIES):
            document = {k: v for k, v in document.items() if not (k in cls._SUMMARIES and v == {})}
        return document


class ServerRestart(Record):
    """results.yaml servers[].restarts[]: the server (or one replica) died and was started again."""

    dataset: Optional[str] = None  # the dataset being evaluated
    reason: Optional[str] = None  # how it died
    at: Optional[str] = None
    replica: Optional[int] = None  # which replica (execution.replicas > 1); not in the replica's own list


class ReplicaEntry(Record):
    """results.yaml servers[].replicas[]: one server of the set (execution.replicas), every key written."""

    replica: Optional[int] = None  # its index in the set
    port: Optional[int] = None
    devices: List[str] = Field(default_factory=list)
    visible_devices_env: Optional[str] = None
    cpu_slot: Optional[int] = None
    cpu_cores: Optional[str] = None
    waited_for_resources_s: Optional[float] = None
    argv: List[str] = Field(default_factory=list)
    log_file: Optional[str] = None  # its output, logs/engine_group<N>_replica<I>.log
    started_at: Optional[str] = None
    ready_after_s: Optional[float] = None
    stopped_at: Optional[str] = None
    restarts: List[ServerRestart] = Field(default_factory=list)
    error: Optional[str] = None  # why it ended (no restarts left, did not come back)


ReplicaEntry.KEEP_NULL = frozenset(ReplicaEntry.model_fields)


class ServerEntry(Record):
    """results.yaml servers[]: one engine group's server, every key always written."""

    group: Optional[int] = None  # the engine group
    argv: List[str] = Field(default_factory=list)  # the command that started it, with the leased port
    port: Optional[int] = None
    started_at: Optional[str] = None  # for an external server: when it was first used
    ready_after_s: Optional[float] = None  # start to healthy
    stopped_at: Optional[str] = None
    served_model: Optional[str] = None  # read back from /v1/models
    max_model_len: Optional[int] = None  # read back from /v1/models
    version: Optional[str] = None  # read back from /version
    log_file: Optional[str] = None  # its output, logs/engine_group<N>.log
    error: Optional[str] = None  # why it did not start, or could not be stopped
    devices: List[str] = Field(default_factory=list)  # the devices its lease gave it
    visible_devices_env: Optional[str] = None  # the variable that exposed them
    cpu_slot: Optional[int] = None  # on a machine without a device pool
    cpu_cores: Optional[str] = None  # the cores its threads were bound to (execution.cpu_cores_per_server)
    waited_for_resources_s: Optional[float] = None
    restarts: List[ServerRestart] = Field(default_factory=list)  # the group's and its replicas'
    external: Optional[str] = None  # the address of a server bench_app did not start
    replicas: Optional[List[ReplicaEntry]] = None  # execution.replicas > 1


# Every key of a server's entry is written, null included: the entry's shape does not depend on what happened.
ServerEntry.KEEP_NULL = frozenset(ServerEntry.model_fields)


class LoadLevel(Record):
    """results.yaml load_sweep.datasets.<base>.levels[]: a dataset at one level of execution.load_levels."""

    level: Optional[int] = None  # requests in flight
    dataset: Optional[str] = None  # its short name in the run (<base>@c<level>)
    status: Optional[str] = None
    started_at: Optional[str] = None
    metric: Optional[str] = None
    score: Optional[float] = None
    ci95: Optional[List[float]] = None  # Wilson, over its scored samples
    samples: Optional[int] = None  # scored
    requests: Optional[int] = None  # answered by the server (not the cache)
    cached: Optional[int] = None  # answered from the request cache
    window_s: Optional[float] = None  # first request sent to last answer
    requests_per_s: Optional[float] = None
    output_tokens_per_s: Optional[float] = None
    max_in_flight: Optional[int] = None
    e2e_s_p50: Optional[float] = None
    e2e_s_p95: Optional[float] = None
    ttft_s_p50: Optional[float] = None  # streamed answers: time to first token
    ttft_s_p95: Optional[float] = None
    tpot_s_p50: Optional[float] = None  # ... and time per output token after it
    tpot_s_p95: Optional[float] = None
    # against the lowest level: questions paired, flips each way, predictions changed, exact McNemar p,
    # its Holm-adjusted value over the levels, and whether accuracy changed significantly
    paired: Optional[int] = None
    right_to_wrong: Optional[int] = None
    wrong_to_right: Optional[int] = None
    changed_predictions: Optional[int] = None
    p_value: Optional[float] = None
    p_holm: Optional[float] = None
    significant: Optional[bool] = None


class Knee(Record):
    """results.yaml load_sweep.datasets.<base>.knee: the highest level worth serving at, and why."""

    level: Optional[int] = None
    reason: Optional[str] = None


class LoadDataset(Record):
    """results.yaml load_sweep.datasets.<base>: one dataset's levels."""

    reference: Optional[int] = None  # the level the others are paired with (the lowest)
    order: List[int] = Field(default_factory=list)  # the levels in the order they ran
    levels: List[LoadLevel] = Field(default_factory=list)
    knee: Knee = Field(default_factory=Knee)


class LoadSweep(Record):
    """results.yaml load_sweep: execution.load_levels, or why it could not be computed."""

    levels: List[int] = Field(default_factory=list)
    datasets: Dict[str, LoadDataset] = Field(default_factory=dict)  # by the dataset's base short name
    error: Optional[str] = None


class RunResults(Record):
    """results.yaml of a run."""

    schema_version: Optional[int] = None  # the layout's version (RESULTS_SCHEMA_VERSION); absent: 1
    benchmark: Benchmark = Field(default_factory=Benchmark)
    model: ServedModel = Field(default_factory=ServedModel)
    status: Optional[str] = None  # completed | failed | interrupted
    wall_time_s: Optional[float] = None  # the run's, start to end
    server_starts: Optional[int] = None  # servers bench_app started (an external one is not)
    datasets: Dict[str, DatasetEntry] = Field(default_factory=dict)  # by short name, in plan order
    servers: List[ServerEntry] = Field(default_factory=list)  # one per engine group
    load_sweep: Optional[LoadSweep] = None  # execution.load_levels


# ------------------------------------------------------------------------ configs/per_dataset/<short>.yaml
class DatasetName(Record):
    """per_dataset dataset: which dataset this is."""

    name: Optional[str] = None  # the AISBench dataset config
    short: Optional[str] = None  # its name in this run
    description: Optional[str] = None


def _settings_section(name: str, fields: Sequence[str], doc: str) -> Type[Record]:
    """A section of evaluator settings: its fields are config.schema.EvaluatorSettings', declared there once
    (any value: a folder written by another release may hold another type)."""
    declared: Dict[str, Any] = {field: (Optional[Any], None) for field in fields}
    return create_model(name, __base__=Record, __doc__=doc, __module__=__name__, **declared)


_MODEL_CONFIG = EvaluatorSettings.MODEL_CONFIG_FIELDS
EvaluatorSection = _settings_section(
    "EvaluatorSection",
    [f.name for f in EvaluatorSettings.aisbench_fields()],
    "per_dataset aisbench: the dataset's effective evaluator settings.",
)
ModelConfigSection = _settings_section(
    "ModelConfigSection", _MODEL_CONFIG, "per_dataset model_config: max_out_len, generation_kwargs, thinking."
)


class ConfigFileCopy(Record):
    """per_dataset config_file: the dataset's own AISBench config and its copy in configs/."""

    source: Optional[str] = None
    copy_: Optional[str] = Field(None, alias="copy")  # relative to configs/ (BaseModel has a `copy`)
    sha256: Optional[str] = None


class EngineLaunch(Record):
    """per_dataset engine: the server this dataset's engine group planned; the engine's own launch details
    (e.g. vLLM's hf_overrides) are kept beside these keys."""

    OPEN: ClassVar[bool] = True
    group: Optional[int] = None
    shares_server_with: List[str] = Field(default_factory=list)  # the group's other datasets
    argv: List[str] = Field(default_factory=list)  # as planned (port 0: leased at start)
    replicas: Optional[int] = None  # execution.replicas > 1
    problems: Optional[List[str]] = None  # why it cannot start as planned


class ContextBudget(Record):
    """per_dataset context_budget: the prompts' token counts against max_model_len
    (bench_app.run.planning.budget); only `skipped` when they could not be counted."""

    prompts: Optional[int] = None  # the prompts that will be sent (a probe's or a stage's when drawn)
    longest_prompt_tokens: Optional[int] = None
    median_prompt_tokens: Optional[float] = None
    max_out_len: Optional[int] = None
    max_model_len: Optional[int] = None
    headroom: Optional[int] = None  # max_model_len - (longest prompt + its max_out_len); < 0: does not fit
    not_fitting: Optional[int] = None
    longest_sample: Optional[int] = None  # 0-based, in the evaluator's order
    cached: Optional[bool] = None  # counted in an earlier run
    subset_sizes: Optional[List[int]] = None  # prompts per subset in the task's order
    subset_names: Optional[List[str]] = None
    skipped: Optional[str] = None  # why it could not be counted (tokenizer or data not available)


class DataRecord(Record):
    """metadata data.<short>, per_dataset data: the data files a dataset read (bench_app.evaluators.data)."""

    path: Optional[str] = None
    files: Optional[int] = None
    bytes: Optional[int] = None
    sha256: Optional[str] = None  # of every file's name and content; null when missing


class PerDataset(Record):
    """configs/per_dataset/<short>.yaml: one dataset's effective configuration, in the sections of the
    original document, and what happened to it (server, result) once it ran."""

    dataset: DatasetName = Field(default_factory=DatasetName)
    vllm: Dict[str, Any] = Field(default_factory=dict)  # the engine's arguments (its config section's)
    # every evaluator setting of config.schema.EvaluatorSettings but those of model_config
    aisbench: EvaluatorSection = Field(default_factory=EvaluatorSection)
    # max_out_len, generation_kwargs, thinking (pydantic keeps the name model_config for itself)
    generation: ModelConfigSection = Field(default_factory=ModelConfigSection, alias="model_config")
    vllm_config_override_applied: Optional[Dict[str, Any]] = None  # the dataset's engine overrides
    config_file: Optional[ConfigFileCopy] = None
    context_budget: Optional[ContextBudget] = None
    data: Optional[DataRecord] = None  # the data files it read
    engine: EngineLaunch = Field(default_factory=EngineLaunch)
    server: Optional[ServerEntry] = None  # its group's server, once started
    result: Optional[DatasetEntry] = None  # once it ran

    @model_validator(mode="before")
    @classmethod
    def _thinking_in_model_config(cls, document: Any) -> Any:
        """Earlier runs recorded `thinking` under aisbench."""
        aisbench = document.get("aisbench") if isinstance(document, dict) else None
        if isinstance(aisbench, dict) and "thinking" in aisbench:
            model_config = dict(document.get("model_config") or {})
            model_config.setdefault("thinking", aisbench["thinking"])
            aisbench = {k: v for k, v in aisbench.items() if k != "thinking"}
            document = {**document, "aisbench": aisbench, "model_config": model_config}
        return document


# ----------------------------------------------------------------------------------- configs/metadata.yaml
class Runtime(Record):
    """metadata.yaml runtime: where and when the run ran."""

    timestamp: Optional[str] = None
    hostname: Optional[str] = None
    platform: Optional[str] = None
    python_version: Optional[str] = None
    working_directory: Optional[str] = None


class GitState(Record):
    """metadata.yaml git: the checkout bench_app ran from."""

    commit: Optional[str] = None
    branch: Optional[str] = None
    dirty: Optional[bool] = None  # uncommitted changes, kept in diff_file
    diff_file: Optional[str] = None


class RunState(Record):
    """metadata.yaml run: who runs it and how it ended."""

    KEEP_NULL: ClassVar[frozenset] = frozenset({"ended", "pid_start"})
    status: Optional[str] = None  # running | dry_run | completed | failed | interrupted | abandoned
    started: Optional[str] = None
    ended: Optional[str] = None  # null while it runs
    pid: Optional[int] = None  # the runner's: with pid_start and host, tells a live run from a dead one
    pid_start: Optional[Any] = None
    host: Optional[str] = None
    abandoned_found: Optional[str] = None  # when a later command found it dead and still `running`
    error: Optional[str] = None  # why a job crashed (Hydra's callback)


class Rescoring(Record):
    """metadata.yaml rescored[]: one `bench-app rescore` of the run's answers."""

    at: Optional[str] = None
    datasets: List[str] = Field(default_factory=list)  # the datasets scored again
    previous: Dict[str, Dict[str, Any]] = Field(
        default_factory=dict
    )  # per dataset: its entry's status, metrics
    command: Optional[List[str]] = None  # the command line (secrets redacted)


class RunMetadata(Record):
    """configs/metadata.yaml."""

    runtime: Runtime = Field(default_factory=Runtime)
    versions: Dict[str, Any] = Field(default_factory=dict)  # package versions; <engine>_server: per group
    command: Dict[str, Any] = Field(default_factory=dict)  # executable, python, args (redacted), full_command
    git: GitState = Field(default_factory=GitState)
    accelerator: Dict[str, Any] = Field(default_factory=dict)  # kind, devices or cpu_model and cpu_count
    environment_variables: Dict[str, str] = Field(default_factory=dict)  # the relevant ones, secrets redacted
    package_lists: Dict[str, str] = Field(default_factory=dict)  # engine, evaluator: their pip freeze files
    run: RunState = Field(default_factory=RunState)
    fingerprint: Dict[str, str] = Field(default_factory=dict)  # per dataset: its effective config's hash
    data: Dict[str, DataRecord] = Field(default_factory=dict)  # per dataset: the data files it read
    python_path: Optional[List[Dict[str, Any]]] = None  # source, copy, files (sha256), overrides
    override_modules: Optional[Dict[str, Dict[str, str]]] = None  # module: source, copy, sha256
    external_server: Optional[Dict[str, Any]] = None  # base_url, started_by_bench_app (false), note
    sandbox: Optional[Dict[str, Any]] = None  # mode, tool, version, user, network, limits, datasets
    # execution.replicas: servers per engine group; each one's argv, devices, port in results.yaml servers[]
    replicas: Optional[Dict[str, int]] = None
    slurm: Optional[Dict[str, Any]] = None  # job ids, cluster, partition, node, cpus, gpus
    sweep: Optional[Dict[str, Any]] = None  # a sweep's job: dir, job_num, job_overrides
    rescored: Optional[List[Rescoring]] = None  # each bench-app rescore


# --------------------------------------------------------------------------- <dataset>/samples.jsonl
class SampleRecord(Record):
    """One line of <dataset>/samples.jsonl."""

    KEEP_NULL: ClassVar[frozenset] = frozenset()
    id: Any = None  # AISBench's id of the prompt within its subset
    subset: Optional[str] = None
    prompt: Any = None  # the prompt as sent (chat template applied)
    output: Optional[str] = None  # null when output_from says how to put it together from the answer
    prediction: Any = None  # what the evaluator extracted from the output
    gold: Any = None  # the reference answer
    correct: Optional[bool] = None  # null where the evaluator does not score per sample
    prompt_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    finish_reason: Optional[str] = None  # stop | length | ...
    finish_reason_from: Optional[str] = None  # server | inferred
    error: Optional[str] = None  # the request's failure
    request_line: Optional[int] = None  # its line of requests.jsonl (from 0)
    output_from: Optional[str] = None  # e.g. "{reasoning}</think>{answer}"
    answer: Optional[str] = None  # the answer without the thinking
    reasoning: Optional[str] = None  # only when read with texts=True (requests.jsonl keeps it)
    answer_tokens: Optional[int] = None
    reasoning_chars: Optional[int] = None  # the thinking's length
    reasoning_tokens: Optional[int] = None
    cut_in_thinking: Optional[bool] = None  # max_out_len ended it inside its thinking
    cached: Optional[bool] = None  # answered from the request cache
    repeat: Optional[int] = None  # repeats in one run: which of the question's k answers (id: the question)
    seed: Optional[int] = None  # the seed that repeat was sent with
    ttft_ms: Optional[float] = None  # perf mode: time to first token
    tpot_ms: Optional[float] = None  # perf mode: time per output token
    e2el_ms: Optional[float] = None  # perf mode: end-to-end latency


# --------------------------------------------------------------------------------- a sweep's results.yaml
class SweepState(Record):
    """A sweep's results.yaml sweep: how the sweep as a whole ended."""

    dir: Optional[str] = None
    status: Optional[str] = None  # completed | failed | interrupted
    exit_code: Optional[int] = None
    jobs: Optional[int] = None  # how many
    job_status: Dict[str, int] = Field(default_factory=dict)  # jobs per status
    wall_time_s: Optional[float] = None


class JobRecord(Record):
    """<sweep>/<job>/job.yaml: a sweep job's own record, written when it ends (or could not start)."""

    num: Optional[int] = None  # Hydra's job number
    overrides: Optional[List[str]] = None  # what makes this job this job
    exit_code: Optional[int] = None


class SweepJob(Record):
    """A sweep's results.yaml jobs[]: one job as the sweep saw it."""

    LEAVE_OUT: ClassVar[tuple] = (None, {}, [])
    num: Optional[int] = None  # Hydra's job number
    dir: Optional[str] = None  # its run folder
    overrides: List[str] = Field(default_factory=list)  # what makes this job this job
    exit_code: Optional[int] = None
    status: Optional[str] = None  # completed | failed | interrupted | dry_run | error | missing | skipped
    error: Optional[str] = None  # why it did not run
    slurm_job_id: Optional[str] = None
    slurm_state: Optional[str] = None  # as SLURM ended it
    datasets: Dict[str, DatasetEntry] = Field(default_factory=dict)  # status, metrics, reason

    @property
    def label(self) -> str:
        return f"{self.num} ({self.slurm_job_id})" if self.slurm_job_id else str(self.num)


class SweepResults(Record):
    """outputs/sweeps/<time>/results.yaml."""

    sweep: SweepState = Field(default_factory=SweepState)
    jobs: List[SweepJob] = Field(default_factory=list)
    repeats: Optional[List[Dict[str, Any]]] = None  # config, jobs, seeds, datasets (n, mean, std, ci95)
