"""The run history (`bench-app runs`, its SQLite index beside the runs) and the MLflow export
(`bench-app export mlflow`, execution.export), read back with MlflowClient from a real local store."""

import json
import os
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from conftest import broken_engine_args, load, run_cli

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from run_folders import write_run, write_sweep  # noqa: E402

from bench_app.common.errors import UserError  # noqa: E402
from bench_app.exports.mlflow import RUN_ID_TAG, export_finished, tracking_uri  # noqa: E402
from bench_app.records.names import RUNS_INDEX_FILE
from bench_app.rundir.index import RunIndex  # noqa: E402

ANSWERS = {"d_math": [True, False, True, True], "d_facts": [True, False]}


@pytest.fixture
def history(tmp_path):
    outputs = tmp_path / "outputs"
    write_run(outputs, "bf16_old", ANSWERS, timestamp="2026-10-01T09:00:00", model="qwen3-30b")
    write_run(
        outputs, "w8a8", ANSWERS, quantization="w8a8", timestamp="2026-11-20T09:00:00", model="qwen3-30b"
    )
    write_run(outputs, "tiny_failed", {"d_math": [True]}, status="failed", timestamp="2026-11-25T09:00:00")
    jobs = [{"datasets": {"d_code": [True, True]}, "overrides": [f"vllm.seed={s}"]} for s in (1, 2)]
    write_sweep(
        outputs / "sweeps", "20261130_120000", [dict(j, timestamp="2026-11-30T12:00:00") for j in jobs]
    )
    return tmp_path


def runs(cwd, *args):
    done = run_cli(["runs", "--json", *args], cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_runs_lists_every_run_newest_first_with_filters(history):
    rows = runs(history)
    assert [r["name"] for r in rows] == [
        "sweeps/20261130_120000/1",
        "sweeps/20261130_120000/0",
        "tiny_failed",
        "w8a8",
        "bf16_old",
    ]
    w8a8 = rows[3]
    assert w8a8["model"] == "qwen3-30b" and w8a8["precision"] == "w8a8/bfloat16"
    assert w8a8["scores"] == {"d_math": 75.0, "d_facts": 50.0} and w8a8["commit"] == "0123456789ab"
    assert [r["name"] for r in runs(history, "--model", "qwen3", "--since", "2026-11-01")] == ["w8a8"]
    assert [r["name"] for r in runs(history, "--dataset", "code")][0].startswith("sweeps/")
    assert "tiny_failed" not in [r["name"] for r in runs(history, "--status", "ok")]
    shown = run_cli(["runs"], history)
    assert (
        shown.returncode == 0 and "5 run(s), newest first" in shown.stdout and "w8a8/bfloat16" in shown.stdout
    )
    bad = run_cli(["runs", "--since", "yesterday"], history)
    assert bad.returncode == 2 and "'yesterday' is not a date" in bad.stderr


def test_the_index_follows_the_folders_it_caches(history):
    outputs = history / "outputs"
    runs(history)
    assert (outputs / RUNS_INDEX_FILE).is_file()
    index = RunIndex(outputs)
    assert index.refresh() == (0, 0)  # warm: nothing read again
    results = outputs / "w8a8/results.yaml"
    document = load(results)
    document["datasets"]["d_math"]["metrics"]["accuracy"] = 25.0
    results.write_text(yaml.safe_dump(document))
    import shutil

    shutil.rmtree(outputs / "bf16_old")
    assert index.refresh() == (1, 1)
    index.close()
    rows = {r["name"]: r for r in runs(history)}
    assert rows["w8a8"]["scores"]["d_math"] == 25.0 and "bf16_old" not in rows
    (outputs / RUNS_INDEX_FILE).write_bytes(b"not a database at all" * 100)  # a broken cache is rebuilt
    assert len(runs(history)) == 4
    other = history / "elsewhere"
    write_run(other, "moved_run", ANSWERS, timestamp="2026-12-01T08:00:00")
    assert "moved_run" in [r["name"] for r in runs(history, "--root", str(other))]


def test_a_run_left_running_by_a_dead_process_lists_as_killed(history):
    outputs = history / "outputs"
    run = write_run(outputs, "died", ANSWERS, status="running", timestamp="2026-12-01T09:00:00")
    (run / "results.yaml").unlink()
    metadata = load(run / "configs/metadata.yaml")
    metadata["run"].update(host=os.uname().nodename, pid=2**22 + 17, pid_start="1")
    (run / "configs/metadata.yaml").write_text(yaml.safe_dump(metadata))
    assert runs(history)[0]["name"] == "died" and runs(history)[0]["status"] == "killed"


def mlflow_client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def exported_runs(client):
    experiment = client.get_experiment_by_name("bench_app")
    return client.search_runs([experiment.experiment_id])


def test_export_writes_params_metrics_tags_and_artifacts_and_updates_on_a_second_export(history):
    outputs = history / "outputs"
    uri = f"sqlite:///{history / 'mlflow.db'}"
    first = run_cli(
        ["export", "mlflow", str(outputs / "bf16_old"), str(outputs / "w8a8"), "--tracking-uri", uri], history
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("created MLflow run") == 2
    client = mlflow_client(uri)
    found = {r.data.tags["mlflow.runName"]: r for r in exported_runs(client)}
    w8a8 = found["w8a8"]
    assert w8a8.data.tags["precision"] == "w8a8/bfloat16" and w8a8.data.tags["model"] == "qwen3-30b"
    assert w8a8.data.tags["git_commit"] == "0123456789abcdef0123" and w8a8.data.tags[RUN_ID_TAG].startswith(
        "w8a8@"
    )
    assert w8a8.data.params["vllm.dtype"] == "bfloat16" and w8a8.data.params["vllm.quantization"] == "w8a8"
    assert w8a8.data.metrics["d_math/accuracy"] == 75.0 and w8a8.info.status == "FINISHED"
    # no reference matches qwen3-30b (conf/reference/: Qwen3-30B-A3B's): the run exports without parity
    assert not [k for k in [*w8a8.data.tags, *w8a8.data.metrics] if k.startswith("parity.")]
    # the run's own start and end (metadata.yaml), not the export's
    started = datetime.fromisoformat("2026-11-20T09:00:00").timestamp() * 1000
    assert (w8a8.info.start_time, w8a8.info.end_time) == (started, started + 90_000)
    artifacts = {a.path for a in client.list_artifacts(w8a8.info.run_id)}
    assert {"configs", "results.yaml", "samples"} <= artifacts
    assert [a.path for a in client.list_artifacts(w8a8.info.run_id, "samples/d_math")] == [
        "samples/d_math/samples.jsonl"
    ]

    again = run_cli(["export", "mlflow", str(outputs / "w8a8")], history, env={"MLFLOW_TRACKING_URI": uri})
    assert again.returncode == 0 and f"updated MLflow run {w8a8.info.run_id}" in again.stdout, again.stderr
    assert len(exported_runs(client)) == 2

    from bench_app.sweeps.summary import write_sweep_summary

    # the sweep's results.yaml, as its last job writes it
    assert write_sweep_summary(outputs / "sweeps/20261130_120000")[0] == "completed"
    sweep = run_cli(
        ["export", "mlflow", str(outputs / "sweeps/20261130_120000"), "--tracking-uri", uri], history
    )
    assert sweep.returncode == 0, sweep.stderr
    by_name = {r.data.tags["mlflow.runName"]: r for r in exported_runs(client)}
    parent = by_name["20261130_120000"]
    children = [
        r for r in exported_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    ]
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == ["0", "1"]
    assert parent.data.tags["status"] == "completed" and parent.info.status == "FINISHED"


def test_a_run_whose_model_has_a_reference_exports_its_parity_verdicts(history):
    from bench_app.reports.parity import parity

    answers = {"ceval": [True] * 43 + [False] * 7, "gpqa": [True] * 99 + [False] * 99, "d_math": [True]}
    run = write_run(history / "outputs", "qwen", answers, model="Qwen3-30B-A3B")
    results = load(run / "results.yaml")
    for short, given in answers.items():  # the questions parity's interval is over
        results["datasets"][short]["samples"] = len(given)
    (run / "results.yaml").write_text(yaml.safe_dump(results))
    uri = f"sqlite:///{history / 'mlflow.db'}"
    done = run_cli(["export", "mlflow", str(run), "--tracking-uri", uri], history)
    assert done.returncode == 0, done.stdout + done.stderr
    (exported,) = exported_runs(mlflow_client(uri))
    tags, metrics = exported.data.tags, exported.data.metrics
    report = parity(run).to_dict()  # as `bench-app parity --json` gives it
    assert tags["parity.reference"] == report["reference"] == "qwen3_30b_a3b"
    assert tags["parity.tolerance"] == f"{report['tolerance']:g}"
    rows = {row["dataset"]: row for row in report["rows"]}
    assert {rows["ceval"]["verdict"], rows["gpqa"]["verdict"]} == {"inconclusive", "below"}
    for short in ("ceval", "gpqa"):
        row, decision = rows[short], rows[short]["decision"]
        assert tags[f"parity.{short}.verdict"] == row["verdict"]
        assert metrics[f"parity.{short}.difference"] == pytest.approx(row["difference"])
        low, high = decision["interval"]
        assert metrics[f"parity.{short}.difference_low"] == pytest.approx(low)
        assert metrics[f"parity.{short}.difference_high"] == pytest.approx(high)
        assert metrics[f"parity.{short}.mde"] == pytest.approx(decision["mde"])
        needed = metrics.get(f"parity.{short}.questions_needed")
        assert needed == (decision["needed"] and pytest.approx(decision["needed"])), short
    assert rows["ceval"]["decision"]["needed"] and rows["gpqa"]["decision"]["needed"] is None
    # d_math has no figure in the reference: no verdict exported for it, its score as always
    assert rows["d_math"]["verdict"] == "not comparable" and "parity.d_math.verdict" not in tags
    assert metrics["d_math/accuracy"] == 100.0 and "parity.error" not in tags

    # parity that cannot be computed (here: a dataset's config unreadable) never fails the export
    config = run / "configs/per_dataset/ceval.yaml"
    kept = config.read_text()
    config.write_text("dataset: [not yaml\n")
    lines = export_finished(run, ["mlflow"], uri)
    assert lines[0] == f"exported to MLflow ({uri}): 1 run(s)", lines
    assert lines[1].startswith(f"warning: parity of {run} not exported (") and len(lines) == 2, lines
    (broken,) = exported_runs(mlflow_client(uri))
    assert broken.info.run_id == exported.info.run_id and broken.data.tags["parity.error"]
    assert broken.data.metrics["ceval/accuracy"] == 86.0 and broken.info.status == "FINISHED"
    config.write_text(kept)  # computed again: the error tag goes
    assert export_finished(run, ["mlflow"], uri) == [f"exported to MLflow ({uri}): 1 run(s)"]
    (fixed,) = exported_runs(mlflow_client(uri))
    assert "parity.error" not in fixed.data.tags and fixed.data.tags["parity.ceval.verdict"] == "inconclusive"


def test_credentials_never_go_in_the_uri_and_a_failed_export_never_fails_the_run(tmp_path):
    with pytest.raises(UserError, match="MLFLOW_TRACKING_PASSWORD"):
        tracking_uri("https://user:secret@mlflow.example.com")
    run = write_run(tmp_path, "done", ANSWERS)
    (tmp_path / "a_file").write_text("a file where the store's folder would be\n")
    lines = export_finished(run, ["mlflow"], f"sqlite:///{tmp_path}/a_file/mlflow.db")
    assert len(lines) == 1 and lines[0].startswith("warning: export to mlflow failed")
    assert f"bench-app export mlflow {run}" in lines[0]


def test_a_run_indexes_itself_and_exports_at_its_end(tmp_path):
    args, env = broken_engine_args("exit_at_start", tmp_path / "pids")
    common = ["dataset=[sample_gsm8k]", "aisbench.num_prompts=1", "execution.server_stop_timeout_s=5", *args]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    done = run_cli(
        [
            "benchmark.name=exported",
            "execution.export=[mlflow]",
            f"execution.mlflow_tracking_uri={uri}",
            *common,
        ],
        tmp_path,
        env=env,
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]  # the engine failed, as designed
    assert f"exported to MLflow ({uri}): 1 run(s)" in done.stdout
    (exported,) = exported_runs(mlflow_client(uri))
    assert exported.info.status == "FAILED" and exported.data.tags["status"] == "failed"
    with sqlite3.connect(
        tmp_path / "outputs" / RUNS_INDEX_FILE
    ) as db:  # recorded by the run, before any listing
        (row,) = db.execute("SELECT row FROM runs").fetchall()
    assert json.loads(row[0])["name"] == "exported" and json.loads(row[0])["status"] == "failed"

    (tmp_path / "a_file").write_text("a file where the store's folder would be\n")
    broken = run_cli(
        [
            "benchmark.name=unexported",
            "execution.export=[mlflow]",
            f"execution.mlflow_tracking_uri=sqlite:///{tmp_path}/a_file/mlflow.db",
            *common,
        ],
        tmp_path,
        env=env,
    )
    assert broken.returncode == 1 and "warning: export to mlflow failed" in broken.stdout
    assert "Traceback" not in broken.stdout + broken.stderr
    assert load(tmp_path / "outputs/unexported/results.yaml")["status"] == "failed"
    unknown = run_cli(["benchmark.name=x", "execution.export=[wandb]", *common], tmp_path, env=env)
    assert unknown.returncode == 2 and "execution.export: 'wandb' unknown. Valid: mlflow." in unknown.stdout


def test_the_rows_cut_of_results_yaml_reads_what_the_whole_file_says(tmp_path):
    from bench_app.common.files import dump_yaml, yaml_loads
    from bench_app.rundir.index import results_essentials

    fixture = Path(__file__).parent / "fixtures/run_before_schema_version/results.yaml"
    failed = {
        "status": "failed",
        "reason": "x " * 90,
        "log_tail": "Traceback:\n  status: not this\nmetrics: nor this\n" + "long " * 60 + "\n\ttab\n",
        "metrics": {},
    }
    for document in (load(fixture), {"status": "failed", "datasets": {"a": failed, "b": {"status": "ok"}}}):
        cut = yaml_loads(results_essentials(dump_yaml(document)))
        for short, entry in document["datasets"].items():
            metrics = {k: v for k, v in (entry.get("metrics") or {}).items() if k != "subsets"}
            assert cut["datasets"][short]["status"] == entry["status"]
            assert (cut["datasets"][short].get("metrics") or {}) == metrics
        assert cut["status"] == document["status"]
