"""The run folder's one owner (bench_app.records.folder): a folder written before results.yaml had a
schema_version (kept as a fixture, made by the previous release's `make run`) still reads everywhere; a
newer schema is refused with a clear message; what is written now carries the version."""

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import assert_documents_typed, run_cli

from bench_app.common.errors import UserError
from bench_app.records.folder import RESULTS_SCHEMA_VERSION, RunFolder
from bench_app.reports.html import report_data
from bench_app.sweeps.jobs import read_job

FIXTURE = Path(__file__).parent / "fixtures" / "run_before_schema_version"


@pytest.fixture
def old_run(tmp_path):
    copy = tmp_path / "outputs" / "old"
    shutil.copytree(FIXTURE, copy)
    return copy


def test_a_folder_from_before_the_schema_version_still_reads(old_run, tmp_path):
    folder = RunFolder(old_run)
    assert "schema_version" not in yaml.safe_load(folder.results_file.read_text())
    results = folder.read_results()
    assert results.status == "completed"
    shorts = {"sample_ceval", "sample_mmlu", "sample_gsm8k", "sample_longbenchv2"}
    assert {short: e.status for short, e in results.datasets.items()} == dict.fromkeys(shorts, "ok")
    assert results.datasets["sample_gsm8k"].metrics["accuracy"] == 25.0
    assert results.servers[0].max_model_len == 2048
    assert folder.read_metadata().run.status == "completed"
    assert assert_documents_typed(old_run)  # the previous release's documents: every field declared
    assert set(folder.read_per_dataset()) == shorts
    assert len(folder.read_samples("sample_gsm8k")) == 4 and folder.read_samples("sample_mmlu") is None
    data = report_data(old_run)
    assert data["run"]["status"] == "completed" and len(data["samples"]) == 4
    same = run_cli([str(old_run), str(old_run)], tmp_path, module="bench_app.compare")
    assert same.returncode == 0 and "identical" in same.stdout
    written = run_cli(["report", str(old_run)], tmp_path)
    assert written.returncode == 0 and folder.report_file.is_file()


def test_a_newer_schema_is_refused_with_a_clear_message(old_run, tmp_path):
    folder = RunFolder(old_run)
    document = yaml.safe_load(folder.results_file.read_text())
    folder.results_file.write_text(yaml.safe_dump({"schema_version": RESULTS_SCHEMA_VERSION + 1, **document}))
    with pytest.raises(UserError, match="written by a newer bench_app"):
        folder.read_results()
    for args in (["compare", str(old_run), str(FIXTURE)], ["report", str(old_run)]):
        refused = run_cli(args, tmp_path)
        assert refused.returncode == 2 and "written by a newer bench_app" in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    # A sweep summary names the job instead of failing on it.
    (old_run / ".hydra").mkdir(exist_ok=True)
    assert "newer bench_app" in (read_job(old_run).error or "")


def test_results_are_written_with_the_schema_version(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.write_results({"status": "completed", "datasets": {}})
    assert yaml.safe_load(folder.results_file.read_text())["schema_version"] == RESULTS_SCHEMA_VERSION
    assert folder.read_results().status == "completed"


def _runnable_here(run: Path) -> None:
    """The fixture's paths are those of the checkout that made it: point them at this one."""
    from bench_app.config.resolvers import PROJECT_ROOT

    for path in [run / "configs" / "config_snapshot.yaml", *(run / "configs" / "per_dataset").glob("*.yaml")]:
        text = path.read_text().replace("/tmp/wt_old", str(PROJECT_ROOT))
        path.write_text(text)


def test_rescore_applies_todays_postprocessors_to_a_run_made_before(old_run, tmp_path):
    """A reasoning model's stored answers, scored again with no generation: the model config's
    postprocessor now removes the thinking, so a draft inside it is no longer credited."""
    import json

    _runnable_here(old_run)
    (predictions,) = old_run.glob("sample_gsm8k/2*/predictions/bench_app/gsm8k.jsonl")
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    records[0]["prediction"] = "<think>3 + 4 = 7, so answer:7</think>I am not sure."  # gold 7
    records[1]["prediction"] = "<think>maybe answer:2</think>6 eggs x 5 boxes.\nanswer:30"  # gold 30
    predictions.write_text("".join(json.dumps(r) + "\n" for r in records))
    done = run_cli(["rescore", str(old_run), "sample_gsm8k"], tmp_path, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    samples = {r.id: r for r in RunFolder(old_run).read_samples("sample_gsm8k")}
    assert (samples[0].correct, samples[1].correct) == (False, True)
    assert RunFolder(old_run).read_results().datasets["sample_gsm8k"].metrics["accuracy"] == 25.0
    assert assert_documents_typed(old_run)  # what rescore added (rescored_at, metadata rescored) is typed
    task = old_run / "sample_gsm8k" / "aisbench_task.py"
    assert "vllm_api_general_chat import models as _stock_models" in task.read_text()
    (kept,) = task.parent.glob("aisbench_task_before_rescore_*.py")
    assert "VLLMCustomAPIChat" in kept.read_text()
