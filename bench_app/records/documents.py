"""The run folder's documents as typed records: results.yaml (RunResults, with DatasetEntry and ServerEntry),
configs/metadata.yaml (RunMetadata), configs/per_dataset/<short>.yaml (PerDataset), <dataset>/samples.jsonl
(SampleRecord), <dataset>/requests.jsonl (RequestLine) and a sweep's results.yaml (SweepResults). Each field
is declared once, here; bench_app.records.base says how they are read and written.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Optional

from pydantic import Field

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


class Decided(Record):
    """results.yaml datasets.<short>.decided: where execution.decide stopped a dataset, and on what."""

    decision: Optional[str] = None  # gate | parity
    verdict: Optional[str] = None  # null when a stage failed before a verdict
    stage: Optional[int] = None  # the stage it was decided at (from 1)
    stages: Optional[int] = None  # of how many
    questions: Optional[int] = None  # asked
    total: Optional[int] = None  # of the dataset's
    requests_saved: Optional[int] = None
    # each stage's look: estimate, interval, boundary
    looks: List[Dict[str, Any]] = Field(default_factory=list)

    @property
    def partial(self) -> bool:
        """Stopped before its last stage: the score is not a full one."""
        return self.stage != self.stages


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
    prompts: Dict[str, Optional[int]] = Field(default_factory=dict)  # done, total
    samples: Optional[int] = None  # records in samples.jsonl
    samples_error: Optional[str] = None  # why samples.jsonl could not be written
    # A reasoning model's answers: answers, finished, cut_in_thinking, score_all, score_finished,
    # reasoning_tokens_median, reasoning_tokens_p95, longest_prompt_tokens.
    reasoning: Dict[str, Any] = Field(default_factory=dict)
    answers: Dict[str, int] = Field(default_factory=dict)  # reused (from the request cache), generated
    server_restarts: List[str] = Field(default_factory=list)  # why its server was started again
    # execution.replicas > 1: per replica, this dataset's requests, failures, prompt_tokens,
    # completion_tokens and busy_s (time with a request in flight)
    replicas: Optional[List[Dict[str, Any]]] = None
    probe: Optional[Dict[str, Any]] = None  # a seeded probe (sample_size): size, seed, ci95 of accuracy
    # repeats in one run: k, questions, seeds, scores (each repeat's), mean, std_error, ci95, pass@k, maj@k
    repeats: Dict[str, Any] = Field(default_factory=dict)
    decided: Optional[Decided] = None  # execution.decide: where it was decided, on what
    rescored_at: Optional[str] = None  # bench-app rescore scored it again


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
    restarts: List[Dict[str, Any]] = Field(default_factory=list)  # dataset, reason, at (replica)
    external: Optional[str] = None  # the address of a server bench_app did not start
    # execution.replicas > 1: per replica: replica, port, devices, cpu_slot, cpu_cores, argv, log_file,
    # started_at, ready_after_s, stopped_at, restarts, error
    replicas: Optional[List[Dict[str, Any]]] = None


# Every key of a server's entry is written, null included: the entry's shape does not depend on what happened.
ServerEntry.KEEP_NULL = frozenset(ServerEntry.model_fields)


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
    # execution.load_levels: {levels, datasets: {<base>: {reference, order, levels: [...], knee}}} or {error}
    load_sweep: Optional[Dict[str, Any]] = None


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
    data: Dict[str, Dict[str, Any]] = Field(default_factory=dict)  # per dataset: path, files, bytes, sha256
    python_path: Optional[List[Dict[str, Any]]] = None  # source, copy, files (sha256), overrides
    override_modules: Optional[Dict[str, Dict[str, str]]] = None  # module: source, copy, sha256
    external_server: Optional[Dict[str, Any]] = None  # base_url, started_by_bench_app (false), note
    sandbox: Optional[Dict[str, Any]] = None  # mode, tool, version, user, network, limits, datasets
    # execution.replicas: servers per engine group; each one's argv, devices, port in results.yaml servers[]
    replicas: Optional[Dict[str, int]] = None
    slurm: Optional[Dict[str, Any]] = None  # job ids, cluster, partition, node, cpus, gpus
    sweep: Optional[Dict[str, Any]] = None  # a sweep's job: dir, job_num, job_overrides
    rescored: Optional[List[Dict[str, Any]]] = None  # each bench-app rescore: at, datasets, previous


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


class SweepJob(Record):
    LEAVE_OUT: ClassVar[tuple] = ({}, [])
    num: Optional[int] = None  # Hydra's job number
    dir: Optional[str] = None  # its run folder
    overrides: List[str] = Field(default_factory=list)  # what makes this job this job
    exit_code: Optional[int] = None
    status: Optional[str] = None  # completed | failed | interrupted | dry_run | error | missing | skipped
    error: Optional[str] = None  # why it did not run
    slurm_job_id: Optional[str] = None
    slurm_state: Optional[str] = None  # as SLURM ended it
    datasets: Dict[str, Dict[str, Any]] = Field(default_factory=dict)  # status, metrics, reason


class SweepResults(Record):
    """outputs/sweeps/<time>/results.yaml."""

    sweep: SweepState = Field(default_factory=SweepState)
    jobs: List[SweepJob] = Field(default_factory=list)
    repeats: Optional[List[Dict[str, Any]]] = None  # config, jobs, seeds, datasets (n, mean, std, ci95)
