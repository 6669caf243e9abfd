"""The task host: one AISBench import per engine group instead of one per dataset and per task
(bench_app/evaluators/aisbench_host.py), with the same results and the same failure isolation."""

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import load, pid_alive, run_cli

from bench_app.common.errors import EvaluationError
from bench_app.common.processes import group_alive
from bench_app.evaluators.task_host import TaskHost

FAKE_HOST = str(Path(__file__).parent / "fakes" / "fake_task_host.py")


@pytest.fixture
def host(tmp_path):
    started = TaskHost([sys.executable, FAKE_HOST], {"PATH": "/usr/bin:/bin"}, tmp_path / "host.log", "test")
    started.start()
    yield started
    started.stop()


def run(host, tmp_path, *argv, timeout_s=30.0, stop_reason=lambda: None):
    return host.run(
        "main", list(argv), tmp_path, {"MARK": "m1"}, tmp_path / "task.log", timeout_s, stop_reason
    )


def test_requests_run_one_after_another_in_the_same_host(host, tmp_path):
    assert host.wait_ready(30)
    assert run(host, tmp_path, "exit", "0") == 0
    assert run(host, tmp_path, "exit", "7") == 7  # a failing request leaves the host up
    assert host.alive()
    assert (tmp_path / "task.log").read_text() == f"ran in {tmp_path} with MARK=m1\n"


def test_a_host_that_dies_fails_the_request_with_the_reason(host, tmp_path):
    with pytest.raises(EvaluationError, match="task host exited with code 3"):
        run(host, tmp_path, "die")
    assert not group_alive(host.group.pid)


def test_a_hanging_request_times_out_and_its_whole_process_group_is_stopped(host, tmp_path):
    started = time.monotonic()
    with pytest.raises(EvaluationError, match="evaluation timed out after 2 s") as error:
        run(host, tmp_path, "hang", timeout_s=2)
    assert time.monotonic() - started < 20
    child = int(error.value.log_tail.split()[-1])  # the task log's tail, where the child wrote its pid
    assert not pid_alive(child) and not group_alive(host.group.pid)


def test_a_stop_reason_ends_the_request_at_once(host, tmp_path):
    calls = []

    def stop_reason():
        calls.append(1)
        return "server died during the evaluation" if len(calls) > 2 else None

    with pytest.raises(EvaluationError, match="server died during the evaluation"):
        run(host, tmp_path, "hang", stop_reason=stop_reason)
    assert not group_alive(host.group.pid)


def _predictions(run_dir: Path):
    """Per dataset and subset: every prompt and prediction, in order (uuids are random per run)."""
    found = {}
    for path in sorted(run_dir.glob("*/*/predictions/bench_app/*.jsonl")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        found[f"{path.parts[-5]}/{path.stem}"] = [
            (r["id"], r["origin_prompt"], r["prediction"], r["gold"])
            for r in sorted(rows, key=lambda r: r["id"])
        ]
    return found


def test_task_host_gives_what_one_process_per_dataset_gives_and_isolates_failures(workdir, vllm_server):
    """The session's real vLLM + real AISBench, both ways, on a 1-subset and a 2-subset dataset: the same
    prompts, predictions and metrics (the tiny model decodes greedily); and in the host, an AISBench
    failure in one dataset fails only that dataset."""
    common = vllm_server.args("dataset=[sample_mmlu,sample_gsm8k,sample_ceval]", "aisbench.num_prompts=1")
    broken = "datasets.sample_mmlu.subsets=[no_such_subject]"  # AISBench finds nothing to run
    env = vllm_server.env()
    done = run_cli(["benchmark.name=hosted", *common, broken], workdir, env=env, timeout=1200)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    done = run_cli(
        ["benchmark.name=plain", *common, broken, "evaluator.task_host=false"], workdir, env=env, timeout=1200
    )
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    hosted, plain = workdir / "outputs/hosted", workdir / "outputs/plain"
    hosted_results, plain_results = load(hosted / "results.yaml"), load(plain / "results.yaml")
    for results in (hosted_results, plain_results):
        assert results["datasets"]["sample_mmlu"]["status"] == "failed"
        for short in ("sample_gsm8k", "sample_ceval"):
            assert results["datasets"][short]["status"] == "ok", results["datasets"][short]
    assert (
        hosted_results["datasets"]["sample_mmlu"]["reason"]
        == plain_results["datasets"]["sample_mmlu"]["reason"]
    )
    for short in ("sample_gsm8k", "sample_ceval"):
        assert hosted_results["datasets"][short]["metrics"] == plain_results["datasets"][short]["metrics"]
    assert set(load(hosted / "results.yaml")["datasets"]["sample_ceval"]["metrics"]["subsets"]) == {
        "ceval-computer_network",
        "ceval-high_school_physics",
    }
    hosted_predictions = _predictions(hosted)
    assert len(hosted_predictions) == 3 and hosted_predictions == _predictions(plain)
    # AISBench's own per-task logs are where they always were; the host logged its start-up apart.
    assert list(hosted.glob("sample_ceval/*/logs/infer/bench_app/ceval-high_school_physics.out"))
    assert (hosted / "logs/evaluator_group0.log").exists()
    assert not (plain / "logs/evaluator_group0.log").exists()
    # bench-app compare: the one difference is the setting itself; no score differs.
    compared = run_cli([str(plain), str(hosted)], workdir, module="bench_app.compare")
    assert compared.returncode == 1 and "== scores" not in compared.stdout, compared.stdout
    assert compared.stdout.splitlines()[:2] == [
        "== config snapshot (1)",
        "  evaluator.task_host: False -> True",
    ]


MONITOR_CHECK = """
import json, os, sys, threading, time
sys.path.insert(0, sys.argv[1])
import aisbench_host as host
work_dir, with_final = sys.argv[2], sys.argv[3] == "final"
monitor = host.HostTasksMonitor(["bench_app/x"], work_dir)
# The task's own state file says it started; its last write ("finish") was lost in the unlocked
# read-and-empty race, and the task ran in this (live) process.
with open(os.path.join(monitor.tmp_file_path, "tmp_bench_app_x.json"), "w") as handle:
    json.dump([{"task_name": "bench_app/x", "status": "start", "process_id": os.getpid()}], handle)
if with_final:
    with open(host.final_state_file(monitor.tmp_file_path, "bench_app/x"), "w") as handle:
        handle.write("finish")
board = threading.Thread(target=monitor.launch_state_board, daemon=True)
board.start()
board.join(timeout=5)
print("ended" if not board.is_alive() else "still waiting")
"""


@pytest.mark.parametrize("final, expected", [("final", "ended"), ("none", "still waiting")])
def test_the_monitor_of_in_process_tasks_ends_on_the_final_state_file(tmp_path, final, expected):
    """Without its final state file, AISBench's monitor would wait forever for a task run in the host
    whose "finish" was lost (it happened: a dataset hung after both tasks had finished)."""
    import subprocess

    from bench_app.evaluators.aisbench import evaluator as aisbench

    done = subprocess.run(
        [sys.executable, "-c", MONITOR_CHECK, str(Path(aisbench.__file__).parent), str(tmp_path), final],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].endswith(expected)  # after curses' probe codes
