"""The configuration schema: every key a run accepts, with its type, in one place.

Registered in Hydra's ConfigStore as `bench_app_schema`; `conf/config.yaml` lists it first in its
defaults, so Hydra rejects unknown keys and wrong types while composing, before anything runs.
Field names follow the original design document (vllm / aisbench / datasets / model_config /
vllm_config_override).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Tuple

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

AISBENCH_MODES = ("all", "infer", "eval", "perf")
# How benchmark.repeats > 1 runs: every repeat in one run on one server (run), or one job per seed (jobs).
REPEAT_FORMS = ("run", "jobs")
CUT_IN_THINKING_POLICIES = ("no_answer", "as_is")


@dataclass
class BenchmarkConf:
    # Names the run; its folder is outputs/<name>.
    name: str = MISSING
    timestamp: str = MISSING
    # Samples per question (avg@k, pass@k, majority@k). Seeds are generation_kwargs.seed (default 1) and the
    # next ones, one per repeat, each part of its answers' cache key.
    repeats: int = 1
    # run: every repeat's requests in one run, in flight together, on one server start; jobs: a sweep
    # of one job per seed (given on the command line; repeats spread over machines).
    repeats_as: str = "run"


@dataclass
class VllmArgs:
    """Engine arguments for `vllm serve`. Typed fields catch typos; `extra_args` takes any other flag."""

    model_path: str = MISSING
    host: str = "127.0.0.1"
    # 0 = pick a free port at start (the port actually used is recorded).
    port: int = 8000
    tensor_parallel_size: int = 1
    max_model_len: int = MISSING
    dtype: str = "auto"
    gpu_memory_utilization: Optional[float] = None
    trust_remote_code: bool = False
    # None = not passed, so vLLM's own default applies.
    enforce_eager: Optional[bool] = None
    served_model_name: Optional[str] = None
    seed: Optional[int] = None
    max_num_seqs: Optional[int] = None
    max_num_batched_tokens: Optional[int] = None
    enable_prefix_caching: Optional[bool] = None
    quantization: Optional[str] = None
    kv_cache_dtype: Optional[str] = None
    # As users write it: a JSON string ('{"rope_type":"yarn",...}') or a mapping. Translated to
    # --hf-overrides for the installed vLLM (see bench_app.engines.vllm).
    rope_scaling: Any = None
    hf_overrides: Optional[Dict[str, Any]] = None
    # --reasoning-parser (e.g. qwen3): the server returns a reasoning model's thinking apart from its
    # answer (`reasoning_content`). Checked against the parsers the installed vLLM registers.
    reasoning_parser: Optional[str] = None
    # Any other `vllm serve` flag, e.g. {enable_chunked_prefill: true, block_size: 32}.
    extra_args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    """Per-dataset generation settings (the document's `model_config`)."""

    max_out_len: int = 512
    generation_kwargs: Dict[str, Any] = field(default_factory=dict)
    # This dataset's thinking (true/false); null: the run's aisbench.thinking.
    thinking: Optional[bool] = None


@dataclass
class DatasetConf:
    # AISBench dataset config name, e.g. ceval_gen_0_shot_cot_chat_prompt.
    name: Optional[str] = None
    description: str = ""
    # Your own AISBench dataset config file, used in place of name: (which then defaults to its stem):
    # relative to the config folder the dataset file came from, or absolute. It may import AISBench's
    # classes and your python_path modules, as AISBench's own configs do.
    config_file: Optional[str] = None
    # Restrict the stock config to these subsets (AISBench lists every ceval/mmlu subject).
    subsets: Optional[List[str]] = None
    # Absolute data folder replacing the stock relative path (sample data, private copies).
    data_path: Optional[str] = None
    # Per-dataset limit; falls back to aisbench.num_prompts.
    num_prompts: Optional[int] = None
    # Per-dataset probe size; falls back to aisbench.sample_size.
    sample_size: Optional[int] = None
    # This dataset's samples per question; falls back to benchmark.repeats (e.g. AIME 64, GPQA 10).
    repeats: Optional[int] = None
    # Servers of this dataset's engine configuration (its engine group); falls back to execution.replicas.
    replicas: Any = None
    model_config: ModelConfig = field(default_factory=ModelConfig)
    vllm_config_override: Dict[str, Any] = field(default_factory=dict)


@dataclass
class AisbenchConf:
    # Model config template of AISBench this run is equivalent to (recorded; bench_app writes its own).
    model: str = "vllm_api_general_chat"
    mode: str = "all"
    max_num_workers: int = 1
    # The first N prompts of each subset (AISBench's --num-prompts).
    num_prompts: Optional[int] = None
    # A seeded probe instead: N prompts drawn without replacement, proportionally across the dataset's
    # subsets (each at least one where N allows); the same draw for the same seed on every machine.
    sample_size: Optional[int] = None
    sample_seed: int = 0
    # Concurrent requests per dataset.
    batch_size: int = 1
    retry: int = 2
    # Applied to every dataset on top of its own model_config.generation_kwargs (what sweeps vary).
    generation_kwargs: Dict[str, Any] = field(default_factory=dict)
    # Set: every dataset's output budget, instead of its own model_config.max_out_len (a suite's one value).
    max_out_len: Optional[int] = None
    # A reasoning model's thinking, sent as chat_template_kwargs.enable_thinking in every request
    # (Qwen3 thinks by default); null: nothing is sent, the model's chat template decides.
    thinking: Optional[bool] = None
    # An answer cut off inside its thinking (finish_reason length before the reasoning ended):
    # no_answer scores it as no answer (a draft in the thinking is never credited); as_is passes it on.
    cut_in_thinking: str = "no_answer"
    num_warmups: int = 0
    # AISBench's per-sample evaluation details (extracted answer, correct): what samples.jsonl is built from.
    dump_eval_details: bool = True
    # Any other ais_bench command-line flag: {merge_ds: true} -> --merge-ds, {name: value} -> --name value.
    extra_args: Dict[str, Any] = field(default_factory=dict)


@dataclass
class EvaluatorSettings(AisbenchConf):
    """The effective evaluator settings of one dataset: the run-wide `aisbench:` block with the
    dataset's own values (bench_app.run.planning.plan builds it; the snapshot writes it field by field)."""

    # From the dataset's model_config, or aisbench.max_out_len when set (generation_kwargs: the
    # dataset's, then the run-wide ones).
    max_out_len: int = 512  # type: ignore[assignment]
    subsets: Optional[List[str]] = None
    data_path: Optional[str] = None
    # The dataset's own AISBench config file (absolute), in place of the stock config `name`.
    config_file: Optional[str] = None
    # The drawn probe (sample_size): per subset, in the task's order, the 0-based indices evaluated.
    sample_ids: Optional[List[List[int]]] = None
    # Samples per question in this run (the dataset's repeats, else benchmark.repeats).
    repeats: int = 1

    @property
    def repeat_seeds(self) -> List[int]:
        """The seed of each repeat: generation_kwargs.seed (else 1) and the next ones."""
        first = self.generation_kwargs.get("seed")
        first = 1 if first is None else int(first)
        return [first + i for i in range(self.repeats)]

    # Fields that the snapshot shows under `model_config:` (the document's section), not `aisbench:`.
    MODEL_CONFIG_FIELDS: ClassVar[Tuple[str, ...]] = ("max_out_len", "generation_kwargs", "thinking")

    @classmethod
    def aisbench_fields(cls) -> List[dataclasses.Field]:
        """The fields the snapshot shows under `aisbench:` (all but MODEL_CONFIG_FIELDS)."""
        return [f for f in dataclasses.fields(cls) if f.name not in cls.MODEL_CONFIG_FIELDS]


@dataclass
class DecideConf:
    """execution.decide: end each dataset as soon as its verdict is known (bench_app.run.staging)."""

    # The release gate: this baseline run folder, and the most the run may be worse (points).
    baseline: Optional[str] = None
    max_drop: Optional[float] = None
    # Parity: within this many points of the published figure (conf/reference; reference: null = the one
    # that matches the model, else its file name).
    tolerance: Optional[float] = None
    reference: Optional[str] = None
    # Nested shares of each dataset's questions, increasing, the last 1.0: each stage holds the one before.
    stages: List[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 1.0])
    # Which questions each stage draws (per subset, the same order on every machine).
    seed: int = 0
    # Overall error rate of each verdict (two-sided confidence 1 - alpha), shared out over the datasets.
    alpha: float = 0.05


@dataclass
class ExecutionConf:
    dry_run: bool = False
    server_start_timeout_s: float = 600.0
    server_stop_timeout_s: float = 30.0
    evaluation_timeout_s: float = 3600.0
    # How long the relay waits for the server's answer to one request before it answers 502 (a hung
    # server holds no connection for ever); long: a reasoning answer under load takes minutes.
    upstream_timeout_s: float = 3600.0
    # Before any server starts: do all prompts + max_out_len fit max_model_len? error | warn | off.
    context_check: str = "error"
    # Before any server starts: is every dataset's data on this machine (bench-app datasets check)?
    # error: refuse the run (a dry run reports it) | warn | off.
    data_check: str = "error"
    # One server per dataset, as the original design did (for comparison only).
    restart_per_dataset: bool = False
    progress: bool = True
    # Engine groups of one run that may run side by side (each on its own devices and port).
    parallel_groups: int = 1
    # Device pool shared by concurrent servers; null = what CUDA_VISIBLE_DEVICES /
    # ASCEND_RT_VISIBLE_DEVICES expose (or nvidia-smi lists). Each server takes tensor_parallel_size.
    devices: Optional[List[str]] = None
    # With no device pool (CPU): how many servers may run at once on this machine, across jobs.
    max_cpu_servers: int = 2
    # With no device pool: the cores each server's threads are bound to (CPU slot k gets cores
    # k*N .. k*N+N-1, through the engine's cpu_binding_env); null: unbound, servers share every core.
    cpu_cores_per_server: Optional[int] = None
    # Servers of one engine configuration behind one endpoint (the relay balances requests across
    # them): an int, or auto = as many as the device pool (or CPU slots) holds at the group's devices
    # per server (tensor x pipeline x data parallel size). Each has its own devices and port.
    replicas: Any = 1
    # How long a server waits for devices / a CPU slot / its port before its group fails.
    resource_wait_timeout_s: float = 86400.0
    # Node-local folder of the lease files; null = <tmp>/bench_app-leases-<uid>.
    lease_dir: Optional[str] = None
    # The request cache (bench_app.records.cache): null = the run folder's own (what resume=true answers
    # from); a folder = shared across runs (e.g. ~/.cache/bench_app/requests); off = none.
    cache: Optional[str] = None
    # A server that dies during a dataset (a crash, an OOM kill) is started again with the same argv up
    # to this many times per engine group; the dataset continues from its saved answers.
    server_restarts: int = 1
    # Accuracy under load: each dataset runs once per level on the same server, with that many requests in
    # flight (the evaluator's batch_size), in a shuffled order; e.g. [1, 4, 16]. The lowest level is the
    # reference every other level is compared with. null: each dataset once, at aisbench.batch_size.
    load_levels: Optional[List[int]] = None
    # Trackers a run is exported to when it ends (a sweep: when all its jobs have, as a parent run with
    # its jobs as children); a failed export is reported and never fails the run. Known: mlflow.
    export: List[str] = field(default_factory=list)
    # MLflow's tracking URI for execution.export; null = MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in
    # the current directory (MLflow's default). Credentials go in MLFLOW_TRACKING_USERNAME/PASSWORD.
    mlflow_tracking_uri: Optional[str] = None
    # Stop each dataset when decided: a gate against a baseline run or parity against the reference.
    decide: DecideConf = field(default_factory=DecideConf)


@dataclass
class BenchAppConfig:
    benchmark: BenchmarkConf = field(default_factory=BenchmarkConf)
    vllm: VllmArgs = field(default_factory=VllmArgs)
    aisbench: AisbenchConf = field(default_factory=AisbenchConf)
    datasets: Dict[str, DatasetConf] = field(default_factory=dict)
    # The engine and evaluator components: `_target_` names the class (bench_app.engines.*,
    # bench_app.evaluators.*), the other keys are its settings, declared and checked by that class.
    engine: Dict[str, Any] = field(default_factory=dict)
    evaluator: Dict[str, Any] = field(default_factory=dict)
    execution: ExecutionConf = field(default_factory=ExecutionConf)
    # Re-run only the datasets of an existing run that are not `ok`.
    resume: bool = False
    # Set by reproduce.sh --frozen: the config_snapshot.yaml this run replays.
    frozen_from: Optional[str] = None


def register_schema() -> None:
    ConfigStore.instance().store(name="bench_app_schema", node=BenchAppConfig)
