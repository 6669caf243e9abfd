"""Paired comparison of two runs on the same questions: which answers flipped, and is it noise?

Two runs of the same dataset answer the same prompts; a score difference can come from a handful of
flipped answers. The exact McNemar test looks only at the discordant pairs (right in one run, wrong in
the other): under "no difference" each flip is equally likely to go either way, so the number of
right->wrong flips among all flips is Binomial(flips, 0.5). Its two-sided p-value is SciPy's exact
binomial test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bench_app.records.documents import SampleRecord
from bench_app.records.folder import RunFolder

SIGNIFICANCE = 0.05
SampleKey = Tuple[str, int]  # (subset, id)


def load_samples(run_dir: Path, short: str) -> Optional[Dict[SampleKey, SampleRecord]]:
    """The dataset's samples.jsonl records by (subset, id); None if the run has none for it."""
    records = RunFolder(run_dir).read_samples(short)
    if records is None:
        return None
    return {(str(record.subset), record.id): record for record in records}


@dataclass
class PairedResult:
    paired: int = 0  # samples scored in both runs, with the same prompt
    both_right: int = 0
    both_wrong: int = 0
    right_to_wrong: List[SampleKey] = field(default_factory=list)
    wrong_to_right: List[SampleKey] = field(default_factory=list)
    prompt_differs: int = 0  # same (subset, id) but another prompt: not paired
    p_value: float = 1.0

    @property
    def flips(self) -> int:
        return len(self.right_to_wrong) + len(self.wrong_to_right)

    @property
    def significant(self) -> bool:
        return self.flips > 0 and self.p_value < SIGNIFICANCE

    def verdict(self) -> str:
        return f"difference is {'' if self.significant else 'not '}significant at {SIGNIFICANCE}"

    def summary(self) -> str:
        text = (
            f"{self.paired} paired; right->wrong {len(self.right_to_wrong)}, "
            f"wrong->right {len(self.wrong_to_right)}; exact McNemar p = {self.p_value:.4g}: {self.verdict()}"
        )
        if self.prompt_differs:
            text += f" ({self.prompt_differs} with another prompt not paired)"
        return text


def mcnemar_exact_p(right_to_wrong: int, wrong_to_right: int) -> float:
    flips = right_to_wrong + wrong_to_right
    if flips == 0:
        return 1.0
    from scipy.stats import binomtest  # imported only when there is something to test

    return float(binomtest(right_to_wrong, flips, 0.5, alternative="two-sided").pvalue)


def pair(a: Dict[SampleKey, SampleRecord], b: Dict[SampleKey, SampleRecord]) -> PairedResult:
    result = PairedResult()
    for key in sorted(set(a) & set(b), key=lambda k: (k[0], k[1] if isinstance(k[1], int) else -1)):
        x, y = a[key], b[key]
        if x.correct is None or y.correct is None:
            continue
        if x.prompt != y.prompt:
            result.prompt_differs += 1
            continue
        result.paired += 1
        if x.correct and y.correct:
            result.both_right += 1
        elif not x.correct and not y.correct:
            result.both_wrong += 1
        elif x.correct:
            result.right_to_wrong.append(key)
        else:
            result.wrong_to_right.append(key)
    result.p_value = mcnemar_exact_p(len(result.right_to_wrong), len(result.wrong_to_right))
    return result


def pair_runs(a: Path, b: Path, datasets: List[str]) -> Dict[str, PairedResult]:
    """Paired results of the datasets both runs have samples for."""
    results = {}
    for short in datasets:
        samples_a, samples_b = load_samples(a, short), load_samples(b, short)
        if samples_a is not None and samples_b is not None:
            results[short] = pair(samples_a, samples_b)
    return results
