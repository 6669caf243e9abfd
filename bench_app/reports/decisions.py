"""Decisions that know their power: three verdicts instead of two, each with the smallest difference the data
could have resolved and the number of questions that would decide an open one.

The release gate (`compare --gate 'max_drop=M'`) is a non-inferiority decision per dataset on the paired
difference run - baseline (points):
- PASS: the interval lies above -M (shown no worse than allowed);
- FAIL: the interval lies below -M (shown worse than allowed);
- INCONCLUSIVE otherwise: the data cannot tell; absence of evidence is not read as evidence of absence.
The interval is two-sided at 1 - 0.05/m for m datasets compared in one column (Bonferroni: a family-wise error
rate of 5% over the column's datasets, whatever their dependence, as Holm's correction does for the p-values).
One run against one run, right/wrong: Agresti & Min's interval for matched proportions (Biometrics 61, 2005:
the Wald interval after adding 0.5 to each cell of the 2x2 table, which stays honest with few or no flips).
Pooled repeats (each question's share of right answers): the t-interval of the mean paired difference
(statsmodels' DescrStatsW).

Parity (`bench-app parity --tolerance T`) is an equivalence decision against a published figure: consistent
when the 95% interval of run - reference lies within +-T, below / above when it lies beyond -T / +T,
inconclusive otherwise. Where the reference's questions and repeats are known its own sampling error counts
(statsmodels' confint_proportions_2indep, Newcombe's hybrid score interval for two independent proportions);
otherwise the run's Wilson interval (statsmodels' proportion_confint).

The minimum detectable effect is the distance from the boundary that a test of this size finds with 80%
power (statsmodels' NormalIndPower, one sample); the questions (x repeats) that would decide an open verdict
come from statsmodels' normal_sample_size_one_tail at the observed spread.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Sequence, Tuple

ALPHA = 0.05
POWER = 0.80


@dataclass
class Decision:
    verdict: str
    interval: Tuple[float, float]  # points
    confidence: float  # of the interval, e.g. 0.95 or 1 - 0.05/m
    mde: Optional[float]  # points: what this many questions resolve at 80% power
    needed: Optional[int] = None  # questions (x repeats) that would decide an open verdict
    spread: Optional[float] = None  # standard deviation of one question's difference, points

    def to_dict(self) -> Dict[str, object]:
        document = asdict(self)
        document["interval"] = [round(x, 4) for x in self.interval]
        for key in ("mde", "spread"):
            if document[key] is not None:
                document[key] = round(document[key], 4)
        return document


def _z(alpha_two_sided: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(1 - alpha_two_sided / 2))


def reference_margin(reference: float, samples: int) -> float:
    """Points: half the 95% interval of a published score from its own samples (questions x repeats)."""
    r = reference / 100.0
    return _z(ALPHA) * 100 * math.sqrt(r * (1 - r) / samples)


def matched_interval(right_to_wrong: int, wrong_to_right: int, paired: int, alpha: float) -> Tuple:
    """Agresti-Min interval of p(run) - p(baseline) for matched right/wrong answers, in points, and the spread
    that power is planned with: one question's standard deviation at no difference, sqrt(flip rate), which is
    the largest it can be at this flip rate (so the minimum detectable effect is never understated)."""
    b, c, n = right_to_wrong + 0.5, wrong_to_right + 0.5, paired + 2.0
    estimate = (c - b) / n
    variance = max((b + c) / n - estimate**2, 0.0)
    half = _z(alpha) * math.sqrt(variance / n)
    return 100 * (estimate - half), 100 * (estimate + half), 100 * math.sqrt((b + c) / n)


def graded_interval(differences: Sequence[float], alpha: float) -> Tuple:
    """t-interval of the mean paired difference (points), and one question's standard deviation."""
    from statsmodels.stats.weightstats import DescrStatsW

    stats = DescrStatsW(list(differences))
    spread = float(stats.std) if len(differences) > 1 else 0.0
    if spread == 0.0:  # every question moved alike (often: not at all): no spread for a t-interval, and
        # none observed is no proof of none; the matched interval of no flips is the honest width
        mean = float(stats.mean)
        low, high, spread = matched_interval(0, 0, len(differences), alpha)
        return mean + low, mean + high, spread
    low, high = stats.tconfint_mean(alpha=alpha)
    return float(low), float(high), spread


def minimum_detectable(spread: float, n: int, alpha: float) -> Optional[float]:
    """Points: the distance from the boundary found with 80% power by a two-sided test at alpha over n."""
    if n <= 0 or spread <= 0:
        return None
    from statsmodels.stats.power import NormalIndPower

    effect = NormalIndPower().solve_power(nobs1=n, alpha=alpha, power=POWER, ratio=0, alternative="two-sided")
    return float(effect) * spread


def questions_needed(distance: float, spread: float, alpha: float) -> Optional[int]:
    """Questions that resolve a true distance from the boundary at 80% power (None: the estimate is on it)."""
    if spread <= 0:
        return None
    if distance <= 1e-9:
        return None
    from statsmodels.stats.power import normal_sample_size_one_tail

    return int(math.ceil(normal_sample_size_one_tail(distance, POWER, alpha / 2, std_null=spread)))


def gate(
    margin: float,
    datasets: int,
    paired: int,
    right_to_wrong: Optional[int] = None,
    wrong_to_right: Optional[int] = None,
    differences: Optional[Sequence[float]] = None,
) -> Decision:
    """Non-inferiority of the run against the baseline within `margin` points, one of `datasets` compared."""
    alpha = ALPHA / max(1, datasets)
    if differences is None:
        low, high, spread = matched_interval(right_to_wrong or 0, wrong_to_right or 0, paired, alpha)
        estimate = 100.0 * ((wrong_to_right or 0) - (right_to_wrong or 0)) / paired
    else:
        low, high, spread = graded_interval(differences, alpha)
        estimate = sum(differences) / len(differences)
    verdict = "PASS" if low > -margin else "FAIL" if high < -margin else "INCONCLUSIVE"
    decision = Decision(
        verdict, (low, high), 1 - alpha, minimum_detectable(spread, paired, alpha), spread=spread
    )
    if verdict == "INCONCLUSIVE":
        decision.needed = questions_needed(abs(estimate + margin), spread, alpha)
    return decision


def parity(
    score: float,
    questions: int,
    reference: float,
    tolerance: float,
    reference_samples: Optional[int] = None,
    repeat_interval: Optional[Tuple[float, float]] = None,
) -> Decision:
    """Equivalence of the run's score with a published one within `tolerance` points (95% interval of
    run - reference; the reference's own sampling error counts where its questions x repeats are known)."""
    from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

    p, r = score / 100.0, reference / 100.0
    if repeat_interval is not None:  # the mean of repeats: their t-interval, the reference's error added
        centre, half = (
            (repeat_interval[0] + repeat_interval[1]) / 2,
            (repeat_interval[1] - repeat_interval[0]) / 2,
        )
        ref_half = reference_margin(reference, reference_samples) if reference_samples else 0.0
        half = math.hypot(half, ref_half)
        low, high = centre - reference - half, centre - reference + half
    elif reference_samples:
        low, high = confint_proportions_2indep(
            round(p * questions), questions, round(r * reference_samples), reference_samples,
            method="newcomb", compare="diff", alpha=ALPHA,
        )  # fmt: skip
        low, high = 100 * low, 100 * high
    else:
        low, high = proportion_confint(round(p * questions), questions, alpha=ALPHA, method="wilson")
        low, high = 100 * low - reference, 100 * high - reference
    if -tolerance <= low and high <= tolerance:
        verdict = "consistent"
    elif high < -tolerance:
        verdict = "below"
    elif low > tolerance:
        verdict = "above"
    else:
        verdict = "inconclusive"
    spread = 100 * math.sqrt(max(p * (1 - p), 1.0 / max(questions, 1)))  # one question's, points
    mde = minimum_detectable(spread, questions, ALPHA)
    decision = Decision(verdict, (low, high), 1 - ALPHA, mde, spread=spread)
    if verdict == "inconclusive":
        estimate = score - reference
        distance = tolerance - abs(estimate) if abs(estimate) < tolerance else abs(estimate) - tolerance
        decision.needed = questions_needed(distance, spread, ALPHA)
    return decision
