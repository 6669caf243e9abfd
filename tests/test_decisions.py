"""The three verdicts' error rates, asserted on simulated comparisons with a known truth (1,000 per case):
the release gate's false PASS rate when the true drop equals the margin, its power at the minimum detectable
effect it prints, and parity's false "consistent" rate when the truth lies outside the tolerance."""

import math

import numpy as np
import pytest

from bench_app.reports import decisions

SIMULATIONS = 1000
# at most 5%, within Monte Carlo error: 5% + 2 standard errors of a rate estimated from 1,000 draws
MAX_FALSE = 0.05 + 2 * math.sqrt(0.05 * 0.95 / SIMULATIONS)
MIN_POWER = 0.80 - 2 * math.sqrt(0.80 * 0.20 / SIMULATIONS)


def simulate_gate(questions, flip_rate, true_difference, margin, datasets, seed):
    """Verdicts on paired right/wrong answers whose true difference (run - baseline, points) is known."""
    delta = true_difference / 100
    right_to_wrong, wrong_to_right = (flip_rate - delta) / 2, (flip_rate + delta) / 2
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(questions, [right_to_wrong, wrong_to_right, 1 - flip_rate], size=SIMULATIONS)
    return [
        decisions.gate(margin, datasets, questions, right_to_wrong=int(b), wrong_to_right=int(c)).verdict
        for b, c, _ in draws
    ]


CASES = [  # questions, flip rate, margin (points), datasets in the column
    (198, 0.20, 5.0, 1),  # GPQA-Diamond
    (30, 0.30, 10.0, 1),  # AIME'24
    (1000, 0.10, 1.0, 7),  # a large dataset among the suite's seven
]


@pytest.mark.parametrize("questions, flip_rate, margin, datasets", CASES)
def test_the_gate_rarely_passes_a_drop_equal_to_the_margin(questions, flip_rate, margin, datasets):
    verdicts = simulate_gate(questions, flip_rate, -margin, margin, datasets, seed=questions)
    assert verdicts.count("PASS") / SIMULATIONS <= MAX_FALSE


@pytest.mark.parametrize("questions, flip_rate, margin, datasets", CASES)
def test_the_gate_passes_at_the_minimum_detectable_effect_it_prints(questions, flip_rate, margin, datasets):
    # what the gate prints for data that sit on the margin
    b = round(questions * (flip_rate + margin / 100) / 2)
    printed = decisions.gate(margin, datasets, questions, right_to_wrong=b, wrong_to_right=round(
        questions * flip_rate) - b).mde  # fmt: skip
    assert printed is not None and printed > 0
    true_difference = -margin + printed
    if true_difference > 100 * flip_rate:  # not a possible truth at this flip rate
        pytest.skip("the minimum detectable effect exceeds what this flip rate allows")
    verdicts = simulate_gate(questions, flip_rate, true_difference, margin, datasets, seed=questions + 1)
    assert verdicts.count("PASS") / SIMULATIONS >= MIN_POWER


def test_a_drop_far_beyond_the_margin_fails_and_a_tiny_sample_is_inconclusive():
    assert decisions.gate(1.0, 1, 1000, right_to_wrong=150, wrong_to_right=20).verdict == "FAIL"
    small = decisions.gate(1.0, 1, 6, right_to_wrong=1, wrong_to_right=0)
    assert small.verdict == "INCONCLUSIVE" and small.mde > 10 and small.needed > 6
    # no flips at all on 30 questions is not proof of no drop within 1 point
    assert decisions.gate(1.0, 1, 30, right_to_wrong=0, wrong_to_right=0).verdict == "INCONCLUSIVE"


@pytest.mark.parametrize(
    "questions, reference, tolerance, reference_samples",
    [(5000, 65.8, 2.0, None), (500, 98.0, 2.0, None), (20000, 65.8, 3.0, 1980)],
)
def test_parity_rarely_calls_consistent_a_truth_outside_the_tolerance(
    questions, reference, tolerance, reference_samples
):
    rng = np.random.default_rng(questions)
    for side in (-1, 1):
        truth = (reference + side * tolerance) / 100
        if not 0 < truth < 1:
            continue
        counts = rng.binomial(questions, truth, size=SIMULATIONS)
        verdicts = [
            decisions.parity(100 * k / questions, questions, reference, tolerance, reference_samples).verdict
            for k in counts
        ]
        assert verdicts.count("consistent") / SIMULATIONS <= MAX_FALSE, side


def test_a_probe_of_four_questions_is_consistent_with_nothing():
    decision = decisions.parity(50.0, 4, 65.8, 2.0)
    assert decision.verdict == "inconclusive" and decision.interval[1] - decision.interval[0] > 60
    assert decision.needed > 4 and decision.mde > 40
