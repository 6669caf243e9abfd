"""The command line on dry runs: errors, the configs/ layout, reproduce.sh, secrets, compare, resume."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, assert_documents_typed, load, run_cli

from bench_app.config.resolvers import PROJECT_ROOT

DRY = ["execution.dry_run=true"]


@pytest.mark.parametrize(
    "args,expected",
    [
        (["vllm.max_model_lenn=4096"], "max_model_lenn"),
        (["vllm.tensor_parallel_size=two"], "two"),
        (
            ["dataset=[sample_ceval,longbench]"],
            "Closest: longbenchv2, ",
        ),
        (["model=qwen3"], "Valid model options: qwen3_30b, tiny"),
        (["vllm.max_model_len=???"], "vllm.max_model_len"),
        (['vllm.rope_scaling=\'{"rope_type":"yarn",\''], "not valid JSON"),
        (["aisbench.mode=fast"], "Valid modes: all, infer, eval, perf"),
        (["dataset=[]"], "Choose at least one, e.g. 'dataset=[ceval,longbenchv2]'."),  # printed as written
    ],
)
def test_user_errors_are_one_paragraph_without_traceback_and_create_nothing(workdir, args, expected):
    done = run_cli(["benchmark.name=bad", *DRY, *args], workdir)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert expected in output
    assert "Traceback" not in output
    assert not (workdir / "outputs" / "bad").exists()


def test_dry_run_writes_the_documented_layout(workdir):
    done = run_cli(
        ["model=qwen3_30b", "dataset=[ceval,longbenchv2]", "engine=vllm", "benchmark.name=doc", *DRY], workdir
    )
    assert done.returncode == 0, done.stderr
    assert "2 engine group(s)" in done.stdout and "--max-model-len 131072" in done.stdout
    configs = workdir / "outputs" / "doc" / "configs"
    for name in (
        "config_original.yaml",
        "config_snapshot.yaml",
        "metadata.yaml",
        "reproduce.sh",
        "per_dataset/ceval.yaml",
        "per_dataset/longbenchv2.yaml",
    ):
        assert (configs / name).is_file(), name
    assert os.stat(configs / "reproduce.sh").st_mode & stat.S_IXUSR
    assert_documents_typed(configs.parent)  # metadata.yaml and per_dataset/ of a dry run: every field typed
    snapshot = load(configs / "config_snapshot.yaml")
    assert snapshot["benchmark"]["name"] == "doc" and snapshot["benchmark"]["timestamp"]
    assert snapshot["vllm"]["max_model_len"] == 32768 and snapshot["vllm"]["tensor_parallel_size"] == 2
    assert snapshot["aisbench"]["datasets"] == ["ceval_gen_0_shot_cot_chat_prompt", "longbenchv2_gen"]
    assert snapshot["datasets"]["longbenchv2_gen"]["vllm_config_override"]["max_model_len"] == 131072
    assert "vllm_config_override" not in snapshot["datasets"]["ceval_gen_0_shot_cot_chat_prompt"]
    long, ceval = load(configs / "per_dataset/longbenchv2.yaml"), load(configs / "per_dataset/ceval.yaml")
    assert not {"server", "result"} & set(ceval), (
        "a planned dataset has no server or result yet, not even null"
    )
    assert (
        long["vllm"]["max_model_len"] == 131072
        and long["vllm_config_override_applied"]["max_model_len"] == 131072
    )
    assert (
        long["vllm"]["rope_scaling"]["factor"] == 4.0
        and long["vllm_config_override_applied"]["rope_scaling"]["rope_type"] == "yarn"
    )
    assert ceval["vllm"]["max_model_len"] == 32768 and ceval["vllm"]["rope_scaling"] is None
    assert "vllm_config_override_applied" not in ceval
    assert long["model_config"] == {"max_out_len": 256, "generation_kwargs": {"temperature": 0.0, "seed": 42}}
    original = load(configs / "config_original.yaml")
    assert original["model_config"].endswith("conf/model/qwen3_30b.yaml")
    bundle = PROJECT_ROOT / "conf/override/yarn_long_context.yaml"
    assert original["files"]["overrides"] == {"datasets.longbenchv2.vllm_config_override": str(bundle)}
    assert original["overrides"][:2] == ["model=qwen3_30b", "dataset=[ceval,longbenchv2]"]
    metadata = load(configs / "metadata.yaml")
    assert set(metadata) >= {
        "runtime",
        "versions",
        "command",
        "git",
        "accelerator",
        "environment_variables",
        "run",
    }
    assert metadata["versions"]["ais_bench"] == "3.1.20260630"
    assert metadata["run"]["status"] == "dry_run"
    assert metadata["git"]["commit"] is None or len(metadata["git"]["commit"]) == 40


def test_existing_run_folder_is_never_overwritten(workdir):
    assert run_cli(["benchmark.name=once", *DRY], workdir).returncode == 0
    before = (workdir / "outputs/once/configs/config_snapshot.yaml").read_text()
    again = run_cli(["benchmark.name=once", *DRY, "vllm.max_model_len=1024"], workdir)
    assert again.returncode != 0 and "never overwritten" in again.stderr + again.stdout
    assert (workdir / "outputs/once/configs/config_snapshot.yaml").read_text() == before


def test_generated_run_names_take_the_next_free_suffix(workdir, tmp_path):
    """Two runs (or replays) started within one second each get their own folder: name, name_2, ..."""
    from bench_app.config.resolvers import free_run_name

    (tmp_path / "outputs" / "r").mkdir(parents=True)
    (tmp_path / "outputs" / "r_2").mkdir()
    assert free_run_name("r", tmp_path / "outputs") == "r_3"
    assert free_run_name("r", tmp_path / "outputs") == "r_3"  # chosen once per process
    # The default name, twice in the same second: a fixed `date` makes reproduce.sh's names collide.
    assert run_cli(["benchmark.name=base", *DRY], workdir).returncode == 0
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "date").write_text("#!/bin/sh\necho 20261201_120000\n")
    (fake_bin / "date").chmod(0o755)
    env = dict(os.environ, BENCH_APP_PYTHON=PYTHON, PATH=f"{fake_bin}:{os.environ['PATH']}")
    script = workdir / "outputs/base/configs/reproduce.sh"
    for args in ([*DRY], ["--frozen", *DRY]):
        done = subprocess.run([str(script), *args], cwd=workdir, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (workdir / "outputs").iterdir() if p.name.startswith("base_repro"))
    assert names == ["base_repro_20261201_120000", "base_repro_20261201_120000_2"]


def test_reproduce_quotes_hostile_values_and_appends_overrides(workdir):
    hostile = 'a b $(touch PWNED1) `touch PWNED2` "q" ; touch PWNED3'
    done = run_cli(["benchmark.name=orig", *DRY, f"+aisbench.generation_kwargs.note='{hostile}'"], workdir)
    assert done.returncode == 0, done.stderr
    script = workdir / "outputs/orig/configs/reproduce.sh"
    env = dict(os.environ, BENCH_APP_PYTHON=PYTHON)
    # From any directory (here the run's own): the new run lands in ./outputs of that directory.
    elsewhere = subprocess.run(
        [str(script), "benchmark.name=here", *DRY],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert load(workdir / "outputs/here/configs/metadata.yaml")["run"]["status"] == "dry_run"
    rerun = subprocess.run(
        [str(script), "benchmark.name=again", "vllm.max_num_seqs=128"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert rerun.returncode == 0, rerun.stderr
        assert not list(PROJECT_ROOT.glob("PWNED*")) and not list(workdir.glob("PWNED*"))
        replayed = load(PROJECT_ROOT / "outputs/again/configs/per_dataset/sample_ceval.yaml")
        assert replayed["model_config"]["generation_kwargs"]["note"] == hostile
        assert replayed["vllm"]["max_num_seqs"] == 128
        assert (
            load(workdir / "outputs/orig/configs/per_dataset/sample_ceval.yaml")["vllm"]["max_num_seqs"]
            is None
        )
    finally:
        shutil.rmtree(PROJECT_ROOT / "outputs/again", ignore_errors=True)


def test_planted_secrets_never_reach_outputs(workdir):
    secret_env, secret_cfg = "hf_planted_env_secret_9f8e7d", "sk-planted-config-secret-1a2b3c"
    done = run_cli(
        ["benchmark.name=sec", *DRY, f"+evaluator.env.MY_API_KEY={secret_cfg}"],
        workdir,
        env={"HF_TOKEN": secret_env, "VLLM_API_KEY": secret_env},
    )
    assert done.returncode == 0, done.stderr
    run_dir = workdir / "outputs/sec"
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    for path in files:
        text = path.read_text(errors="replace")
        assert secret_env not in text and secret_cfg not in text, path
    assert "HF_TOKEN" in (run_dir / "configs/metadata.yaml").read_text()  # recorded, value removed


def test_frozen_replay_survives_conf_edits(workdir):
    project = workdir / "project"
    shutil.copytree(
        PROJECT_ROOT / "bench_app", project / "bench_app", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf")
    env = {"PYTHONPATH": str(project), "BENCH_APP_PYTHON": PYTHON}
    assert run_cli(["benchmark.name=base", *DRY], project, env=env).returncode == 0
    # Edit and delete conf files the original run used.
    tiny = project / "conf/model/tiny.yaml"
    tiny.write_text(tiny.read_text().replace("max_model_len: 2048", "max_model_len: 1024"))
    (project / "conf/dataset/sample_gsm8k.yaml").unlink()
    script = project / "outputs/base/configs/reproduce.sh"
    frozen = subprocess.run(
        [str(script), "--frozen", "benchmark.name=frozen"],
        cwd=project,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert frozen.returncode == 0, frozen.stdout + frozen.stderr
    compare = subprocess.run(
        [PYTHON, "-m", "bench_app.compare", "outputs/base", "outputs/frozen"],
        cwd=project,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
    )
    assert compare.returncode == 0, compare.stdout

    assert load(project / "outputs/frozen/configs/config_original.yaml")["frozen_from"].endswith(
        "config_snapshot.yaml"
    )
    # The non-frozen reproduction reads conf/ and so sees the edit (and the missing file).
    plain = subprocess.run(
        [str(script), "benchmark.name=plain"],
        cwd=project,
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plain.returncode != 0 and "sample_gsm8k" in plain.stdout + plain.stderr


def test_compare_reports_differences_and_bad_input(workdir):
    assert run_cli(["benchmark.name=a", *DRY], workdir).returncode == 0
    # 1024 (2048 with YaRN) is too small for the long-context sample: warn, so that the plan is written.
    smaller = ["vllm.max_model_len=1024", "execution.context_check=warn"]
    assert run_cli(["benchmark.name=b", *DRY, *smaller], workdir).returncode == 0
    same = run_cli(["outputs/a", "outputs/a"], workdir, module="bench_app.compare")
    assert same.returncode == 0 and "identical" in same.stdout
    diff = run_cli(["outputs/a", "outputs/b"], workdir, module="bench_app.compare")
    assert diff.returncode == 1
    assert (
        "vllm.max_model_len: 2048 -> 1024" in diff.stdout and "per_dataset/sample_ceval.yaml" in diff.stdout
    )
    files = run_cli(
        [
            "outputs/a/configs/per_dataset/sample_ceval.yaml",
            "outputs/a/configs/per_dataset/sample_longbenchv2.yaml",
        ],
        workdir,
        module="bench_app.compare",
    )
    assert files.returncode == 1 and "vllm.max_model_len: 2048 -> 4096" in files.stdout
    bad = run_cli(["outputs/a", str(workdir)], workdir, module="bench_app.compare")
    assert bad.returncode == 2 and "not a bench_app run folder" in bad.stderr


def test_resume_refuses_a_changed_configuration(workdir):
    assert run_cli(["benchmark.name=r", *DRY], workdir).returncode == 0
    refused = run_cli(["benchmark.name=r", "resume=true", *DRY, "vllm.max_model_len=1024"], workdir)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "resume refused" in output and "sample_ceval" in output and "Traceback" not in output


def test_frozen_replay_needs_no_conf_and_works_from_any_directory(workdir):
    project = workdir / "project"
    shutil.copytree(
        PROJECT_ROOT / "bench_app", project / "bench_app", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf")
    env = dict(os.environ, PYTHONPATH=str(project), BENCH_APP_PYTHON=PYTHON)
    assert run_cli(["benchmark.name=base", *DRY], project, env=env).returncode == 0
    shutil.rmtree(project / "conf")  # the configuration is gone entirely
    script = project / "outputs/base/configs/reproduce.sh"
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    plain = subprocess.run([str(script)], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1 and "--frozen" in plain.stderr and "Traceback" not in plain.stderr
    frozen = subprocess.run(
        [str(script), "--frozen", "benchmark.name=frozen"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert frozen.returncode == 0, frozen.stdout + frozen.stderr
    compare = subprocess.run(
        [PYTHON, "-m", "bench_app.compare", str(project / "outputs/base"), "outputs/frozen"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert compare.returncode == 0, compare.stdout


def test_unknown_rope_theta_refuses_a_real_run_and_warns_in_a_dry_run(workdir):
    env = {"HF_HOME": str(workdir / "empty_hf"), "HF_HUB_CACHE": str(workdir / "empty_hf" / "hub")}
    args = ["model=qwen3_30b", "dataset=[ceval,longbenchv2]", "engine=vllm"]
    dry = run_cli(["benchmark.name=plan", *DRY, *args], workdir, env=env)
    assert dry.returncode == 0 and "warning:" in dry.stdout and "rope_theta" in dry.stdout
    per_dataset = load(workdir / "outputs/plan/configs/per_dataset/longbenchv2.yaml")
    assert "rope_theta" in per_dataset["engine"]["problems"][0]
    real = run_cli(["benchmark.name=real", *args], workdir, env=env)
    assert real.returncode == 2 and "refusing to start" in real.stderr + real.stdout
    assert "Traceback" not in real.stderr and not (workdir / "outputs" / "real").exists()


# Hydra itself cannot take `${` in a run name (its output_dir would interpolate it): every other character.
HOSTILE_NAME = 'run with spaces ünï 试 it\'s "$HOME" a=b,c [x] {y} \\ end'


def test_reproduce_survives_links_relative_calls_and_any_name(workdir, tmp_path):
    """reproduce.sh through a symlink, from `/` and by a relative path, with and without --frozen, for a
    run whose name holds spaces, quotes, $, =, commas, brackets, a backslash and non-ASCII."""
    from bench_app.config.overrides import override

    done = run_cli([override("benchmark.name", HOSTILE_NAME), *DRY], workdir)
    assert done.returncode == 0, done.stderr
    script = workdir / "outputs" / HOSTILE_NAME / "configs" / "reproduce.sh"
    link = tmp_path / "a link to reproduce.sh"
    link.symlink_to(script)
    env = dict(os.environ, BENCH_APP_PYTHON=PYTHON)
    made = []
    try:
        for cwd, command in (
            ("/", [str(link)]),
            ("/", [str(link), "--frozen"]),
            (workdir, [os.path.relpath(script, workdir)]),
            (workdir, [os.path.relpath(script, workdir), "--frozen"]),
        ):
            before = set((Path(cwd) / "outputs").glob("*")) if (Path(cwd) / "outputs").is_dir() else set()
            again = subprocess.run(
                [*command, *DRY], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
            )
            assert again.returncode == 0, again.stdout + again.stderr
            (new,) = set((Path(cwd) / "outputs").glob("*")) - before
            made.append(new)
            recorded = load(new / "configs" / "config_snapshot.yaml")["benchmark"]["name"]
            assert recorded == new.name and recorded.startswith(f"{HOSTILE_NAME}_repro_"), recorded
    finally:
        for folder in made:
            if str(folder).startswith("/outputs/"):
                shutil.rmtree(folder)
        if Path("/outputs").is_dir() and not any(Path("/outputs").iterdir()):
            Path("/outputs").rmdir()


def test_a_value_hydra_cannot_read_is_shown_quoted(workdir):
    done = run_cli(["benchmark.name=run with spaces ünï 试", *DRY], workdir)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "quoted for Hydra: benchmark.name='run with spaces ünï 试'" in done.stderr
    suggested = done.stderr.split("(in a shell: ")[1].rsplit(")", 1)[0]
    again = subprocess.run(
        f"{PYTHON} -m bench_app {suggested} execution.dry_run=true",
        shell=True,
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0 and (workdir / "outputs" / "run with spaces ünï 试" / "configs").is_dir()
