"""AISBench output parsing and the task config bench_app writes (no process started)."""

import json

import pytest

from bench_app.common.errors import EvaluationError
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators.aisbench.results import collect_results
from bench_app.evaluators.aisbench.task import evaluator_argv, task_config_text

# Lines as AISBench 3.1.20260630 wrote them for a real perf run of sample_gsm8k on the tiny model.
PERF_CSV = """Performance Parameters,Stage,Average,Min,Max,Median,P75,P90,P99,N
E2EL,total,3970.7 ms,1927.6 ms,6013.9 ms,3970.7 ms,4992.3 ms,5605.2 ms,5973.0 ms,2
TTFT,total,244.6 ms,179.8 ms,309.4 ms,244.6 ms,277.0 ms,296.4 ms,308.1 ms,2
TPOT,total,65.0 ms,60.0 ms,69.9 ms,65.0 ms,67.4 ms,68.9 ms,69.8 ms,2
"""


def settings(**changes):
    base = dict(
        model="vllm_api_general_chat",
        mode="all",
        max_num_workers=1,
        num_prompts=None,
        batch_size=2,
        retry=2,
        num_warmups=0,
        dump_eval_details=False,
        max_out_len=64,
        generation_kwargs={"temperature": 0.0},
        subsets=["a", "b"],
        data_path="/data/x",
    )
    base.update(changes)
    return EvaluatorSettings(**base)


def test_perf_csv_is_parsed_to_numbers(tmp_path):
    perf_dir = tmp_path / "20260101_000000" / "performances" / "bench_app"
    perf_dir.mkdir(parents=True)
    (perf_dir / "gsm8k.csv").write_text(PERF_CSV)
    metrics = collect_results(tmp_path, settings(mode="perf", subsets=None)).metrics
    assert metrics == {"e2el_ms": 3970.7, "ttft_ms": 244.6, "tpot_ms": 65.0}


def test_subset_results_are_averaged_and_kept(tmp_path):
    results = tmp_path / "20260101_000000" / "results" / "bench_app"
    results.mkdir(parents=True)
    (results / "ceval-a.json").write_text(json.dumps({"accuracy": 50.0}))
    (results / "ceval-b.json").write_text(json.dumps({"accuracy": 0.0}))
    metrics = collect_results(tmp_path, settings()).metrics
    assert metrics["accuracy"] == 25.0 and metrics["subsets"]["ceval-b"] == {"accuracy": 0.0}


def test_missing_subset_results_and_failed_requests_are_failures(tmp_path):
    run = tmp_path / "20260101_000000"
    (run / "results" / "bench_app").mkdir(parents=True)
    (run / "results" / "bench_app" / "ceval-a.json").write_text(json.dumps({"accuracy": 50.0}))
    with pytest.raises(EvaluationError, match="results for 1 of 2 subsets"):
        collect_results(tmp_path, settings())
    (run / "predictions" / "bench_app").mkdir(parents=True)
    (run / "predictions" / "bench_app" / "ceval-a_failed.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(EvaluationError, match="1 request"):
        collect_results(tmp_path, settings())


def test_task_config_holds_literal_values_only():
    """The model is AISBench's own model config (aisbench.model) with bench_app's values over it."""
    text = task_config_text(
        {"module": "ais_bench.benchmark.configs.datasets.ceval.x", "variables": ["ceval_datasets"]},
        "ais_bench.benchmark.configs.models.vllm_api.vllm_api_stream_chat",
        settings(mode="perf"),
        "127.0.0.1",
        8123,
        "tiny",
        "/models/tiny",
    )
    assert "from ais_bench.benchmark.configs.models.vllm_api.vllm_api_stream_chat import models as" in text
    assert "models = [dict(_stock_models[0], **{" in text
    assert "host_port': 8123" in text and "'path': '/models/tiny'" in text and "'stream'" not in text
    assert "d.get('name') in ['a', 'b']" in text and "path='/data/x'" in text
    argv = evaluator_argv(["ais_bench"], "t.py", "w", settings(mode="perf", num_prompts=3))
    assert argv[-4:] == ["--num-prompts", "3", "--num-warmups", "0"]
