"""Your AISBench, your prompts: a dataset's own AISBench config file and your own evaluator code, from a
user config folder, with no edit to the installed AISBench; checked at planning, kept with the run,
replayed with --frozen after the folder is gone."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import PYTHON, load, run_cli

PATCH = Path(__file__).parent / "fixtures" / "original_system"
DRY = ["execution.dry_run=true"]


@pytest.fixture
def user_folder(tmp_path):
    """my_conf/: a dataset file naming its own AISBench config (relative), the config and its sibling in
    my_conf/aisbench/, the loader fix in my_code/, data in my_data/."""
    conf = tmp_path / "my_conf"
    (conf / "dataset").mkdir(parents=True)
    shutil.copytree(PATCH / "patch" / "datasets", conf / "aisbench")
    shutil.copytree(PATCH / "patch" / "loaders", tmp_path / "my_code")
    shutil.copytree(PATCH / "data" / "gsm8k_test_only", tmp_path / "my_data")
    dataset = {
        "config_file": "aisbench/gsm8k_test_only_gen_0_shot_chat_prompt.py",
        "data_path": str(tmp_path / "my_data"),
        "model_config": {"max_out_len": 48, "generation_kwargs": {"temperature": 0.0, "seed": 42}},
    }
    (conf / "dataset" / "mine.yaml").write_text("# @package datasets.mine\n" + yaml.safe_dump(dataset))
    return tmp_path


def args(folder, *extra):
    return [
        "--config-dir",
        str(folder / "my_conf"),
        "dataset=mine",
        f"evaluator.python_path=[{folder / 'my_code'}]",
        *extra,
    ]


def test_a_config_that_cannot_load_is_refused_with_its_file_and_line(user_folder):
    config = user_folder / "my_conf" / "aisbench" / "gsm8k_test_only_variant.py"
    # Without the loader's folder on the import path: the import in the variant fails.
    missing = run_cli(
        ["--config-dir", str(user_folder / "my_conf"), "dataset=mine", "benchmark.name=a", *DRY], user_folder
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert (
        f"{config}, line 4" in missing.stdout + missing.stderr
        and "bench_loaders" in missing.stdout + missing.stderr
    )
    text = config.read_text()
    config.write_text(
        text.replace("gsm8k_test_only_datasets = [", "gsm8k_test_only_datasets = ["[:-1] + "(", 1)
    )
    broken = run_cli(args(user_folder, "benchmark.name=b", *DRY), user_folder)
    assert broken.returncode == 2 and "SyntaxError" in broken.stdout + broken.stderr
    config.write_text(text)
    (config.parent / "gsm8k_test_only_gen_0_shot_chat_prompt.py").write_text("questions = []\n")
    empty = run_cli(args(user_folder, "benchmark.name=c", *DRY), user_folder)
    assert empty.returncode == 2 and "defines no `*_datasets` list" in empty.stdout + empty.stderr
    assert not (user_folder / "outputs").exists() or not any((user_folder / "outputs").iterdir())


def test_a_module_that_shadows_the_evaluators_own_needs_override_modules(user_folder):
    # a package the evaluator's environment has (AISBench needs none)
    (user_folder / "my_code" / "pip").mkdir()
    (user_folder / "my_code" / "pip" / "__init__.py").write_text("")
    refused = run_cli(args(user_folder, "benchmark.name=s", *DRY), user_folder)
    assert refused.returncode == 2, refused.stdout
    assert "shadows module(s) of the evaluator's environment: pip" in refused.stdout
    assert "'++evaluator.override_modules={pip: " in refused.stdout  # the line to write
    named = "++evaluator.override_modules={pip:my_code/pip/__init__.py}"
    allowed = run_cli(args(user_folder, "benchmark.name=t", named, *DRY), user_folder)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "overrides: pip <- " in allowed.stdout and "(evaluator.override_modules)" in allowed.stdout
    metadata = load(user_folder / "outputs/t/configs/metadata.yaml")
    recorded = metadata["python_path"][0]
    assert recorded["overrides"] == ["pip"] and "bench_loaders.py" in recorded["files"]
    kept = metadata["override_modules"]["pip"]
    assert kept["copy"] == "override_modules/pip.py" and len(kept["sha256"]) == 64
    # a file that is not there, and a module the environment does not have, are named
    for bad, said in (
        ("{pip:my_code/nope.py}", "my_code/nope.py does not exist"),
        ("{no_such_module.x:my_code/pip/__init__.py}", "no_such_module.x is not a module of the evaluator"),
    ):
        refused = run_cli(
            args(user_folder, "benchmark.name=u", f"++evaluator.override_modules={bad}", *DRY), user_folder
        )
        assert refused.returncode == 2 and said in refused.stdout + refused.stderr, refused.stdout


def test_a_custom_config_and_loader_run_for_real_and_replay_frozen_without_the_folder(
    user_folder, vllm_server
):
    real = args(user_folder, "benchmark.name=custom", *vllm_server.args())
    done = run_cli(real, user_folder, env=vllm_server.env(), timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    run = user_folder / "outputs" / "custom"
    result = load(run / "results.yaml")["datasets"]["mine"]
    assert result["status"] == "ok" and result["name"] == "gsm8k_test_only_gen_0_shot_chat_prompt"
    per_dataset = load(run / "configs/per_dataset/mine.yaml")
    assert (
        per_dataset["config_file"]["copy"] == "dataset_configs/mine/gsm8k_test_only_gen_0_shot_chat_prompt.py"
    )
    assert (run / "configs" / per_dataset["config_file"]["copy"]).is_file()
    assert (run / "configs/python_path/0_my_code/bench_loaders.py").is_file()
    # The variant's own prompt (no chain of thought) is what was sent.
    assert "Answer with the number only." in (run / "mine/samples.jsonl").read_text()
    shutil.rmtree(user_folder / "my_conf")
    shutil.rmtree(user_folder / "my_code")
    frozen = subprocess.run(
        [str(run / "configs/reproduce.sh"), "--frozen", "benchmark.name=frozen"],
        cwd=user_folder,
        env={**__import__("os").environ, "BENCH_APP_PYTHON": PYTHON, **vllm_server.env()},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert frozen.returncode == 0, (frozen.stdout + frozen.stderr)[-4000:]
    again = load(user_folder / "outputs/frozen/results.yaml")["datasets"]["mine"]
    assert again["status"] == "ok" and again["metrics"] == result["metrics"]
    compared = run_cli(["compare", str(run), str(user_folder / "outputs/frozen")], user_folder)
    assert "== scores" not in compared.stdout, compared.stdout
