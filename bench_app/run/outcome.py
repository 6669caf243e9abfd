"""What a run produced: per-dataset results and per-server facts (shared by execute and report)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from bench_app.run.plan import DatasetPlan


@dataclass
class ServerRecord:
    group: int
    argv: List[str]
    port: int
    started_at: Optional[str] = None
    ready_after_s: Optional[float] = None
    stopped_at: Optional[str] = None
    served_model: Optional[str] = None
    max_model_len: Optional[int] = None
    version: Optional[str] = None
    log_file: Optional[str] = None
    error: Optional[str] = None
    # What the server's lease gave it (bench_app.run.resources): devices and the variable exposing them,
    # or the CPU slot on a machine without a device pool, and how long it waited for them.
    devices: List[str] = field(default_factory=list)
    visible_devices_env: Optional[str] = None
    cpu_slot: Optional[int] = None
    waited_for_resources_s: Optional[float] = None

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class DatasetResult:
    short: str
    name: str
    status: str  # ok | failed | skipped
    group: int
    metrics: Dict[str, Any] = field(default_factory=dict)
    reason: Optional[str] = None
    log_tail: Optional[str] = None
    server_started_at: Optional[str] = None
    evaluation_started_at: Optional[str] = None
    evaluation_s: Optional[float] = None
    # How the server says this dataset's requests ended (e.g. {"stop": 3, "length": 1}).
    finished_requests: Dict[str, int] = field(default_factory=dict)
    output_dir: Optional[str] = None
    # Prompts answered (the server's finished requests) of the total expected (None: not known).
    prompts: Dict[str, Optional[int]] = field(default_factory=dict)
    # Records in <output_dir>/samples.jsonl, or why there are none.
    samples: Optional[int] = None
    samples_error: Optional[str] = None
    # A reasoning model's answers (bench_app.evaluators.samples.reasoning_summary): cut in thinking,
    # score over the finished ones, reasoning tokens.
    reasoning: Dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "short"}
        return {k: v for k, v in data.items() if v not in (None, {}, "")}


@dataclass
class RunOutcome:
    status: str  # completed | failed | interrupted
    results: Dict[str, DatasetResult]
    servers: List[ServerRecord]
    wall_s: float

    @property
    def server_starts(self) -> int:
        return sum(1 for s in self.servers if s.started_at)

    @property
    def server_versions(self) -> Dict[str, Any]:
        return {f"group_{s.group}": s.version for s in self.servers if s.version}

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return 130
        return 0 if all(r.status == "ok" for r in self.results.values()) else 1


# ---------------------------------------------------------------- what a dataset's reason says
def note_finished_requests(result: DatasetResult, before: Dict[str, float], after: Dict[str, float]) -> None:
    """Record how the dataset's requests ended; answers cut at max_out_len are a reason, never silent."""
    ended = {k: int(after[k] - before.get(k, 0)) for k in after if after[k] - before.get(k, 0) > 0}
    result.finished_requests = ended
    cut = ended.get("length", 0)
    if cut:
        note = (
            f"{cut} of {sum(ended.values())} answer(s) were cut at max_out_len or max_model_len "
            "(finish_reason length)"
        )
        result.reason = f"{result.reason}; {note}" if result.reason else note


# Above this share of answers cut inside their thinking, the dataset's reason says so.
CUT_IN_THINKING_NOTE = 0.05


def note_cut_in_thinking(result: DatasetResult, dataset: DatasetPlan) -> None:
    """More than 5% of the answers ran out of tokens while still thinking: the score measures the
    budget as much as the model. Say so, with what the context leaves for a longer answer."""
    summary, settings = result.reasoning, dataset.evaluator
    cut, answers = summary.get("cut_in_thinking", 0), summary.get("answers", 0)
    if not answers or cut / answers <= CUT_IN_THINKING_NOTE:
        return
    scored = "scored as no answer" if settings.cut_in_thinking == "no_answer" else "scored as they were"
    context, longest = dataset.engine_args.get("max_model_len"), summary.get("longest_prompt_tokens")
    fits = (
        f"max_out_len up to {context - longest} fits max_model_len {context} (longest prompt {longest})"
        if isinstance(context, int) and longest and context - longest > settings.max_out_len
        else f"a longer answer needs a larger max_model_len than {context} (vllm.max_model_len)"
    )
    note = (
        f"{cut} of {answers} answer(s) were cut inside their thinking at max_out_len {settings.max_out_len} "
        f"({scored}); score over the {summary.get('finished', 0)} that finished: "
        f"{summary.get('score_finished')}. To let them finish: {fits}"
    )
    result.reason = f"{result.reason}; {note}" if result.reason else note
