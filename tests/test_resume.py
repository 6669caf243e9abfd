"""Never lose an answer: a run killed mid-dataset (SIGKILL) resumes by re-sending only the requests that
have no answer, and ends with the same predictions, samples and scores as a run never interrupted."""

import json
import os
import signal
import subprocess

import pytest
from conftest import PYTHON, committed_answers, load, process_groups_of_children, run_cli, wait_until

from bench_app.common.processes import group_alive

DATASET = ["dataset=sample_mmlu", "aisbench.batch_size=1"]  # one request at a time: a kill lands mid-dataset


def _records(path):
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )


@pytest.mark.e2e
def test_a_run_killed_mid_dataset_resumes_from_its_saved_answers(workdir):
    whole = run_cli(["benchmark.name=whole", *DATASET], workdir, timeout=900)
    assert whole.returncode == 0, whole.stderr[-3000:]
    started = subprocess.Popen(
        [PYTHON, "-m", "bench_app", "benchmark.name=killed", *DATASET],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cache = workdir / "outputs/killed/requests.sqlite"
    try:
        # Answers committed to the request cache (what resume answers from), not record lines.
        wait_until(lambda: committed_answers(cache) >= 2, 600, "two answers of the run to be killed")
        groups = process_groups_of_children(started.pid)
    finally:
        os.kill(started.pid, signal.SIGKILL)  # the runner dies at once; its watchdogs stop the rest
        started.wait()
    saved = committed_answers(cache)
    wait_until(lambda: not any(group_alive(g) for g in groups), 120, "the killed run's server and evaluator")
    resumed = run_cli(["benchmark.name=killed", "resume=true", *DATASET], workdir, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = load(workdir / "outputs/killed/results.yaml")["datasets"]["sample_mmlu"]
    total = result["answers"]["reused"] + result["answers"]["generated"]
    assert total == 6 and result["answers"]["reused"] >= saved, result["answers"]  # every committed one
    assert "reused from the request cache" in resumed.stdout
    fields = ("id", "subset", "prompt", "output", "prediction", "gold", "correct")
    first = [{k: r[k] for k in fields} for r in _records(workdir / "outputs/whole/sample_mmlu/samples.jsonl")]
    again = [
        {k: r[k] for k in fields} for r in _records(workdir / "outputs/killed/sample_mmlu/samples.jsonl")
    ]
    assert again == first
    assert (
        result["metrics"]
        == load(workdir / "outputs/whole/results.yaml")["datasets"]["sample_mmlu"]["metrics"]
    )
    compared = run_cli(["compare", str(workdir / "outputs/whole"), str(workdir / "outputs/killed")], workdir)
    assert "== scores" not in compared.stdout and "right->wrong" not in compared.stdout, compared.stdout


def _stand_in(workdir, name, *extra, env=None):
    from conftest import FAKES_CONF

    return run_cli(
        [
            f"hydra.searchpath=[file://{FAKES_CONF}]",
            "engine=reasoning",
            "dataset=sample_gsm8k",
            "aisbench.batch_size=1",
            f"benchmark.name={name}",
            *extra,
        ],
        workdir,
        env={"FAKE_ENGINE_SHAPE": "tags", **(env or {})},
        timeout=600,
    )


def test_a_server_that_dies_mid_dataset_is_started_again_and_the_dataset_finishes(workdir, browser):
    dies = {"FAKE_ENGINE_DIE_AFTER": "2", "FAKE_ENGINE_DIED_MARK": str(workdir / "died")}
    done = _stand_in(workdir, "restarted", env=dies)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "starting it again (1 of 1)" in done.stdout
    results = load(workdir / "outputs/restarted/results.yaml")
    result = results["datasets"]["sample_gsm8k"]
    assert result["status"] == "ok" and result["metrics"]["accuracy"] == 50.0
    assert result["answers"] == {"reused": 2, "generated": 2}  # the two saved answers were not asked again
    (restart,) = results["servers"][0]["restarts"]
    assert restart["dataset"] == "sample_gsm8k" and "exited with code 9" in restart["reason"]
    assert result["server_restarts"] == [restart["reason"]]
    # report.html: the restart on the timeline, the answers reused and generated in the scores table
    assert browser.open(workdir / "outputs/restarted/report.html") == []
    traces = browser.js("return document.getElementById('chart-timeline').data.map((t) => t.name)")
    assert any(name.startswith("restart: ") for name in traces), traces
    cells = browser.js("return [...document.querySelectorAll('#scores td')].map((c) => c.textContent)")
    assert "2 / 2" in cells


def test_a_server_started_lazily_mid_dataset_and_killed_is_restarted_and_counted(workdir):
    """The cache answers the first prompt; the server starts at the first miss, dies on its first request,
    is started again, and the dataset finishes. Its counters are the started server's, not a placeholder's."""
    shared = f"execution.cache={workdir / 'shared'}"
    first = _stand_in(workdir, "first", shared, "aisbench.num_prompts=1")
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    dies = {"FAKE_ENGINE_DIE_AFTER": "0", "FAKE_ENGINE_DIED_MARK": str(workdir / "died")}
    done = _stand_in(workdir, "lazy", shared, env=dies)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "starts on the first request the cache cannot answer" in done.stdout
    assert "starting it again (1 of 1)" in done.stdout
    results = load(workdir / "outputs/lazy/results.yaml")
    result = results["datasets"]["sample_gsm8k"]
    assert result["status"] == "ok" and result["metrics"]["accuracy"] == 50.0
    assert result["answers"] == {"reused": 1, "generated": 3}
    assert len(results["servers"][0]["restarts"]) == 1
    # the restarted server answered three: one cut at max_out_len (the eggs), two stopped
    assert result["finished_requests"] == {"length": 1, "stop": 2}
    assert result["prompts"]["done"] == 3
    assert "1 of 3 answer(s) were cut at max_out_len" in result["reason"]


def test_restarts_used_up_fail_the_dataset_and_a_resume_finishes_it(workdir):
    dies = {"FAKE_ENGINE_DIE_AFTER": "2", "FAKE_ENGINE_DIED_MARK": str(workdir / "died")}
    failed = _stand_in(workdir, "gave_up", "execution.server_restarts=0", env=dies)
    assert failed.returncode == 1
    result = load(workdir / "outputs/gave_up/results.yaml")["datasets"]["sample_gsm8k"]
    assert result["status"] == "failed" and "server died" in result["reason"]
    assert len(_records(workdir / "outputs/gave_up/sample_gsm8k/requests.jsonl")) == 2  # kept for the resume
    resumed = _stand_in(workdir, "gave_up", "resume=true", env=dies)  # the stand-in died once: now it serves
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    result = load(workdir / "outputs/gave_up/results.yaml")["datasets"]["sample_gsm8k"]
    assert result["status"] == "ok" and result["answers"] == {"reused": 2, "generated": 2}


@pytest.mark.e2e
def test_an_identical_rerun_with_a_shared_cache_starts_no_server(workdir):
    shared = ["dataset=sample_gsm8k", f"execution.cache={workdir / 'shared'}"]
    first = run_cli(["benchmark.name=first", *shared], workdir, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_cli(["benchmark.name=again", *shared], workdir, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    results = load(workdir / "outputs/again/results.yaml")
    assert results["server_starts"] == 0 and not results["servers"][0].get("started_at")
    assert results["datasets"]["sample_gsm8k"]["answers"] == {"reused": 4, "generated": 0}
    fields = ("id", "output", "prediction", "correct")
    one = [{k: r[k] for k in fields} for r in _records(workdir / "outputs/first/sample_gsm8k/samples.jsonl")]
    two = [{k: r[k] for k in fields} for r in _records(workdir / "outputs/again/sample_gsm8k/samples.jsonl")]
    assert one == two and all(
        r["cached"] for r in _records(workdir / "outputs/again/sample_gsm8k/samples.jsonl")
    )
    stats = run_cli(["cache", "stats", str(workdir / "shared")], workdir)
    assert stats.returncode == 0 and "4 answer(s) of 1 engine configuration(s)" in stats.stdout


def test_a_requeued_slurm_job_continues_its_run_from_its_answers(workdir):
    """SLURM requeues a job after its time limit or a preemption (--requeue): the job starts again in the
    same run folder and continues from its saved answers instead of refusing the folder or starting over."""
    dies = {"FAKE_ENGINE_DIE_AFTER": "2", "FAKE_ENGINE_DIED_MARK": str(workdir / "died")}
    cut = _stand_in(workdir, "job", "execution.server_restarts=0", env={**dies, "SLURM_JOB_ID": "7"})
    assert cut.returncode == 1  # the job's first run ends early (here: its server dies, no restart)
    plain = _stand_in(workdir, "job", env=dies)
    assert plain.returncode == 2 and "already holds a run" in plain.stdout + plain.stderr
    requeued = _stand_in(workdir, "job", env={**dies, "SLURM_JOB_ID": "7", "SLURM_RESTART_COUNT": "1"})
    assert requeued.returncode == 0, (requeued.stdout + requeued.stderr)[-3000:]
    result = load(workdir / "outputs/job/results.yaml")["datasets"]["sample_gsm8k"]
    assert result["status"] == "ok" and result["answers"] == {"reused": 2, "generated": 2}


@pytest.mark.e2e
def test_a_changed_chat_template_is_never_answered_from_the_cache(workdir):
    """The request body holds the messages, not the prompt the server builds from them: a model copy whose
    chat template changed must get new answers, and the run says why the cached ones were not reused."""
    import shutil

    from conftest import PROJECT_MODEL

    model = workdir / "model"
    model.mkdir()
    for source in PROJECT_MODEL.iterdir():
        if source.suffix == ".safetensors":
            (model / source.name).symlink_to(source)  # the weights' identity: names and sizes
        elif source.is_file():
            shutil.copy(source, model / source.name)
    shared = [f"execution.cache={workdir / 'shared'}", f"vllm.model_path={model}"]
    first = _stand_in(workdir, "first", *shared)
    again = _stand_in(workdir, "again", *shared)
    assert first.returncode == 0 and again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert load(workdir / "outputs/again/results.yaml")["server_starts"] == 0  # nothing changed: all reused
    template = model / "chat_template.jinja"
    template.write_text(template.read_text().replace("You are a helpful AI assistant", "You are terse"))
    changed = _stand_in(workdir, "changed", *shared)
    assert changed.returncode == 0, (changed.stdout + changed.stderr)[-3000:]
    result = load(workdir / "outputs/changed/results.yaml")["datasets"]["sample_gsm8k"]
    assert result["answers"] == {"reused": 0, "generated": 4}
    assert "4 cached answer(s) of this model are not reused" in changed.stdout
    assert "chat_template.jinja changed" in changed.stdout
    stats = run_cli(["cache", "stats", str(workdir / "shared")], workdir)
    assert (
        stats.returncode == 0
        and "since the configuration before: chat_template.jinja changed" in stats.stdout
    )
    # Every file of the run folder as any new file of the user's (umask), results.yaml included.
    from bench_app.common.files import _umask

    run = workdir / "outputs/changed"
    modes = {
        str(path.relative_to(run)): oct(path.stat().st_mode & 0o777)
        for path in run.rglob("*")
        if path.is_file() and path.name != "reproduce.sh"
    }
    assert set(modes.values()) == {oct(0o666 & ~_umask())}, modes
