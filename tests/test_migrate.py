"""bench-app migrate on task and suite files in the original system's format (written here): the dry run
of the migrated experiment plans the same engine arguments and AISBench settings per dataset."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import load, run_cli

from bench_app.config.resolvers import PROJECT_ROOT

YARN = '{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768}'


def _task(dataset, config, max_model_len=32768, rope_scaling=None, **aisbench):
    vllm = {
        "model_path": "Qwen/Qwen3-30B-A3B",
        "host": "localhost",
        "port": 8000,
        "tensor_parallel_size": 8,
        "quantization": "ascend",
        "max_model_len": max_model_len,
        "timeout": 1800,
    }
    if rope_scaling:
        vllm["rope_scaling"] = rope_scaling
    return {
        "task": {
            "name": f"qwen3_30b_w8a8_{dataset}",
            "model": "qwen3-30b-a3b",
            "precision": "w8a8",
            "dataset": dataset,
        },
        "vllm": vllm,
        "aisbench": {
            "dataset": config,
            "model": "vllm_api_general_chat",
            "mode": "all",
            "max_out_len": 32000,
            "max_num_workers": 16,
            "merge_ds": True,
            "dump_eval_details": True,
            "batch_size": 8,
            **aisbench,
        },
    }


@pytest.fixture
def original(tmp_path):
    """configs/tasks/*.yaml and configs/suites/*.yaml as the original system lays them out."""
    root = tmp_path / "configs"
    tasks = {
        "ceval": _task("ceval", "ceval_gen_0_shot_cot_chat_prompt"),
        "aime2024": _task("aime2024", "aime2024_gen_0_shot_chat_prompt"),
        "longbenchv2": _task("longbenchv2", "longbenchv2_gen", max_model_len=131072, rope_scaling=YARN),
    }
    for name, task in tasks.items():
        (root / "tasks").mkdir(parents=True, exist_ok=True)
        (root / "tasks" / f"{name}.yaml").write_text(yaml.safe_dump(task))
    suite = {
        "suite": {
            "name": "qwen3_30b_w8a8_acc",
            "description": "accuracy, w8a8",
            "type": "accuracy",
            "repeat": 3,
        },
        "tasks": [f"configs/tasks/{name}.yaml" for name in tasks],
        "output": {"work_dir": "outputs/qwen3_30b_w8a8"},
    }
    (root / "suites").mkdir()
    (root / "suites" / "w8a8.yaml").write_text(yaml.safe_dump(suite))
    return root, tasks


def test_a_migrated_suite_plans_what_its_tasks_say(original, tmp_path):
    root, tasks = original
    out = tmp_path / "myconf"
    done = run_cli([str(root), "--out", str(out)], cwd=tmp_path, module="bench_app.migrate")
    assert done.returncode == 0, done.stderr
    # every field without an equivalent is named with the reason
    assert (
        "UNMAPPED w8a8.yaml: suite.repeat: a sweep, not an experiment setting: add benchmark.repeats=3"
        in done.stdout
    )
    assert "UNMAPPED w8a8.yaml: output.work_dir" in done.stdout
    assert "mapped   ceval.yaml: vllm.timeout -> execution.server_start_timeout_s" in done.stdout
    assert "aisbench.merge_ds -> aisbench.extra_args.merge_ds" in done.stdout
    assert (out / "experiment" / "qwen3_30b_w8a8_acc.yaml").is_file()

    run = run_cli(
        ["--config-dir", str(out), "+experiment=qwen3_30b_w8a8_acc", "execution.dry_run=true",
         "execution.context_check=off", "benchmark.name=migrated"],
        cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    configs = tmp_path / "outputs" / "migrated" / "configs"
    assert load(configs / "metadata.yaml")["run"]["status"] == "dry_run"
    for name, task in tasks.items():
        planned = load(configs / "per_dataset" / f"qwen3_30b_w8a8_acc__{name}.yaml")
        source_vllm = {k: v for k, v in task["vllm"].items() if k != "timeout"}
        engine = {k: planned["vllm"][k] for k in source_vllm}
        if "rope_scaling" in source_vllm:
            assert json.loads(source_vllm.pop("rope_scaling")) == json.loads(engine.pop("rope_scaling"))
        assert engine == source_vllm
        assert planned["dataset"]["name"] == task["aisbench"]["dataset"]
        assert planned["model_config"]["max_out_len"] == 32000
        settings = planned["aisbench"]
        for key in ("model", "mode", "max_num_workers", "dump_eval_details", "batch_size"):
            assert settings[key] == task["aisbench"][key], key
        assert settings["extra_args"] == {"merge_ds": True}
    snapshot = load(configs / "config_snapshot.yaml")
    assert snapshot["execution"]["server_start_timeout_s"] == 1800


def test_migration_never_overwrites_and_names_bad_input(original, tmp_path):
    root, _ = original
    out = tmp_path / "myconf"
    assert run_cli([str(root), "--out", str(out)], cwd=tmp_path, module="bench_app.migrate").returncode == 0
    again = run_cli([str(root), "--out", str(out)], cwd=tmp_path, module="bench_app.migrate")
    assert again.returncode == 2 and "already exists; it is never overwritten" in again.stderr
    missing = run_cli([str(tmp_path / "nope"), "--out", str(out)], cwd=tmp_path, module="bench_app.migrate")
    assert missing.returncode == 2 and "source folder" in missing.stderr and "Traceback" not in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = run_cli([str(empty)], cwd=tmp_path, module="bench_app.migrate")
    assert none.returncode == 2 and "no suite file" in none.stderr


FIXTURE = Path(__file__).parent / "fixtures" / "original_system"


def _migrated_fixture(tmp_path):
    out = tmp_path / "migrated"
    done = run_cli([str(FIXTURE), "--out", str(out)], cwd=tmp_path, module="bench_app.migrate")
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def _tiny(out, *extra):
    """The migrated suite's custom dataset on the tiny model here (the tasks name /models/...)."""
    short = "tiny_custom_acc__gsm8k_test_only"
    return [
        "--config-dir",
        str(out),
        "+experiment=tiny_custom_acc",
        f"dataset=[{short}]",
        f"datasets.{short}.data_path={FIXTURE / 'data' / 'gsm8k_test_only'}",
        "engine=vllm_cpu",
        f"vllm.model_path={PROJECT_ROOT / 'models' / 'SmolLM2-135M-Instruct'}",
        "vllm.port=0",
        *extra,
    ]


def test_migration_carries_the_patch_folder_and_reports_what_no_one_defines(tmp_path):
    out, printed = _migrated_fixture(tmp_path)
    for relative in (
        "patch/datasets/gsm8k_test_only_gen_0_shot_chat_prompt.py",
        "patch/loaders/bench_loaders.py",
    ):
        assert (out / "aisbench" / relative).read_text() == (FIXTURE / relative).read_text()
    dataset = load(out / "dataset" / "tiny_custom_acc__gsm8k_test_only.yaml")
    assert dataset["config_file"] == "aisbench/patch/datasets/gsm8k_test_only_gen_0_shot_chat_prompt.py"
    assert "name" not in dataset
    experiment = load(out / "experiment" / "tiny_custom_acc.yaml")
    assert experiment["evaluator"]["python_path"] == [str((out / "aisbench" / "patch" / "loaders").resolve())]
    unmapped = [line for line in printed.splitlines() if line.startswith("UNMAPPED")]
    assert len(unmapped) == 1 and "'gpqa_diamond_gen_0_shot_cot_chat_prompt'" in unmapped[0]
    assert "closest stock configs: gpqa_gen_0_shot_cot_chat_prompt" in unmapped[0]
    assert f"Edit line 14 of {FIXTURE / 'configs' / 'tasks' / 'gpqa_diamond.yaml'}" in unmapped[0]
    # The experiment dry-runs up to what UNMAPPED said, and without that dataset it plans cleanly.
    whole = run_cli(
        [
            "--config-dir",
            str(out),
            "+experiment=tiny_custom_acc",
            "benchmark.name=w",
            "execution.dry_run=true",
        ],
        tmp_path,
    )
    assert whole.returncode == 2 and "gpqa_diamond_gen_0_shot_cot_chat_prompt" in whole.stdout + whole.stderr
    planned = run_cli(_tiny(out, "benchmark.name=p", "execution.dry_run=true"), tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "tiny_custom_acc__gsm8k_test_only       4" in planned.stdout  # 4 prompts, through the loader fix


@pytest.mark.e2e
def test_the_migrated_custom_config_and_loader_run_for_real(tmp_path):
    out, _ = _migrated_fixture(tmp_path)
    done = run_cli(_tiny(out, "benchmark.name=real"), tmp_path, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    result = load(tmp_path / "outputs/real/results.yaml")["datasets"]["tiny_custom_acc__gsm8k_test_only"]
    assert result["status"] == "ok" and result["samples"] == 4
