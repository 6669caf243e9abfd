"""Repeats in one run (benchmark.repeats=N): one server start, every repeat's requests through AISBench's
own `n`, a seed per repeat in each answer's cache key (a later run reuses them repeat by repeat), records
per answer with their repeat and seed, the repeats' statistics; bad settings refused before a server starts.
"""

import json
import math
import statistics
from collections import Counter

import pytest
from conftest import load, plan_for, run_cli
from scipy import stats

from bench_app.common.errors import UserError
from bench_app.evaluators.samples import repeat_summary
from bench_app.records.documents import SampleRecord
from bench_app.run.planning.repeats import RepeatSeeds

SAMPLED = ["dataset=sample_gsm8k", "aisbench.num_prompts=3", "++aisbench.generation_kwargs.temperature=0.8"]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_each_copy_of_a_request_takes_the_lowest_free_repeat_and_its_seed():
    seeds = RepeatSeeds([7, 8, 9])
    bodies = [{"messages": [{"role": "user", "content": "q"}], "seed": 1} for _ in range(3)]
    taken = [seeds.take(body) for body in bodies]
    assert [repeat for _, repeat in taken] == [0, 1, 2] and [b["seed"] for b in bodies] == [7, 8, 9]
    other = {"messages": [{"role": "user", "content": "another"}]}
    assert seeds.take(other)[1] == 0 and other["seed"] == 7  # each question has repeats of its own
    seeds.give_back(*taken[1])  # repeat 1 failed: the retry is sent with its seed again
    retry = dict(bodies[1])
    assert seeds.take(retry)[1] == 1 and retry["seed"] == 8
    extra = dict(bodies[0])  # a question asked twice in the dataset: its copies go on to new seeds
    assert seeds.take(extra)[1] == 3 and extra["seed"] == 10
    assert not RepeatSeeds([5])  # one repeat: requests pass unchanged


def test_the_repeat_summary_is_each_repeats_score_their_spread_and_a_vote():
    rows = []
    answers = {0: ["7", "7", "8"], 1: ["3", "4", "4"]}  # question 0's gold is 7, question 1's is 3
    for question, predictions in answers.items():
        gold = "7" if question == 0 else "3"
        for repeat, prediction in enumerate(predictions):
            rows.append(
                {"id": question, "subset": "s", "repeat": repeat, "seed": 1 + repeat,
                 "prediction": prediction, "correct": prediction == gold}
            )  # fmt: skip
    summary = repeat_summary([SampleRecord.from_dict(r, strict=True) for r in rows]).to_dict()
    scores = [100.0, 50.0, 0.0]  # repeat 0: both right; 1: question 0 only; 2: neither
    assert summary["k"] == 3 and summary["questions"] == 2 and summary["seeds"] == [1, 2, 3]
    assert summary["scores"] == scores and summary["mean"] == 50.0
    error = statistics.stdev(scores) / math.sqrt(3)
    assert summary["std_error"] == round(error, 4)
    half = stats.t.ppf(0.975, 2) * error
    assert summary["ci95"] == [round(50 - half, 4), round(50 + half, 4)]
    assert summary["maj@3"] == 50.0  # question 0 votes 7 (right), question 1 votes 4 (wrong)
    assert summary["pass@3"] == 100.0  # each question right at least once
    assert (
        repeat_summary([SampleRecord.from_dict(r).model_copy(update={"repeat": None}) for r in rows]) is None
    )
    # a tie is broken at random on average: one right of three different answers scores a third
    tie = [SampleRecord(id=0, repeat=i, prediction=p, correct=p == "5") for i, p in enumerate("125")]
    assert repeat_summary(tie).to_dict()["maj@3"] == round(100 / 3, 4)
    unextracted = [SampleRecord.from_dict(dict(r, prediction=None)) for r in rows]  # no extracted answers
    assert "maj@3" not in repeat_summary(unextracted).to_dict()


@pytest.mark.parametrize(
    "overrides, said",
    [
        (["benchmark.repeats=0"], "repeats must be an integer >= 1 (samples per question), got 0"),
        (["+datasets.sample_gsm8k.repeats=-2"], "repeats must be an integer >= 1"),
        (["benchmark.repeats=2", "aisbench.mode=perf"], "repeats=2 with aisbench.mode=perf"),
        (["benchmark.repeats_as=often"], "benchmark.repeats_as: 'often' is not a form. Valid: run, jobs"),
    ],
)
def test_bad_repeat_settings_are_refused_at_planning(overrides, said):
    with pytest.raises(UserError, match=said.replace("(", r"\(").replace(")", r"\)")):
        plan_for(["dataset=sample_gsm8k", *overrides])


def test_a_dataset_may_take_its_own_repeats_and_they_are_planned(tmp_path):
    plan = plan_for(
        ["dataset=[sample_gsm8k,sample_mmlu]", "benchmark.repeats=2", "datasets.sample_mmlu.repeats=5"]
    )
    gsm8k, mmlu = plan.dataset("sample_gsm8k").evaluator, plan.dataset("sample_mmlu").evaluator
    assert (gsm8k.repeats, mmlu.repeats) == (2, 5)
    first = gsm8k.generation_kwargs.get("seed")
    assert gsm8k.repeat_seeds == [(1 if first is None else first) + i for i in range(2)]
    dry = run_cli(["execution.dry_run=true", *SAMPLED, "benchmark.repeats=0"], tmp_path)
    said = dry.stdout + dry.stderr
    assert dry.returncode == 2 and "repeats must be an integer >= 1" in said and "Traceback" not in said


@pytest.mark.e2e
def test_repeats_run_on_one_server_and_a_later_run_reuses_them_repeat_by_repeat(workdir):
    cache = workdir / "shared_cache"
    first = run_cli(
        ["benchmark.name=three", "benchmark.repeats=3", f"execution.cache={cache}", *SAMPLED], workdir
    )
    assert first.returncode == 0, first.stderr[-3000:]
    said = first.stdout + first.stderr
    assert "1 server start(s)" in said and "repeats sample_gsm8k: mean of 3 repeats over 3 questions" in said
    run = workdir / "outputs/three"
    results = load(run / "results.yaml")
    assert len(results["servers"]) == 1
    entry = results["datasets"]["sample_gsm8k"]
    assert entry["status"] == "ok" and entry["prompts"] == {"done": 9, "total": 9}
    # AISBench's own figures for its n: the mean over repeats is accuracy, beside avg@3
    assert {"accuracy", "avg@3"} <= set(entry["metrics"])
    assert not {"pass@3", "cons@3"} & set(entry["metrics"])  # AISBench's: computed on mixed groups
    assert entry["metrics"]["accuracy"] == pytest.approx(entry["metrics"]["avg@3"])
    repeats = entry["repeats"]
    assert repeats["k"] == 3 and repeats["questions"] == 3 and len(repeats["scores"]) == 3
    assert 0 <= repeats["pass@3"] <= 100 and "maj@3" in repeats
    assert repeats["mean"] == pytest.approx(entry["metrics"]["accuracy"], abs=1e-3)
    assert repeats["mean"] == pytest.approx(statistics.fmean(repeats["scores"]), abs=1e-3)
    seeds = repeats["seeds"]
    assert len(seeds) == 3 and seeds == list(range(seeds[0], seeds[0] + 3))
    assert "| sample_gsm8k | mean of 3 repeats over 3 questions" in (run / "summary.md").read_text()
    assert '"repeats": {"k": 3' in (run / "report.html").read_text()  # the scores table says them too
    snapshot = load(run / "configs/per_dataset/sample_gsm8k.yaml")
    assert snapshot["aisbench"]["repeats"] == 3
    # The relay sent each question's three copies with the three seeds
    records = _lines(run / "sample_gsm8k/requests.jsonl")
    assert len(records) == 9 and all(r["status"] == 200 for r in records)
    by_question = Counter(json.dumps(r["messages"]) for r in records)
    assert sorted(by_question.values()) == [3, 3, 3]
    for messages in by_question:
        same = [r for r in records if json.dumps(r["messages"]) == messages]
        assert sorted((r["repeat"], r["settings"]["seed"]) for r in same) == list(enumerate(seeds))
    # samples.jsonl: one record per answer, the question's id, its repeat and seed; right ones add up
    samples = _lines(run / "sample_gsm8k/samples.jsonl")
    assert sorted((s["id"], s["repeat"]) for s in samples) == [(q, r) for q in range(3) for r in range(3)]
    assert {s["seed"] for s in samples} == set(seeds)
    assert 100.0 * sum(bool(s["correct"]) for s in samples) / 9 == pytest.approx(entry["metrics"]["accuracy"])
    # each record's prediction is its own answer's (AISBench's grouped details mix the questions)
    extracted = [s for s in samples if s["prediction"] not in (None, "")]
    assert extracted and all(str(s["prediction"]) in s["answer"] for s in extracted), extracted
    # A fourth repeat later, on the shared cache: the three are reused, only the new seed is generated
    more = run_cli(
        ["benchmark.name=four", "benchmark.repeats=4", f"execution.cache={cache}", *SAMPLED], workdir
    )
    assert more.returncode == 0, more.stderr[-3000:]
    four = load(workdir / "outputs/four/results.yaml")["datasets"]["sample_gsm8k"]
    assert four["answers"] == {"reused": 9, "generated": 3}
    generated = [r for r in _lines(workdir / "outputs/four/sample_gsm8k/requests.jsonl") if not r["cached"]]
    assert {r["settings"]["seed"] for r in generated} == {seeds[0] + 3}
    assert four["repeats"]["seeds"] == [*seeds, seeds[0] + 3]
    # compared with the three: each question scored by its share of right answers (pooled), never McNemar
    compared = run_cli(["compare", str(run), str(workdir / "outputs/four"), "--json"], workdir)
    assert compared.returncode == 0, compared.stderr[-2000:]
    cell = json.loads(compared.stdout)["runs"][0]["cells"]["sample_gsm8k"]
    assert cell["test"] == "bootstrap" and cell["paired"] == 3 and not cell["config_differs"]
