"""Paired comparison of samples: flips each way, the exact McNemar p-value, and compare's output."""

import json

import pytest
from scipy.stats import binomtest

from bench_app.records.documents import SampleRecord
from bench_app.reports.paired import load_samples, mcnemar_exact_p, pair


def records(correct, prompt="q"):
    return {
        ("s", i): SampleRecord.from_dict({"subset": "s", "id": i, "prompt": f"{prompt}{i}", "correct": c})
        for i, c in enumerate(correct)
    }


def test_flips_are_counted_each_way_and_tested_on_the_discordant_pairs_only():
    a = records([True, True, True, False, False, True, None])
    b = records([True, False, False, True, False, True, True])
    result = pair(a, b)
    assert result.paired == 6  # the unscored sample is not paired
    assert (result.both_right, result.both_wrong) == (2, 1)
    assert result.right_to_wrong == [("s", 1), ("s", 2)]
    assert result.wrong_to_right == [("s", 3)]
    assert result.p_value == pytest.approx(binomtest(2, 3, 0.5).pvalue)
    assert result.p_value == pytest.approx(1.0)  # 2 of 3 flips one way: no evidence
    assert not result.significant


def test_exact_mcnemar_matches_the_textbook_values():
    # 10 flips all one way: p = 2 * 0.5**10
    assert mcnemar_exact_p(10, 0) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact_p(0, 0) == 1.0
    # 1 vs 9: two-sided exact p = 2 * P(X <= 1) with X ~ Bin(10, .5) = 2 * 11 / 1024
    assert mcnemar_exact_p(1, 9) == pytest.approx(22 / 1024)


def test_twenty_flips_one_way_is_significant():
    a = records([True] * 20 + [False] * 5)
    b = records([False] * 20 + [False] * 5)
    result = pair(a, b)
    assert result.significant and "is significant at 0.05" in result.summary()


def test_same_id_with_another_prompt_is_not_paired():
    a, b = records([True, True]), records([False, False], prompt="other")
    result = pair(a, b)
    assert (result.paired, result.prompt_differs, result.flips) == (0, 2, 0)


def test_load_samples_reads_a_run_folder(tmp_path):
    (tmp_path / "ds").mkdir()
    lines = [json.dumps({"subset": "s", "id": i, "prompt": "p", "correct": True}) for i in range(3)]
    (tmp_path / "ds" / "samples.jsonl").write_text("\n".join(lines) + "\n")
    assert sorted(load_samples(tmp_path, "ds")) == [("s", 0), ("s", 1), ("s", 2)]
    assert load_samples(tmp_path, "missing") is None
