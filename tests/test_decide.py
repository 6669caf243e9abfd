"""execution.decide: nested seeded stages per dataset, a group-sequential look after each, the dataset stopped
once decided, records that say where (never a full score), and bad settings refused before a server starts.
The decision math itself is tests/test_sequential.py's."""

import json
import subprocess

import pytest
from conftest import load, run_cli

from bench_app.run.staging import stage_ids

DATASETS = ["dataset=[sample_mmlu,sample_gsm8k]"]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_stages_are_nested_stratified_and_the_same_everywhere():
    sizes = [40, 10, 3]
    stages = stage_ids(sizes, [0.1, 0.25, 0.5, 1.0], seed=7, dataset="mmlu")
    assert stages == stage_ids(sizes, [0.1, 0.25, 0.5, 1.0], seed=7, dataset="mmlu")
    assert stages != stage_ids(sizes, [0.1, 0.25, 0.5, 1.0], seed=8, dataset="mmlu")
    for earlier, later in zip(stages, stages[1:], strict=False):  # each stage holds the one before
        for a, b in zip(earlier, later, strict=True):
            assert set(a) <= set(b)
    assert [len(ids) for ids in stages[0]] == [4, 1, 1]  # every subset from the first stage, by its size
    assert stages[-1] == [list(range(size)) for size in sizes]


@pytest.mark.parametrize(
    "overrides, said",
    [
        (["execution.decide.max_drop=1"], "execution.decide.max_drop needs execution.decide.baseline"),
        (["execution.decide.tolerance=-1"], "execution.decide.tolerance: -1.0 points; give a number >= 0"),
        (
            ["execution.decide.tolerance=2", "execution.decide.max_drop=1", "execution.decide.baseline=x"],
            "a gate (baseline, max_drop) or parity (tolerance), not both",
        ),
        (
            ["execution.decide.tolerance=2", "execution.decide.stages=[0.5,0.25,1.0]"],
            "give increasing shares of the questions",
        ),
        (["execution.decide.tolerance=2", "execution.decide.stages=[0.1,0.5]"], "ending at 1.0"),
        (
            ["execution.decide.max_drop=1", "execution.decide.baseline=outputs/none"],
            "outputs/none is not a bench_app run folder",  # named as the absolute path the snapshot keeps
        ),
        (
            ["execution.decide.tolerance=2", "benchmark.repeats=2"],
            "repeats=2 with execution.decide: a staged decision tests one answer per question",
        ),
        (
            ["execution.decide.tolerance=2", "aisbench.num_prompts=2"],
            "execution.decide draws its own stages from the whole dataset",
        ),
        (
            ["execution.decide.tolerance=2"],
            "parity needs a reference: no reference matches the run's model",
        ),  # the tiny model has no published figures
    ],
)
def test_bad_decisions_are_refused_before_anything_starts(tmp_path, overrides, said):
    done = run_cli(["execution.dry_run=true", *DATASETS, *overrides], tmp_path)
    shown = done.stdout + done.stderr
    assert done.returncode == 2 and said in shown and "Traceback" not in shown, shown[-2000:]


@pytest.mark.e2e
def test_a_gate_stops_each_dataset_when_decided_and_compare_agrees(workdir):
    base = run_cli(["benchmark.name=base", *DATASETS], workdir)
    assert base.returncode == 0, base.stderr[-3000:]
    # Against the baseline, how much worse it may be configured otherwise: refused before any server starts
    other = run_cli(
        [
            "benchmark.name=other",
            *DATASETS,
            "datasets.sample_gsm8k.model_config.max_out_len=48",
            "execution.decide.baseline=outputs/base",
            "execution.decide.max_drop=90",
        ],
        workdir,
    )
    said = other.stdout + other.stderr
    assert other.returncode == 2 and "dataset sample_gsm8k: configured otherwise (max_out_len" in said, said
    assert "starting server" not in said
    # A margin the few sample questions can decide on: 90 points, with two stages
    gate = [
        "execution.decide.baseline=outputs/base",
        "execution.decide.max_drop=90",
        "execution.decide.stages=[0.5,1.0]",
    ]
    done = run_cli(["benchmark.name=decided", *DATASETS, *gate], workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    results = load(workdir / "outputs/decided/results.yaml")
    stopped_early = 0
    for short, entry in results["datasets"].items():
        decided = entry["decided"]
        assert decided["decision"] == "gate" and decided["verdict"] == "PASS", decided
        looks = decided["looks"]
        assert len(looks) == decided["stage"] and decided["stages"] == 2
        assert all(look["verdict"] is None for look in looks[:-1]) and looks[-1]["verdict"] == "PASS"
        assert looks[-1]["statistics"][0] >= looks[-1]["boundary"]  # the boundary it crossed
        assert decided["requests_saved"] == decided["total"] - decided["questions"]
        # every question asked was generated once, whatever the stages: the earlier ones' answers reused
        generated = [
            r for r in _lines(workdir / f"outputs/decided/{short}/requests.jsonl") if not r["cached"]
        ]
        assert len(generated) == decided["questions"] == entry["answers"]["generated"]
        assert f"decided {short}: PASS at stage {decided['stage']} of 2" in done.stdout
        if decided["stage"] < decided["stages"]:
            stopped_early += 1
            assert "not a full score" in done.stdout
            assert entry["probe"]["size"] == decided["questions"]  # a drawn part, said as such
    assert stopped_early >= 1  # sample_mmlu's first stage (4 of 6) already shows 90 points cannot be lost
    summary = (workdir / "outputs/decided/summary.md").read_text()
    assert "| dataset | decided (execution.decide) |" in summary
    # compare's own gate over the same answers: the same verdicts; the stopped dataset said as such
    compared = run_cli(
        ["compare", "outputs/base", "outputs/decided", "--gate", "max_drop=90", "--json"], workdir
    )
    assert compared.returncode == 0, compared.stdout[-2000:] + compared.stderr[-2000:]
    cells = json.loads(compared.stdout)["runs"][0]["cells"]
    for short, entry in results["datasets"].items():
        cell = cells[short]
        assert cell["gate"]["verdict"] == "PASS" and cell["paired"] == entry["decided"]["questions"]
        stage = entry["decided"]
        assert cell["stopped"] == (
            None if stage["stage"] == stage["stages"] else f"stage {stage['stage']} of {stage['stages']}"
        )
    # reproduce.sh replays the same stages: the same questions asked, decided at the same stage
    replayed = subprocess.run(
        ["bash", "outputs/decided/configs/reproduce.sh", "benchmark.name=replayed"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    again = load(workdir / "outputs/replayed/results.yaml")["datasets"]
    for short, entry in results["datasets"].items():
        assert {k: again[short]["decided"][k] for k in ("stage", "questions")} == {
            k: entry["decided"][k] for k in ("stage", "questions")
        }
        prompts = [{s["prompt"] for s in _lines(workdir / f"outputs/{run}/{short}/samples.jsonl")} for run in
                   ("decided", "replayed")]  # fmt: skip
        assert prompts[0] == prompts[1]
    # the run history and MLflow say it too
    listed = run_cli(["runs"], workdir)
    assert "(decided at stage" in listed.stdout, listed.stdout
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    exported = run_cli(["export", "mlflow", "outputs/decided", "--tracking-uri", uri], workdir)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bench_app").experiment_id])
    for short, entry in results["datasets"].items():
        decided = entry["decided"]
        tag = run.data.tags[f"decided.{short}"]
        assert tag.startswith(f"PASS at stage {decided['stage']} of 2")
        assert tag.endswith("not a full score") == (decided["stage"] < 2)
        assert run.data.metrics[f"{short}/decided/requests_saved"] == decided["requests_saved"]
