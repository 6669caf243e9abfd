"""Seeded, stratified probe samples (aisbench.sample_size / a dataset's sample_size) and their intervals.

N prompts are drawn without replacement, proportionally across the dataset's subsets (largest remainders;
every non-empty subset at least one where N allows), each subset's share chosen by its own generator
seeded with the seed, the dataset and the subset's place: the same draw on every machine and in every
process, for the same data. The drawn indices go into the dataset's settings (sample_ids), so the task
file, the snapshot, resume's fingerprint and a --frozen replay all carry them. A probe's score comes with
its 95% Wilson interval.
"""

from __future__ import annotations

import math
import random
from typing import Dict, List, Optional, Sequence, Tuple

from bench_app.common.errors import UserError
from bench_app.records.documents import ProbeSummary
from bench_app.run.planning.plan import RunPlan


def allocate(sizes: Sequence[int], n: int) -> List[int]:
    """How many of n each subset gives: proportional (largest remainders), then at least one per non-empty
    subset where n allows, taken from the largest shares."""
    total = sum(sizes)
    if n >= total:
        return list(sizes)
    quotas = [n * size / total for size in sizes]
    counts = [int(q) for q in quotas]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    non_empty = [i for i, size in enumerate(sizes) if size > 0]
    if n >= len(non_empty):
        for i in non_empty:
            if counts[i] == 0:
                donor = max(range(len(sizes)), key=lambda k: (counts[k], -k))
                counts[donor] -= 1
                counts[i] = 1
    return counts


def draw(sizes: Sequence[int], n: int, seed: int, dataset: str) -> List[List[int]]:
    """Per subset (in the task's order), the sorted 0-based indices of the probe."""
    drawn = []
    for index, (size, count) in enumerate(zip(sizes, allocate(sizes, n), strict=True)):
        generator = random.Random(f"bench_app sample|{seed}|{dataset}|{index}")  # str seeds: sha512, portable
        drawn.append(sorted(generator.sample(range(size), count)))
    return drawn


def counted_subsets(budgets: Dict[str, object], short: str, drawn: str) -> List[int]:
    """A dataset's subset sizes as the context budget counted them; what is drawn from them (`drawn`,
    e.g. "sample_size 4 is drawn") is refused when they were not counted."""
    budget = budgets.get(short)
    sizes = list(getattr(budget, "subset_sizes", None) or [])
    if not sizes:
        why = getattr(budget, "skipped", None) or "execution.context_check=off"
        raise UserError(
            f"dataset {short}: {drawn} from the dataset's subsets as the context budget counts them, and "
            f"they were not counted ({why})."
        )
    return sizes


def apply(plan: RunPlan, budgets: Dict[str, object]) -> None:
    """Draw the probe of every dataset with a sample_size, from the subsets the context budget counted."""
    for dataset in plan.datasets:
        settings = dataset.evaluator
        if settings.sample_size is None:
            continue
        sizes = counted_subsets(budgets, dataset.short, f"sample_size {settings.sample_size} is drawn")
        base = dataset.short.split("@")[0]  # a load level's copy draws what its dataset draws
        settings.sample_ids = draw(sizes, settings.sample_size, settings.sample_seed, base)
        drawn = sum(len(ids) for ids in settings.sample_ids)
        if dataset.context_budget is not None:
            dataset.context_budget.prompts = drawn  # what is sent: the progress counts against it


def wilson(correct: float, n: int, z: float = 1.96) -> Optional[Tuple[float, float]]:
    """The 95% Wilson score interval of a proportion, in percent."""
    if n <= 0:
        return None
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(100 * (centre - half), 1), round(100 * (centre + half), 1)


def probe_record(settings, metrics: Dict[str, object]) -> Optional[ProbeSummary]:
    """What a probe's result carries: its size, seed, and the headline score's 95% interval."""
    if settings.sample_ids is None:
        return None
    n = sum(len(ids) for ids in settings.sample_ids)
    record = ProbeSummary(size=n, seed=settings.sample_seed)
    score = metrics.get("accuracy")
    if isinstance(score, (int, float)):
        record.ci95 = list(wilson(round(float(score) * n / 100), n) or [])
    return record
