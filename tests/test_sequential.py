"""Group-sequential looks (bench_app.run.sequential): the boundaries against published values, and the
decisions' error rates and savings asserted on simulated runs with a known truth (2,000 per case), each
evaluated in nested stages of one question order and stopped at its first decided look."""

import math

import numpy as np
import pytest

from bench_app.run import sequential

SIMULATIONS = 2000
STAGES = (0.1, 0.25, 0.5, 1.0)
ALPHA = 0.025
# at most alpha, within Monte Carlo error: alpha + 3 standard errors of a rate estimated from the simulations
MAX_FALSE = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMULATIONS)


@pytest.mark.parametrize(
    "fractions, published",
    [
        ((0.25, 0.5, 0.75, 1.0), (4.3326, 2.9631, 2.3590, 2.0141)),  # gsDesign, sfLDOF, k=4, alpha=0.025
        ((0.5, 1.0), (2.9626, 1.9686)),  # gsDesign, sfLDOF, k=2
    ],
)
def test_the_boundaries_are_the_published_obrien_fleming_ones(fractions, published):
    assert sequential.boundaries(fractions, ALPHA) == pytest.approx(published, abs=0.005)
    first = sequential.boundaries(fractions, ALPHA)
    sequential._boundaries.cache_clear()  # computed again, not remembered: the same to the last digit
    assert sequential.boundaries(list(fractions), ALPHA) == first


def test_the_spending_reaches_alpha_at_the_end_and_grows():
    assert sequential.obrien_fleming_spending(1.0, ALPHA) == pytest.approx(ALPHA, rel=1e-12)
    spent = [sequential.obrien_fleming_spending(t, ALPHA) for t in (0.0, 0.1, 0.25, 0.5, 1.0)]
    assert spent[0] == 0 and spent == sorted(spent)
    with pytest.raises(ValueError):
        sequential.boundaries((0.5, 0.25, 1.0), ALPHA)


def test_a_single_look_is_the_fixed_sample_test():
    assert sequential.boundaries((1.0,), ALPHA) == pytest.approx([1.959964], abs=1e-6)


def test_no_flips_is_not_certainty_and_a_look_reports_its_interval():
    look = sequential.gate_look(0, 0, 30, max_drop=1.0, boundary=2.0)
    assert look.verdict is None and math.isfinite(look.statistics[0]) and look.standard_error > 0
    assert look.interval == pytest.approx((-2 * look.standard_error, 2 * look.standard_error))
    assert sequential.gate_look(20, 150, 1000, max_drop=1.0, boundary=2.0).verdict == "FAIL"
    assert sequential.parity_look(0, 10, 0.0, 1.0, 2.0).standard_error > 0
    document = sequential.parity_look(660, 1000, 65.8, 5.0, 2.0, reference_samples=1000).to_dict()
    assert document["verdict"] == "consistent" and len(document["statistics"]) == 2


def stop(looks_per_stage, stage_sizes):
    """Verdict and questions asked of each simulated run: its first decided look, else the last."""
    verdicts, asked = [], []
    for looks in looks_per_stage:
        decided = next((look for look in looks if look.verdict is not None), None)
        verdicts.append(decided.verdict if decided else "INCONCLUSIVE")
        asked.append(decided.questions if decided else stage_sizes[-1])
    return np.array(verdicts), np.array(asked) / stage_sizes[-1]


def stage_counts(rng, questions, probabilities):
    """Cumulative category counts at each stage of one simulated question order (questions are i.i.d., so
    each stage's new questions are a multinomial draw): shape (simulations, stages, categories)."""
    sizes = [round(t * questions) for t in STAGES]
    new = np.diff([0] + sizes)
    draws = np.stack([rng.multinomial(m, probabilities, size=SIMULATIONS) for m in new], axis=1)
    return np.cumsum(draws, axis=1), sizes


def simulate_gate(questions, flip_rate, true_difference, max_drop, seed):
    """Paired answers with a known true difference run - baseline (points): categories wrong->right,
    right->wrong, unchanged."""
    delta = true_difference / 100
    counts, sizes = stage_counts(
        np.random.default_rng(seed),
        questions,
        [(flip_rate + delta) / 2, (flip_rate - delta) / 2, 1 - flip_rate],
    )
    bounds = sequential.boundaries(STAGES, ALPHA)
    looks = [
        [
            sequential.gate_look(int(w2r), int(r2w), n, max_drop, b)
            for (w2r, r2w, _), n, b in zip(run, sizes, bounds, strict=True)
        ]
        for run in counts
    ]
    return stop(looks, sizes)


def simulate_parity(questions, true_difference, reference, tolerance, seed, reference_samples=None):
    """A run whose true score is the reference's true one + true_difference (points); where the reference's
    samples are known, its published figure is itself a draw from them."""
    rng = np.random.default_rng(seed)
    truth = (reference + true_difference) / 100
    counts, sizes = stage_counts(rng, questions, [truth, 1 - truth])
    published = np.full(SIMULATIONS, reference)
    if reference_samples:
        published = (
            100 * rng.binomial(reference_samples, reference / 100, size=SIMULATIONS) / reference_samples
        )
    bounds = sequential.boundaries(STAGES, ALPHA)
    looks = [
        [
            sequential.parity_look(int(right), n, float(figure), tolerance, b, reference_samples)
            for (right, _), n, b in zip(run, sizes, bounds, strict=True)
        ]
        for run, figure in zip(counts, published, strict=True)
    ]
    return stop(looks, sizes)


@pytest.mark.parametrize("questions, flip_rate, max_drop", [(1000, 0.12, 2.0), (198, 0.20, 5.0)])
def test_the_gate_rarely_passes_a_drop_equal_to_the_margin(questions, flip_rate, max_drop):
    # baseline accuracy 0.7: a flip rate of 12-20% is possible both ways
    verdicts, _ = simulate_gate(questions, flip_rate, -max_drop, max_drop, seed=questions)
    assert np.mean(verdicts == "PASS") <= MAX_FALSE


# with few questions the two one-sided tests are conservative (the interval is wider than the tolerance
# allows); with many, the false "consistent" rate at the tolerance is close to alpha itself
@pytest.mark.parametrize(
    "questions, tolerance, reference_samples", [(1000, 3.0, None), (1000, 3.0, 2000), (14000, 2.0, None)]
)
@pytest.mark.parametrize("side", [-1, 1])
def test_parity_rarely_calls_consistent_a_truth_at_the_tolerance(
    questions, tolerance, reference_samples, side
):
    verdicts, _ = simulate_parity(
        questions,
        side * tolerance,
        65.8,
        tolerance,
        seed=questions + side,
        reference_samples=reference_samples,
    )
    assert np.mean(verdicts == "consistent") <= MAX_FALSE


# A clear truth: 14,000 questions (MMLU's size), 10% of answers flipped, a margin of 2 points and no drop at
# all or twice the margin (the statistic's drift at the end is 7.5 standard errors). With a margin of 1 point
# it is 3.7: most runs (about 60%) go on to the last stage (mean share asked about 0.80) and 96% decide.
@pytest.mark.parametrize("max_drop, true_difference, expected, most_asked", [
    (2.0, 0.0, "PASS", 0.75), (2.0, -4.0, "FAIL", 0.75), (1.0, 0.0, "PASS", 0.85),
])  # fmt: skip
def test_a_clear_truth_stops_early(max_drop, true_difference, expected, most_asked):
    verdicts, asked = simulate_gate(14000, 0.10, true_difference, max_drop, seed=11)
    assert np.mean(verdicts == expected) > 0.95
    assert asked.mean() < most_asked


@pytest.mark.parametrize("true_difference, expected", [(0.0, "consistent"), (6.0, "above"), (-6.0, "below")])
def test_parity_with_a_clear_truth_stops_early(true_difference, expected):
    verdicts, asked = simulate_parity(14000, true_difference, 65.8, 3.0, seed=13)
    assert np.mean(verdicts == expected) > 0.95 and asked.mean() < 0.75
