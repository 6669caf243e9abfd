"""Group-sequential decisions for `execution.decide`: a dataset is evaluated in nested stages (e.g. 10%, 25%,
50%, 100% of its questions) and after each stage one look tests the decision against a boundary that keeps
the overall error rate at alpha however many looks are taken; the dataset stops at its first decided look.

Boundaries: Lan & DeMets' alpha spending (Biometrika 70, 1983, 659-663) with the O'Brien-Fleming-type
function, so early looks spend almost nothing and the last boundary stays close to the fixed-sample one.
The statistics at the looks are those of a Brownian motion observed at the information fractions t_k,
corr(Z_i, Z_j) = sqrt(t_i / t_j) (Jennison & Turnbull, Group Sequential Methods with Applications to Clinical
Trials, 2000, ch. 3 and 7); each boundary solves the alpha spent at its look given the earlier ones
(SciPy's multivariate normal CDF, Genz's quasi-Monte Carlo method with a fixed seed, and brentq).
The published values they reproduce: gsDesign's sfLDOF (Anderson, R package gsDesign), e.g. four equally
spaced looks at one-sided 0.025: 4.3326, 2.9631, 2.3590, 2.0141.

Each look also gives the repeated confidence interval estimate +- boundary x standard error (Jennison &
Turnbull 1989, JRSS B 51, 305-361), whose coverage holds simultaneously over all the looks.

- gate: non-inferiority of a run against a baseline, paired per question, margin max_drop points
  (PASS: shown no more than max_drop worse; FAIL: shown more than max_drop worse). The standard error adds
  0.5 to each discordant count as Agresti & Min do (Biometrics 61, 2005, 515-523).
- parity: equivalence with a published score within +-tolerance points by two one-sided tests (Schuirmann,
  J Pharmacokinet Biopharm 15, 1987, 657-680): consistent, below or above. The run's variance uses
  Agresti & Coull's adjusted proportion (Am Stat 52, 1998, 119-126); the reference's p(1-p)/m counts where
  its number of samples m is known.

Alpha is one-sided (0.025 for an overall two-sided 95%); the caller divides it over datasets (Bonferroni).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Dict, List, Optional, Sequence, Tuple

SEED = 20240601  # the multivariate normal CDF is quasi-Monte Carlo: a fixed seed makes boundaries repeatable
RELATIVE_ERROR = 1e-4  # of each look's spent alpha: boundaries to well under 1e-3


def obrien_fleming_spending(t: float, alpha: float) -> float:
    """One-sided alpha spent by information fraction t: 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))."""
    # Lan & DeMets 1983 (Biometrika 70:659-663), the O'Brien-Fleming-type spending function
    if t <= 0:
        return 0.0
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return math.erfc(z / math.sqrt(2 * min(t, 1.0)))  # = 2 - 2 Phi(z / sqrt(t)), exact in the far tail


def boundaries(fractions: Sequence[float], alpha: float) -> List[float]:
    """One-sided z boundaries b_1..b_K for increasing information fractions ending at 1.0."""
    return list(_boundaries(tuple(float(t) for t in fractions), float(alpha)))


@functools.lru_cache(maxsize=256)  # every dataset of a run asks for the same design
def _boundaries(fractions: Tuple[float, ...], alpha: float) -> Tuple[float, ...]:
    import numpy as np
    from scipy.optimize import brentq
    from scipy.stats import multivariate_normal, norm

    increasing = all(a < b for a, b in zip(fractions, fractions[1:], strict=False))
    if not fractions or fractions[-1] != 1.0 or not increasing:
        raise ValueError(f"fractions must increase and end at 1.0: {fractions}")
    if fractions[0] <= 0 or not 0 < alpha < 1:
        raise ValueError(f"fractions must be positive and alpha in (0, 1): {fractions}, {alpha}")
    times = np.array(fractions)
    correlation = np.sqrt(np.minimum.outer(times, times) / np.maximum.outer(times, times))
    found: List[float] = []
    for k, t in enumerate(fractions):
        spent_before = obrien_fleming_spending(fractions[k - 1], alpha) if k else 0.0
        spent = obrien_fleming_spending(t, alpha) - spent_before
        if spent <= 0:  # the spending underflows: nothing may be spent, the look never decides
            found.append(math.inf)
            continue
        if k == 0 or all(math.isinf(b) for b in found):
            found.append(float(norm.isf(spent)))
            continue
        upper = np.array(found + [np.inf])

        def excess(b: float, k=k, upper=upper, spent=spent) -> float:
            # P(no earlier look crossed, this one does) - its share of alpha; decreasing in b
            lower = np.array([-np.inf] * k + [b])
            crossing = multivariate_normal.cdf(
                upper, cov=correlation[: k + 1, : k + 1], lower_limit=lower,
                abseps=spent * RELATIVE_ERROR, releps=0, rng=np.random.default_rng(SEED),
            )  # fmt: skip
            return float(crossing) - spent

        # at isf(alpha(t)) the crossing is >= spent (earlier looks take at most alpha(t_{k-1})), at
        # isf(spent) it is <= spent (the marginal bounds the joint); half a unit either side for QMC noise
        low, high = float(norm.isf(obrien_fleming_spending(t, alpha))) - 0.5, float(norm.isf(spent)) + 0.5
        found.append(float(brentq(excess, low, high, xtol=1e-7)))
    return tuple(found)


@dataclass(frozen=True)
class Look:
    """One look at one stage: its verdict (None: not decided yet) and the evidence it was reached on."""

    verdict: Optional[str]  # gate: PASS / FAIL; parity: consistent / below / above
    estimate: float  # points: run - baseline (gate) or run - reference (parity)
    standard_error: float  # points
    statistics: Tuple[float, ...]  # z; parity: against -tolerance, then against +tolerance
    boundary: float
    interval: Tuple[float, float]  # points: the repeated confidence interval, estimate +- boundary x se
    questions: int

    def to_dict(self) -> Dict[str, object]:
        document = asdict(self)
        for key in ("estimate", "standard_error", "boundary"):
            document[key] = _rounded(document[key])
        document["statistics"] = [_rounded(z) for z in self.statistics]
        document["interval"] = [_rounded(x) for x in self.interval]
        return document


def _rounded(value: float) -> Optional[float]:
    return round(value, 4) if math.isfinite(value) else None  # None: a look that could never decide


def _interval(estimate: float, standard_error: float, boundary: float) -> Tuple[float, float]:
    if math.isinf(boundary):
        return -math.inf, math.inf
    return estimate - boundary * standard_error, estimate + boundary * standard_error


def gate_look(
    wrong_to_right: int, right_to_wrong: int, paired: int, max_drop: float, boundary: float
) -> Look:
    """Non-inferiority of the run against the baseline within max_drop points, on the pairs so far."""
    if paired <= 0:
        raise ValueError("a gate look needs at least one paired question")
    estimate = 100.0 * (wrong_to_right - right_to_wrong) / paired
    # half a flip added each way (and one question): no flips at all is still not certainty
    b, c, n = wrong_to_right + 0.5, right_to_wrong + 0.5, paired + 1.0
    variance = max((b + c) / n - ((b - c) / n) ** 2, 0.0) / n
    standard_error = 100.0 * math.sqrt(variance)
    z = (estimate + max_drop) / standard_error
    verdict = "PASS" if z >= boundary else "FAIL" if z <= -boundary else None
    return Look(
        verdict,
        estimate,
        standard_error,
        (z,),
        boundary,
        _interval(estimate, standard_error, boundary),
        paired,
    )


def parity_look(
    correct: int,
    questions: int,
    reference: float,
    tolerance: float,
    boundary: float,
    reference_samples: Optional[int] = None,
) -> Look:
    """Equivalence of the run's score with a published one within +-tolerance points (two one-sided tests)."""
    if questions <= 0:
        raise ValueError("a parity look needs at least one question")
    estimate = 100.0 * correct / questions - reference
    # Agresti-Coull's adjusted proportion for the variance only, so all right or all wrong is not certainty;
    # over the questions asked (not n + 4): slightly wider, on the safe side
    adjusted = (correct + 2) / (questions + 4)
    variance = adjusted * (1 - adjusted) / questions
    if reference_samples:
        published = min(max(reference / 100.0, 0.0), 1.0)
        variance += published * (1 - published) / reference_samples
    standard_error = 100.0 * math.sqrt(variance)
    above_lower = (estimate + tolerance) / standard_error  # against -tolerance
    above_upper = (estimate - tolerance) / standard_error  # against +tolerance
    if above_lower >= boundary and above_upper <= -boundary:
        verdict: Optional[str] = "consistent"
    elif above_lower <= -boundary:
        verdict = "below"
    elif above_upper >= boundary:
        verdict = "above"
    else:
        verdict = None
    return Look(
        verdict, estimate, standard_error, (above_lower, above_upper), boundary,
        _interval(estimate, standard_error, boundary), questions,
    )  # fmt: skip
