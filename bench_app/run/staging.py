"""execution.decide: each dataset in nested, seeded, stratified stages, stopped as soon as it is decided.

Stage k asks the first ceil(share_k x size) questions of each subset in an order drawn once per subset (seeded
with execution.decide.seed, the dataset and the subset's place: the same on every machine), so each stage
holds the one before and no answer is generated twice (the request cache answers the earlier ones); the last
stage is the whole dataset. After each stage the decision (a `Decider`, built above this layer: a gate against
a baseline run, or parity against the reference) looks at the answers so far against a group-sequential
boundary (bench_app.run.sequential) and the dataset stops once it has a verdict. Its result says where:
`decided` (the stage, the questions asked, the requests saved, the boundary crossed, each look).
"""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence

from bench_app.common.errors import UserError
from bench_app.config.schema import DecideConf
from bench_app.records.documents import AnswerSources, ContextBudget, DatasetEntry, Decided, StageLook
from bench_app.run.planning.plan import DatasetPlan, RunPlan
from bench_app.run.planning.sampling import counted_subsets


class Decider(Protocol):
    """The decision a staged run tests after each stage (bench_app.reports.decide builds it)."""

    kind: str  # gate | parity

    def look(self, dataset: DatasetPlan, stage: int) -> StageLook:
        """This stage's look at the dataset's answers so far: `verdict` (None: not decided yet) and what
        the boundary test saw (estimate, standard error, statistic, boundary, interval, questions)."""


def active(decide: DecideConf) -> bool:
    return decide.max_drop is not None or decide.tolerance is not None


def check(decide: DecideConf, plan: RunPlan) -> None:
    """The decision's own settings and what staged datasets cannot be, before anything starts."""
    if decide.max_drop is not None and decide.tolerance is not None:
        raise UserError(
            "execution.decide: a gate (baseline, max_drop) or parity (tolerance), not both in one run."
        )
    for name in ("max_drop", "tolerance"):
        value = getattr(decide, name)
        if value is not None and not value >= 0:
            raise UserError(f"execution.decide.{name}: {value} points; give a number >= 0.")
    if decide.max_drop is not None and not decide.baseline:
        raise UserError(
            "execution.decide.max_drop needs execution.decide.baseline: the run folder to gate against."
        )
    if not 0 < decide.alpha < 1:
        raise UserError(
            f"execution.decide.alpha: {decide.alpha}; give an error rate between 0 and 1 (e.g. 0.05)."
        )
    stages = [float(s) for s in decide.stages]
    if (
        not stages
        or any(not 0 < s <= 1 for s in stages)
        or any(b <= a for a, b in zip(stages, stages[1:], strict=False))
        or stages[-1] != 1.0
    ):
        raise UserError(
            f"execution.decide.stages: {list(decide.stages)}; give increasing shares of the questions in "
            "(0, 1], ending at 1.0 (the whole dataset), e.g. [0.1,0.25,0.5,1.0]."
        )
    for dataset in plan.datasets:
        settings, where = dataset.evaluator, f"dataset {dataset.short}"
        if settings.repeats > 1:
            raise UserError(
                f"{where}: repeats={settings.repeats} with execution.decide: a staged decision tests one "
                "answer per question; leave repeats at 1, or gate full runs (compare --gate)."
            )
        if settings.sample_size is not None or settings.num_prompts is not None:
            raise UserError(
                f"{where}: execution.decide draws its own stages from the whole dataset; leave sample_size "
                "and num_prompts unset."
            )
        if dataset.load_level is not None or settings.mode not in ("all", "infer"):
            raise UserError(
                f"{where}: execution.decide needs scored answers (aisbench.mode all, no load levels); "
                f"got mode {settings.mode}"
                + (f", load level {dataset.load_level}" if dataset.load_level else "")
            )


def stage_ids(
    sizes: Sequence[int], shares: Sequence[float], seed: int, dataset: str
) -> List[List[List[int]]]:
    """Per stage, per subset (in the task's order), the sorted 0-based indices it asks."""
    orders = []
    for index, size in enumerate(sizes):
        order = list(range(size))
        random.Random(f"bench_app stages|{seed}|{dataset}|{index}").shuffle(order)  # str seeds: portable
        orders.append(order)
    return [
        [sorted(order[: min(len(order), math.ceil(share * len(order)))]) for order in orders]
        for share in shares
    ]


def apply(plan: RunPlan, budgets: Dict[str, Any], decide: DecideConf) -> None:
    """Each dataset's stages, from the subsets the context budget counted (the last: the whole dataset)."""
    for dataset in plan.datasets:
        sizes = counted_subsets(budgets, dataset.short, "execution.decide draws its stages")
        stages = stage_ids(sizes, decide.stages, decide.seed, dataset.short)
        counts = [sum(len(ids) for ids in stage) for stage in stages]
        # a small dataset: shares that ask the same questions are one stage (a look tests new answers)
        kept = [k for k in range(len(stages)) if k == len(stages) - 1 or counts[k] < counts[k + 1]]
        dataset.stages, dataset.stage_questions = [stages[k] for k in kept], [counts[k] for k in kept]


def stage_plan(dataset: DatasetPlan, stage: int, seed: int) -> DatasetPlan:
    """The dataset as stage `stage` asks it: its drawn questions (the last stage: all, as a full run)."""
    last = stage == len(dataset.stages) - 1
    settings = replace(
        dataset.evaluator,
        sample_ids=None if last else dataset.stages[stage],
        sample_seed=dataset.evaluator.sample_seed if last else seed,
    )
    budget = (dataset.context_budget or ContextBudget()).model_copy(
        update={"prompts": dataset.stage_questions[stage]}
    )
    return replace(dataset, evaluator=settings, context_budget=budget)


def evaluate_in_stages(
    dataset: DatasetPlan,
    decider: Decider,
    seed: int,
    evaluate: Callable[[DatasetPlan], DatasetEntry],
    log: Callable[[str], None],
) -> DatasetEntry:
    """Evaluate stage after stage until the decider has a verdict (or the last stage is done)."""
    stages, total = len(dataset.stages), dataset.stage_questions[-1]
    looks: List[StageLook] = []
    result: Optional[DatasetEntry] = None
    seconds, generated = 0.0, 0
    for stage in range(stages):
        asked = dataset.stage_questions[stage]
        log(f"{dataset.short}: stage {stage + 1} of {stages} ({asked} of {total} questions)")
        result = evaluate(stage_plan(dataset, stage, seed))
        seconds += result.evaluation_s or 0.0
        generated += result.answers.generated if result.answers else 0
        if result.status != "ok":
            break
        look = decider.look(dataset, stage)
        looks.append(look)
        if look.verdict:
            break
    assert result is not None
    result.evaluation_s = round(seconds, 1)  # every stage's; answers: generated in any stage, the rest reused
    if result.answers:
        answered = result.answers.reused + result.answers.generated
        result.answers = AnswerSources(reused=max(0, answered - generated), generated=generated)
    stage = len(looks) - 1 if looks else 0
    asked = dataset.stage_questions[stage]
    verdict = looks[-1].verdict if looks else None
    if verdict is None and looks and stage == stages - 1:
        verdict = "INCONCLUSIVE" if decider.kind == "gate" else "inconclusive"
    result.decided = Decided(
        decision=decider.kind,
        verdict=verdict,
        stage=stage + 1,
        stages=stages,
        questions=asked,
        total=total,
        requests_saved=total - asked,
        looks=looks,
    )
    return result
