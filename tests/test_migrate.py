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
        "UNMAPPED w8a8.yaml: suite.repeat: samples per question: "
        "add benchmark.repeats=3 (every repeat in one run)" in done.stdout
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


GSM8K_SHORTS = ("tiny_custom_acc__gsm8k_test_only", "tiny_custom_acc__gsm8k_first_number")


def _tiny(out, *extra, engine=("engine=vllm_cpu", "vllm.port=0")):
    """The migrated suite's GSM8K datasets on the tiny model here (the tasks name /models/...), reading
    the fixture's folder that holds only test.jsonl."""
    data = FIXTURE / "data" / "gsm8k_test_only"
    return [
        "--config-dir",
        str(out),
        "+experiment=tiny_custom_acc",
        f"dataset=[{','.join(GSM8K_SHORTS)}]",
        *(f"datasets.{short}.data_path={data}" for short in GSM8K_SHORTS),
        *engine,
        f"vllm.model_path={PROJECT_ROOT / 'models' / 'SmolLM2-135M-Instruct'}",
        *extra,
    ]


def test_migration_carries_the_patch_folder_and_reports_what_no_one_defines(tmp_path):
    out, printed = _migrated_fixture(tmp_path)
    for relative in (
        "patch/datasets/gsm8k_test_only_gen_0_shot_chat_prompt.py",
        "patch/loaders/bench_loaders.py",
        "patch/benchmark/datasets/gsm8k.py",
    ):
        assert (out / "aisbench" / relative).read_text() == (FIXTURE / relative).read_text()
    dataset = load(out / "dataset" / "tiny_custom_acc__gsm8k_test_only.yaml")
    assert dataset["config_file"] == "aisbench/patch/datasets/gsm8k_test_only_gen_0_shot_chat_prompt.py"
    assert "name" not in dataset
    experiment = load(out / "experiment" / "tiny_custom_acc.yaml")
    assert experiment["evaluator"]["python_path"] == [str((out / "aisbench" / "patch" / "loaders").resolve())]
    # The copy of AISBench's own datasets/gsm8k.py (relative imports) replaces that module.
    mirror = (out / "aisbench" / "patch" / "benchmark" / "datasets" / "gsm8k.py").resolve()
    assert experiment["evaluator"]["override_modules"] == {"ais_bench.benchmark.datasets.gsm8k": str(mirror)}
    assert "patch/benchmark/datasets/gsm8k.py: patch module -> evaluator.override_modules" in printed
    # The import of the module AISBench moved is rewritten in the copy, said so; the source is untouched.
    moved = "ais_bench.benchmark.utils.text_postprocessors"
    config = "patch/datasets/gsm8k_first_number_gen_0_shot_chat_prompt.py"
    assert f"from {moved} import" in (FIXTURE / config).read_text()
    mended = (out / "aisbench" / config).read_text()
    assert f"from {moved} import" not in mended
    assert (
        "from ais_bench.benchmark.utils.postprocess.text_postprocessors import first_number_postprocess"
        in mended
    )
    said = [line for line in printed.splitlines() if line.startswith("mended")]
    assert len(said) == 1 and f"{out / 'aisbench' / config} line 5: from {moved} import" in said[0], printed
    assert "loaded   2 of 2 carried dataset configs" in printed and "BROKEN" not in printed
    unmapped = [line for line in printed.splitlines() if line.startswith("UNMAPPED")]
    assert len(unmapped) == 1 and "'gpqa_diamond_gen_0_shot_cot_chat_prompt'" in unmapped[0]
    assert "stock configs that read the same data: gpqa_gen_0_shot_cot_chat_prompt" in unmapped[0]
    gpqa = out / "dataset" / "tiny_custom_acc__gpqa_diamond.yaml"
    assert f"Edit `name:` in {gpqa}" in unmapped[0]
    # The experiment dry-runs up to what UNMAPPED said.
    whole = ["--config-dir", str(out), "+experiment=tiny_custom_acc", "execution.dry_run=true"]
    refused = run_cli([*whole, "benchmark.name=w"], tmp_path)
    assert (
        refused.returncode == 2
        and "gpqa_diamond_gen_0_shot_cot_chat_prompt" in refused.stdout + refused.stderr
    )
    # Both GSM8K datasets read the folder that holds only test.jsonl: through the loader on python_path,
    # and through the carried gsm8k.py in place of AISBench's (whose loader wants train.jsonl too).
    planned = run_cli(_tiny(out, "benchmark.name=p", "execution.dry_run=true"), tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    for short in GSM8K_SHORTS:
        assert f"{short}       4" in planned.stdout, planned.stdout  # 4 prompts
    stock = run_cli(
        _tiny(out, "benchmark.name=s", "execution.dry_run=true", "~evaluator.override_modules"), tmp_path
    )
    assert "tiny_custom_acc__gsm8k_first_number not checked: FileNotFoundError" in stock.stdout, stock.stdout
    assert "train.jsonl" in stock.stdout
    # With the one edit migrate printed, every dataset of the experiment plans.
    gpqa.write_text(
        gpqa.read_text().replace("gpqa_diamond_gen_0_shot_cot_chat_prompt", "gpqa_gen_0_shot_cot_chat_prompt")
    )
    edited = run_cli([*whole, "benchmark.name=e"], tmp_path)
    assert edited.returncode == 0, edited.stdout + edited.stderr


def test_what_migrate_cannot_mend_is_named_with_file_line_and_error(tmp_path):
    from bench_app.cli.migrate_check import prove

    config = tmp_path / "aisbench" / "mine_gen.py"
    config.parent.mkdir()
    config.write_text(
        "from ais_bench.benchmark.no_such_module import thing\n\n"
        "mine_datasets = [dict(abbr='m', type=thing)]\n"
    )
    proof = prove([config], tmp_path / "aisbench", [], {})
    assert proof.loaded == [] and proof.mended == [] and len(proof.broken) == 1
    assert proof.broken[0][0] == str(config)
    assert proof.broken[0][1].startswith(f"{config}, line 1: ModuleNotFoundError")
    assert "ais_bench.benchmark.no_such_module" in proof.broken[0][1]


def test_where_aisbench_keeps_what_a_carried_file_names():
    from bench_app.evaluators.aisbench import catalog
    from bench_app.evaluators.aisbench.relocate import (
        mirrored_module,
        package_root,
        same_data_configs,
    )

    root = package_root([str(PROJECT_ROOT / ".venv" / "bin" / "ais_bench")])
    assert root is not None
    assert mirrored_module(Path("patch/datasets/gsm8k.py"), root) == "ais_bench.benchmark.datasets.gsm8k"
    assert mirrored_module(Path("x/ais_bench/benchmark/datasets/gsm8k.py"), root) == (
        "ais_bench.benchmark.datasets.gsm8k"
    )
    assert mirrored_module(Path("patch/loaders/bench_loaders.py"), root) is None
    assert mirrored_module(Path("gsm8k.py"), root) is None  # a folder and the file at least
    # a stock dataset config is named by tasks, never replaced
    assert mirrored_module(Path("configs/datasets/gsm8k/gsm8k_gen.py"), root) is None
    assert same_data_configs("gpqa_diamond_gen_0_shot_cot_chat_prompt", catalog.stock_configs())[0] == (
        "gpqa_gen_0_shot_cot_chat_prompt"
    )
    assert same_data_configs("zzz_unknown", catalog.stock_configs()) == []


def test_a_name_aisbench_defines_elsewhere_gets_the_line_to_write(tmp_path):
    from bench_app.evaluators.aisbench.relocate import mend_for, package_root

    root = package_root([str(PROJECT_ROOT / ".venv" / "bin" / "ais_bench")])
    config = tmp_path / "c.py"
    config.write_text(
        "from ais_bench.benchmark.datasets import first_number_postprocess\n"
        "from ais_bench.benchmark.datasets import first_number_postprocess, gsm8k_postprocess\n"
    )
    lost = "Failed to import first_number_postprocess from ais_bench.benchmark.datasets in {}, line {}"
    alone = mend_for(lost.format(config, 1), config, 1, root)
    assert alone.applies and alone.new == (
        "from ais_bench.benchmark.utils.postprocess.text_postprocessors import first_number_postprocess"
    )
    shared = mend_for(lost.format(config, 2), config, 2, root)
    assert not shared.applies  # the line imports more than the move covers: said, not written
    nowhere = "ModuleNotFoundError: No module named 'ais_bench.benchmark.nothing_like_it'"
    config.write_text("from ais_bench.benchmark.nothing_like_it import x\n")
    assert mend_for(nowhere, config, 1, root) is None


def test_the_migrated_custom_configs_loader_and_module_fix_run_for_real(tmp_path, vllm_server):
    out, _ = _migrated_fixture(tmp_path)
    done = run_cli(
        _tiny(out, "benchmark.name=real", engine=vllm_server.args()),
        tmp_path,
        env=vllm_server.env(),
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    results = load(tmp_path / "outputs/real/results.yaml")["datasets"]
    for short in GSM8K_SHORTS:  # the mended import and the carried gsm8k.py, in AISBench's own run
        assert results[short]["status"] == "ok" and results[short]["samples"] == 4, results[short]
    kept = load(tmp_path / "outputs/real/configs/metadata.yaml")["override_modules"]
    assert (
        kept["ais_bench.benchmark.datasets.gsm8k"]["copy"]
        == "override_modules/ais_bench.benchmark.datasets.gsm8k.py"
    )
