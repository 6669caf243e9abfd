"""What a run produced (its datasets' and servers' results.yaml entries), and what a reason says."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List

from bench_app.records.documents import DatasetEntry, ServerEntry
from bench_app.run.planning.plan import DatasetPlan


@dataclass
class RunOutcome:
    status: str  # completed | failed | interrupted
    results: Dict[str, DatasetEntry]
    servers: List[ServerEntry]
    wall_s: float

    @property
    def server_starts(self) -> int:
        return sum(len(s.replicas or [None]) for s in self.servers if s.started_at and not s.external)

    @property
    def server_versions(self) -> Dict[str, Any]:
        return {f"group_{s.group}": s.version for s in self.servers if s.version}

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return 130
        return 0 if all(r.status == "ok" for r in self.results.values()) else 1


# ---------------------------------------------------------------- what a dataset's reason says
def note_finished_requests(result: DatasetEntry, before: Dict[str, float], after: Dict[str, float]) -> None:
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


def note_cut_in_thinking(result: DatasetEntry, dataset: DatasetPlan) -> None:
    """More than 5% of the answers ran out of tokens while still thinking: the score measures the
    budget as much as the model. Say so, with what the context leaves for a longer answer."""
    summary, settings = result.reasoning, dataset.evaluator
    if (
        summary is None
        or not summary.answers
        or (summary.cut_in_thinking or 0) / summary.answers <= CUT_IN_THINKING_NOTE
    ):
        return
    cut, answers = summary.cut_in_thinking, summary.answers
    scored = "scored as no answer" if settings.cut_in_thinking == "no_answer" else "scored as they were"
    context, longest = dataset.engine_args.get("max_model_len"), summary.longest_prompt_tokens
    fits = (
        f"max_out_len up to {context - longest} fits max_model_len {context} (longest prompt {longest})"
        if isinstance(context, int) and longest and context - longest > settings.max_out_len
        else f"a longer answer needs a larger max_model_len than {context} (vllm.max_model_len)"
    )
    note = (
        f"{cut} of {answers} answer(s) were cut inside their thinking at max_out_len {settings.max_out_len} "
        f"({scored}); score over the {summary.finished or 0} that finished: "
        f"{summary.score_finished}. To let them finish: {fits}"
    )
    result.reason = f"{result.reason}; {note}" if result.reason else note
