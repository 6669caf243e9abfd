"""Multirun: joblib and submitit_local sweeps, the sweep summary (failing jobs included), repeat
statistics, Ctrl-C of a sweep, reproduce.sh of a sweep job, the SLURM launcher config."""

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, broken_engine_args, committed_answers, load, pid_alive, run_cli, wait_until
from hydra import compose, initialize_config_dir

from bench_app.cli.main import CONF_DIR
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.records.documents import SweepJob
from bench_app.sweeps.statistics import describe, repeat_statistics, t_critical_95
from bench_app.sweeps.summary import sweep_status

LAYOUT = (
    "config_original.yaml",
    "config_snapshot.yaml",
    "metadata.yaml",
    "reproduce.sh",
    "packages_engine.txt",
)


def overrides(job):
    return dict(o.split("=", 1) for o in job["overrides"])


def sweep_args(tmp_path, *args):
    return ["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", *args]


def reasoning_repeats_sweep(tmp_path, *extra):
    """Two repeats of sample_gsm8k, two joblib workers at once, on the reasoning stand-in engine."""
    from conftest import FAKES_CONF

    return sweep_args(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.searchpath=[file://{FAKES_CONF}]",
        "engine=reasoning",
        "dataset=[sample_gsm8k]",
        *extra,
        "++aisbench.generation_kwargs.seed=1,2",
    )


def start_never_healthy_sweep(tmp_path, *extra, output=subprocess.PIPE):
    """A two-job sweep whose stand-in servers never become healthy (their pids in tmp_path/pids)."""
    engine, env = broken_engine_args("never_healthy", tmp_path / "pids")
    return subprocess.Popen(
        [
            PYTHON,
            "-m",
            "bench_app",
            *sweep_args(tmp_path, "dataset=[sample_gsm8k]", "vllm.max_num_seqs=4,8", *extra, *engine),
        ],
        cwd=tmp_path,
        env=dict(os.environ, **env),
        stdout=output,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_joblib_sweep_of_dry_runs_gives_every_job_the_full_layout_and_a_sweep_summary(tmp_path):
    done = run_cli(
        sweep_args(
            tmp_path,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "execution.dry_run=true",
            "model=tiny,qwen3_30b",
            "dataset=[sample_gsm8k],[sample_ceval,sample_mmlu]",
        ),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    sweep = tmp_path / "sweep"
    results = load(sweep / "results.yaml")
    from bench_app.records.documents import SweepResults

    SweepResults.from_dict(results, strict=True)  # every field the sweep summary writes is typed
    assert results["sweep"]["jobs"] == 4 and results["sweep"]["status"] == "dry_run"
    jobs = {(overrides(job)["model"], overrides(job)["dataset"]): job for job in results["jobs"]}
    assert set(jobs) == {
        (m, d) for m in ("tiny", "qwen3_30b") for d in ("[sample_gsm8k]", "[sample_ceval,sample_mmlu]")
    }
    for job in results["jobs"]:
        configs = Path(job["dir"]) / "configs"
        for name in LAYOUT:
            assert (configs / name).is_file(), (job["dir"], name)
        snapshot = load(configs / "config_snapshot.yaml")
        model = overrides(job)["model"]
        assert snapshot["vllm"]["max_model_len"] == (2048 if model == "tiny" else 32768)
        shorts = overrides(job)["dataset"].strip("[]").split(",")
        assert sorted(p.stem for p in (configs / "per_dataset").glob("*.yaml")) == sorted(shorts)
        assert set(job["datasets"]) == set(shorts) and {d["status"] for d in job["datasets"].values()} == {
            "planned"
        }
        metadata = load(configs / "metadata.yaml")
        assert metadata["sweep"]["job_num"] == job["num"] and metadata["sweep"]["dir"] == str(sweep)
    summary = (sweep / "summary.md").read_text()
    assert "status: **dry_run** · 4 job(s)" in summary
    assert (
        "| 3 | execution.dry_run=True model=qwen3_30b dataset=[sample_ceval,sample_mmlu] | "
        "sample_ceval | planned" in summary
    )
    again = run_cli(sweep_args(tmp_path, "execution.dry_run=true", "model=tiny,qwen3_30b"), tmp_path)
    assert again.returncode == 2 and "already holds a sweep; it is never overwritten" in again.stderr
    assert (sweep / "summary.md").read_text() == summary


def test_sweep_summary_is_written_when_jobs_fail_and_the_exit_code_says_so(tmp_path):
    engine, env = broken_engine_args("exit_at_start", tmp_path / "pids")
    done = run_cli(
        sweep_args(
            tmp_path,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "dataset=[sample_gsm8k]",
            "aisbench.num_prompts=1,0",
            "execution.dry_run=true,false",
            *engine,
        ),
        tmp_path,
        env=env,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    results = load(tmp_path / "sweep" / "results.yaml")
    by_overrides = {
        f"aisbench.num_prompts={overrides(j)['aisbench.num_prompts']} "
        f"execution.dry_run={overrides(j)['execution.dry_run'].lower()}": j
        for j in results["jobs"]
    }
    ok_dry = by_overrides["aisbench.num_prompts=1 execution.dry_run=true"]
    assert ok_dry["status"] == "dry_run" and ok_dry["exit_code"] == 0
    failed = by_overrides["aisbench.num_prompts=1 execution.dry_run=false"]
    assert failed["status"] == "failed" and failed["exit_code"] == 1
    assert failed["datasets"]["sample_gsm8k"]["status"] == "failed"
    assert "engine exited with code 3 before becoming ready" in failed["datasets"]["sample_gsm8k"]["reason"]
    for dry_run in ("true", "false"):
        invalid = by_overrides[f"aisbench.num_prompts=0 execution.dry_run={dry_run}"]
        assert invalid["status"] == "error" and invalid["exit_code"] == 2
        assert "num_prompts must be >= 1" in invalid["error"]
    assert results["sweep"]["status"] == "failed" and results["sweep"]["job_status"] == {
        "dry_run": 1,
        "error": 2,
        "failed": 1,
    }
    summary = (tmp_path / "sweep" / "summary.md").read_text()
    assert "engine exited with code 3" in summary and "num_prompts must be >= 1" in summary
    for pid in filter(None, (tmp_path / "pids").read_text().split()):
        assert not pid_alive(int(pid))


def test_submitit_local_sweep_and_reproduce_sh_of_one_job(tmp_path):
    done = run_cli(
        sweep_args(
            tmp_path,
            "hydra/launcher=submitit_local",
            "execution.dry_run=true",
            "dataset=[sample_gsm8k]",
            "vllm.max_num_seqs=4,8",
        ),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    results = load(tmp_path / "sweep" / "results.yaml")
    assert [j["status"] for j in results["jobs"]] == ["dry_run", "dry_run"]
    assert (tmp_path / "sweep" / ".submitit").is_dir()  # the jobs really went through submitit
    job = tmp_path / "sweep" / "1"
    original = load(job / "configs" / "per_dataset" / "sample_gsm8k.yaml")
    assert original["vllm"]["max_num_seqs"] == 8
    name = f"sweep_repro_{os.getpid()}"
    env = dict(os.environ, BENCH_APP_PYTHON=PYTHON)
    rerun = subprocess.run(
        [str(job / "configs" / "reproduce.sh"), f"benchmark.name={name}"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    try:
        assert rerun.returncode == 0, rerun.stderr
        replayed = load(PROJECT_ROOT / "outputs" / name / "configs" / "per_dataset" / "sample_gsm8k.yaml")
        assert replayed == original  # that job's effective config, as a single run
        assert load(PROJECT_ROOT / "outputs" / name / "configs" / "metadata.yaml").get("sweep") is None
    finally:
        shutil.rmtree(PROJECT_ROOT / "outputs" / name, ignore_errors=True)


def test_ctrl_c_stops_the_running_job_skips_the_rest_and_still_writes_the_summary(tmp_path):
    process = start_never_healthy_sweep(tmp_path, "execution.server_start_timeout_s=120")
    # The first job's stand-in server is up (it and its child wrote their pids): the job waits for it.
    pids = tmp_path / "pids"
    wait_until(lambda: pids.exists() and len(pids.read_text().split()) >= 2, 600, "the first job's server")
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    results = load(tmp_path / "sweep" / "results.yaml")
    assert results["sweep"]["status"] == "interrupted"
    first, second = results["jobs"]
    assert first["status"] == "interrupted" and first["datasets"]["sample_gsm8k"]["status"] == "skipped"
    assert second["exit_code"] == 130 and "not started" in second["error"]
    assert load(tmp_path / "sweep" / "0" / "configs" / "metadata.yaml")["run"]["status"] == "interrupted"
    for pid in filter(None, (tmp_path / "pids").read_text().split()):
        assert not pid_alive(int(pid))


def test_slurm_launcher_config_composes_with_gpus_from_tensor_parallel_size():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[
                "benchmark.name=t",
                "model=qwen3_30b",
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.partition == "gpu" and launcher.gpus_per_task == 2 and launcher.timeout_min == 240


# ---------------------------------------------------------------- repeat statistics (pure)
def _job(num, seed, accuracy, status="ok", extra=()):
    entry = {"status": status, "metrics": {"accuracy": accuracy}} if status == "ok" else {"status": status}
    return SweepJob(
        num=num,
        dir=f"/s/{num}",
        overrides=[*extra, f"++aisbench.generation_kwargs.seed={seed}"],
        exit_code=0,
        status="completed",
        datasets={"gsm8k": entry},
    )


def test_t_critical_values_and_describe():
    assert t_critical_95(1) == 12.706 and t_critical_95(4) == 2.776 and abs(t_critical_95(60) - 2.000) < 0.005
    stats = describe([50.0, 60.0, 55.0, 45.0, 65.0])
    assert stats["mean"] == 55.0 and stats["min"] == 45.0 and stats["max"] == 65.0
    assert abs(stats["std"] - 7.9057) < 1e-3  # sample standard deviation
    half = 2.776 * 7.90569 / 5**0.5
    assert abs(stats["ci95"][0] - (55 - half)) < 1e-3 and abs(stats["ci95"][1] - (55 + half)) < 1e-3


def test_repeats_are_grouped_by_everything_but_the_seed_and_count_only_ok_runs():
    jobs = [
        _job(0, 1, 40.0, extra=["model=tiny"]),
        _job(1, 2, 50.0, extra=["model=tiny"]),
        _job(2, 3, 0.0, status="failed", extra=["model=tiny"]),
        _job(3, 1, 70.0, extra=["model=big"]),
        _job(4, 2, 80.0, extra=["model=big"]),
    ]
    report = {tuple(g["config"]): g for g in repeat_statistics(jobs)}
    tiny = report[("model=tiny",)]["datasets"]["gsm8k"]
    assert tiny["ok_runs"] == 2 and tiny["runs"] == 3
    assert tiny["metrics"]["accuracy"]["mean"] == 45.0 and tiny["metrics"]["accuracy"]["n"] == 2
    assert report[("model=big",)]["seeds"] == ["1", "2"]
    assert sweep_status(jobs) == ("completed", 0)


def test_benchmark_repeats_as_jobs_runs_a_seed_sweep_with_statistics(tmp_path):
    done = run_cli(
        [
            "benchmark.repeats=3",
            "benchmark.repeats_as=jobs",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
            "execution.dry_run=true",
            "dataset=[sample_gsm8k]",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "running as: -m benchmark" not in done.stderr
        and "++aisbench.generation_kwargs.seed=range(1,4)" in done.stderr
    )
    results = load(tmp_path / "sweep" / "results.yaml")
    assert [j["overrides"][-1] for j in results["jobs"]] == [
        f"++aisbench.generation_kwargs.seed={i}" for i in (1, 2, 3)
    ]
    assert results["repeats"][0]["jobs"] == [0, 1, 2]
    seeds = [
        load(Path(j["dir"]) / "configs/per_dataset/sample_gsm8k.yaml")["model_config"]["generation_kwargs"][
            "seed"
        ]
        for j in results["jobs"]
    ]
    assert seeds == [1, 2, 3]
    bad = run_cli(["benchmark.repeats=1", "benchmark.repeats_as=jobs", "execution.dry_run=true"], tmp_path)
    assert bad.returncode == 2
    assert "benchmark.repeats_as=jobs needs benchmark.repeats=N with N >= 2 (got 1)" in bad.stderr


@pytest.mark.e2e
def test_two_real_tiny_jobs_run_concurrently_on_their_own_ports(tmp_path, browser):
    done = run_cli(
        sweep_args(
            tmp_path,
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "dataset=[sample_gsm8k]",
            "aisbench.num_prompts=1",
            "++aisbench.generation_kwargs.seed=1,2",  # two repeats: the sweep report's error bars
            "execution.progress=false",
            # leases of its own: the two jobs are the only holders (a test on the other worker may hold one)
            f"execution.lease_dir={tmp_path / 'leases'}",
        ),
        tmp_path,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = load(tmp_path / "sweep" / "results.yaml")
    assert [j["datasets"]["sample_gsm8k"]["status"] for j in results["jobs"]] == ["ok", "ok"]
    servers = [load(Path(j["dir"]) / "results.yaml")["servers"][0] for j in results["jobs"]]
    assert servers[0]["port"] != servers[1]["port"] and {s["cpu_slot"] for s in servers} == {0, 1}
    for job, server in zip(results["jobs"], servers, strict=True):
        recorded = load(Path(job["dir"]) / "configs/per_dataset/sample_gsm8k.yaml")["server"]
        assert recorded["port"] == server["port"] and recorded["cpu_slot"] == server["cpu_slot"]
        assert f"--port {server['port']}" in " ".join(recorded["argv"])
    # Side by side, not one after the other: each server started before the other job had finished.
    spans = [
        (s["started_at"], load(Path(j["dir"]) / "configs/metadata.yaml")["run"]["ended"])
        for j, s in zip(results["jobs"], servers, strict=True)
    ]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], spans

    # The sweep's report: jobs x datasets, each job's own report linked, the repeats' mean and CI drawn.
    report = tmp_path / "sweep" / "report.html"
    assert f"report: {report}" in done.stdout
    assert browser.open(report) == []
    assert browser.js("return document.querySelectorAll('#jobs tbody tr').length") == 2
    links = browser.js("return [...document.querySelectorAll('#jobs a')].map(a => a.getAttribute('href'))")
    assert links == ["0/report.html", "1/report.html"] and all(
        (tmp_path / "sweep" / link).exists() for link in links
    )
    assert browser.js("return document.querySelectorAll('#chart-repeats .bars .point').length") == 1
    assert browser.js("return document.querySelectorAll('#chart-repeats .errorbar').length") == 1
    browser.screenshot(tmp_path / "sweep" / "report.png", height=1000)
    assert browser.open(tmp_path / "sweep" / links[0]) == []  # a job's own report opens too


def _processes_with_env(text: str):
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if text.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:
            pass
    return [pid for pid in found if pid_alive(pid)]


def test_a_killed_sweep_takes_its_jobs_servers_and_workers_with_it(tmp_path):
    """kill -9 of a joblib sweep's main process while two jobs run: every server and worker ends within
    seconds and each job's metadata says interrupted."""
    process = start_never_healthy_sweep(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "execution.server_start_timeout_s=300",
        output=subprocess.DEVNULL,
    )
    owner = f" {process.pid} "
    wait_until(
        lambda: (tmp_path / "pids").exists() and len((tmp_path / "pids").read_text().split()) >= 4,
        120,
        "both jobs' stand-in servers",
    )
    assert len(_processes_with_env(owner)) >= 2  # the joblib workers, which carry the sweep's owner
    process.kill()
    process.wait()
    servers = [int(p) for p in (tmp_path / "pids").read_text().split()]
    wait_until(lambda: not any(pid_alive(p) for p in servers), 60, "the stand-in servers to be stopped")
    wait_until(lambda: not _processes_with_env(owner), 60, "the joblib workers to end")
    for job in (tmp_path / "sweep").glob("[0-9]*"):
        assert load(job / "configs" / "metadata.yaml")["run"]["status"] == "interrupted"


def test_resume_true_continues_a_killed_sweep_from_its_saved_answers(tmp_path):
    """kill -9 of a joblib sweep while both jobs answer slowly; the same command with resume=true continues
    each job from its own saved answers and writes the sweep summary."""
    command = [PYTHON, "-m", "bench_app", *reasoning_repeats_sweep(tmp_path, "aisbench.batch_size=1")]
    slow = dict(os.environ, FAKE_ENGINE_SHAPE="tags", FAKE_ENGINE_DELAY_S="2")
    process = subprocess.Popen(
        command, cwd=tmp_path, env=slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    caches = [tmp_path / "sweep" / str(n) / "requests.sqlite" for n in (0, 1)]
    # An answer committed to each job's request cache (what resume answers from), not a record line.
    wait_until(lambda: all(committed_answers(c) >= 1 for c in caches), 600, "an answer committed in each job")
    process.kill()
    process.wait()
    wait_until(lambda: not _processes_with_env(f" {process.pid} "), 60, "the killed sweep's workers to end")
    resumed = subprocess.run(
        [*command, "resume=true"],
        cwd=tmp_path,
        env=dict(slow, FAKE_ENGINE_DELAY_S="0"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    results = load(tmp_path / "sweep" / "results.yaml")
    assert results["sweep"]["status"] == "completed"
    for n in (0, 1):
        dataset = load(tmp_path / "sweep" / str(n) / "results.yaml")["datasets"]["sample_gsm8k"]
        assert dataset["status"] == "ok" and dataset["answers"]["reused"] >= 1, dataset
        assert dataset["answers"]["reused"] + dataset["answers"]["generated"] == 4


def test_two_jobs_sharing_one_cache_at_once_lose_no_answer(tmp_path):
    done = run_cli(
        # two repeats: their answers are two sets of keys
        reasoning_repeats_sweep(tmp_path, f"execution.cache={tmp_path / 'shared'}"),
        tmp_path,
        env={"FAKE_ENGINE_SHAPE": "tags"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    stats = run_cli(["cache", "stats", str(tmp_path / "shared")], tmp_path)
    assert "8 answer(s) of 1 engine configuration(s)" in stats.stdout, stats.stdout
