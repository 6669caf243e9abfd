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
    # AISBench's own refusal, named the same both ways (its file path names the run)
    reason = hosted_results["datasets"]["sample_mmlu"]["reason"]
    assert reason == plain_results["datasets"]["sample_mmlu"]["reason"].replace("/plain/", "/hosted/")
    assert "does not contain 'datasets' param" in reason and "\n" not in reason, reason
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


COUNTER_CHECK = """
import asyncio, queue, sys
sys.path.insert(0, sys.argv[1])
import aisbench_host as host
from ais_bench.benchmark.openicl.icl_inferencer.icl_base_api_inferencer import StatusCounter
if sys.argv[2] == "patched":
    host.shorten_polling()
counter = StatusCounter(batch_size=1)  # its counting thread not started: it has fallen behind


async def answered_from_the_cache():  # four events per request, as AISBench's client records them
    for _ in range(3):
        await counter.post(); await counter.rev(); await counter.finish(); await counter.case_finish()


try:
    asyncio.run(answered_from_the_cache())
    print("all counted")
except queue.Full:
    print("queue.Full")
"""


@pytest.mark.parametrize("patched, expected", [("patched", "all counted"), ("stock", "queue.Full")])
def test_a_counter_that_falls_behind_never_fails_a_request(patched, expected):
    """AISBench's progress counter queues batch_size * 5 events and raised queue.Full into a request when its
    thread fell behind: answers from the request cache come back within a millisecond (it happened to a
    resumed run at batch 1 on a busy machine). In the host its queue has no bound."""
    import subprocess

    from bench_app.evaluators.aisbench import evaluator as aisbench

    done = subprocess.run(
        [sys.executable, "-c", COUNTER_CHECK, str(Path(aisbench.__file__).parent), patched],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1].endswith(expected)  # after curses' probe codes


# ------------------------------------------- every way an AISBench task fails says its cause in one line
FAULTY_CONFIG = """from mmengine.config import read_base

from fault_loaders import FaultyGSM8K

with read_base():
    from ais_bench.benchmark.configs.datasets.gsm8k.gsm8k_gen_0_shot_cot_chat_prompt import (
        gsm8k_datasets as _stock,
    )

faulty_datasets = [dict(d, abbr="faulty", type=FaultyGSM8K) for d in _stock]
"""


def faulty_folder(tmp_path, faults):
    """my_conf/dataset/fault_<kind>.yaml for each kind: its own data folder whose `fault` file tells the
    loader (tests/fakes/fault_loaders.py) how to fail."""
    import shutil

    import yaml

    (tmp_path / "my_conf" / "dataset").mkdir(parents=True)
    (tmp_path / "my_conf" / "aisbench").mkdir()
    (tmp_path / "my_conf" / "aisbench" / "faulty_gen.py").write_text(FAULTY_CONFIG)
    (tmp_path / "my_code").mkdir()
    shutil.copy(Path(__file__).parent / "fakes" / "fault_loaders.py", tmp_path / "my_code")
    for kind in faults:
        data = tmp_path / "data" / kind
        shutil.copytree(Path(__file__).parent / "fixtures/original_system/data/gsm8k_test_only", data)
        (data / "fault").write_text(kind)
        dataset = {
            "config_file": "aisbench/faulty_gen.py",
            "data_path": str(data),
            "model_config": {"max_out_len": 16},
        }
        (tmp_path / "my_conf" / "dataset" / f"fault_{kind}.yaml").write_text(
            f"# @package datasets.fault_{kind}\n" + yaml.safe_dump(dataset)
        )
    return ["--config-dir", str(tmp_path / "my_conf"), f"evaluator.python_path=[{tmp_path / 'my_code'}]"]


def test_every_failure_of_an_aisbench_task_names_its_cause(tmp_path, vllm_server):
    """Through the real AISBench in the task host: an exception in the task, AISBench's own error code (a
    data file its loader refuses), the task's process killed; each dataset failed with the cause in its
    reason and in its log tail, none with a stack of bench_app's own; the datasets after it still run."""
    import shutil

    mmlu = tmp_path / "mmlu"
    shutil.copytree(Path(__file__).parents[1] / "data/samples/mmlu", mmlu)
    with open(mmlu / "dev/high_school_geography_dev.csv", "a") as handle:
        handle.write("A question with four columns only,A,B,C\n")
    args = [
        *faulty_folder(tmp_path, ["raise", "kill"]),
        *vllm_server.args("dataset=[fault_raise,sample_mmlu,fault_kill,sample_gsm8k]"),
        f"datasets.sample_mmlu.data_path={mmlu}",
        "aisbench.num_prompts=1",
        "execution.context_check=off",  # the budget would run the faulty loaders at planning
        "benchmark.name=faults",
    ]
    done = run_cli(args, tmp_path, env=vllm_server.env(), timeout=900)
    assert done.returncode == 1, (done.stdout + done.stderr)[-4000:]
    datasets = load(tmp_path / "outputs/faults/results.yaml")["datasets"]
    reasons = {short: entry.get("reason") or "" for short, entry in datasets.items()}
    raised, coded, killed = datasets["fault_raise"], datasets["sample_mmlu"], datasets["fault_kill"]
    assert raised["status"] == "failed" and "inference task" in raised["reason"], reasons
    assert (
        "ValueError: the loader cannot read" in raised["reason"] and "broken on purpose" in raised["reason"]
    )
    assert "broken on purpose" in raised["log_tail"]
    assert coded["status"] == "failed", reasons
    assert "DSET-DATA-002 dataset has invalid structure: Row 1 in " in coded["reason"], reasons
    assert "has 4 columns, expected 6" in coded["reason"] and "DSET-DATA-002" in coded["log_tail"]
    assert killed["status"] == "failed" and "was killed by SIGKILL" in killed["reason"], reasons
    for entry in (raised, coded, killed):
        assert "\n" not in entry["reason"] and "TypeError" not in entry["log_tail"], entry
        assert "aisbench_host.py" not in entry["log_tail"].splitlines()[-1], entry["log_tail"]
    assert datasets["sample_gsm8k"]["status"] == "ok", datasets["sample_gsm8k"]
    # One `ais_bench` process per dataset, each task its own process: the same cause. (A killed task process
    # is not tried that way: AISBench's own monitor then waits for it until evaluation_timeout_s.)
    plain = [a for a in args[:-1] if not a.startswith(("dataset=", "datasets.sample_mmlu"))]
    plain += ["dataset=[fault_raise]", "benchmark.name=faults_plain", "evaluator.task_host=false"]
    done = run_cli(plain, tmp_path, env=vllm_server.env(), timeout=900)
    assert done.returncode == 1, (done.stdout + done.stderr)[-4000:]
    again = load(tmp_path / "outputs/faults_plain/results.yaml")["datasets"]["fault_raise"]
    assert "inference task faulty: ValueError: the loader cannot read" in again["reason"], again


def test_an_aisbench_task_that_never_ends_times_out_naming_the_task(tmp_path, vllm_server):
    args = [
        *faulty_folder(tmp_path, ["hang"]),
        *vllm_server.args("dataset=[fault_hang]"),
        "execution.context_check=off",
        "execution.evaluation_timeout_s=15",
        "benchmark.name=hang",
    ]
    done = run_cli(args, tmp_path, env=vllm_server.env(), timeout=900)
    assert done.returncode == 1, (done.stdout + done.stderr)[-4000:]
    entry = load(tmp_path / "outputs/hang/results.yaml")["datasets"]["fault_hang"]
    assert entry["status"] == "failed", entry
    assert entry["reason"].startswith("evaluation timed out after 15 s"), entry["reason"]
    assert "during its inference task" in entry["reason"], entry["reason"]


AISBENCH_ERROR = """
from ais_bench.benchmark.utils.logging.error_codes import TINFER_CODES
from ais_bench.benchmark.utils.logging.exceptions import AISBenchRuntimeError
error = AISBenchRuntimeError(
    TINFER_CODES.VIRTUAL_MEMORY_USAGE_TOO_HIGH,
    "Virtual memory usage too high: 91.54% > 80% (Total memory: 23.40 GB)",
)
print(f"Traceback (most recent call last):\\n  File x\\nais_bench.AISBenchRuntimeError: {error}")
"""


def test_the_cause_is_read_as_aisbench_writes_it():
    """AISBench's own exception text (colours and its FAQ link included), made by the installed AISBench."""
    import subprocess

    from bench_app.evaluators.aisbench.results import cause_in

    made = subprocess.run([sys.executable, "-c", AISBENCH_ERROR], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", made.stdout)
    assert cause_in(text) == (
        "TINFER-PARAM-005 virtual memory usage too high: 91.54% > 80% (Total memory: 23.40 GB)"
    )
    assert (
        cause_in("Traceback (most recent call last):\n  File x\nKeyError: 'question'\n")
        == "KeyError: 'question'"
    )
    assert cause_in("all went well\n") is None


RUNNER_LINE = """
import sys
from ais_bench.benchmark.utils.logging import get_formatted_log_content
said = "OpenICLApiInferbench_app/gsm8k failed with code 137, see\\n" + sys.argv[1]
print("[ais_bench] [ERROR] " + get_formatted_log_content("RUNNER-TASK-001", said))
"""


def test_a_task_process_killed_outside_the_host_is_named_from_aisbenchs_runner_line(tmp_path):
    """Without the task host each task is a process of its own, started through a shell: only AISBench's
    runner says it died (exit 137 = SIGKILL), pointing at the task's log."""
    import subprocess

    from bench_app.evaluators.aisbench.results import task_failure

    infer = tmp_path / "20261207_101010/logs/infer/bench_app/gsm8k.out"
    evaluation = tmp_path / "20261207_101010/logs/eval/bench_app/gsm8k.out"
    for log in (infer, evaluation):
        log.parent.mkdir(parents=True)
    infer.write_text("loading the dataset\nKilled\n")
    # the evaluation that ran after it failed for want of predictions: not the cause
    evaluation.write_text("Traceback (most recent call last):\nFileNotFoundError: no predictions\n")
    made = subprocess.run(
        [sys.executable, "-c", RUNNER_LINE, "20261207_101010/logs/infer/bench_app/gsm8k.out"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    (tmp_path / "aisbench.log").write_text(made.stdout)
    assert task_failure(tmp_path) == (
        "inference task gsm8k was killed by SIGKILL",
        "loading the dataset\nKilled",
    )


def test_aisbenchs_memory_guard_is_said_before_it_bites_with_where_the_memory_went(tmp_path):
    """AISBench refuses inference above 80% memory use (TINFER-PARAM-005, not a setting of its own): the
    check before each dataset measures it as AISBench does (total - MemAvailable) and names the remedy."""
    from bench_app.evaluators.aisbench.memory import memory_refusal

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       25165824 kB\nMemFree:  1000 kB\nMemAvailable:    2097152 kB\n")
    said = memory_refusal(meminfo=meminfo)  # 22 of 24 GiB in use: 91.7%
    assert said.startswith("AISBench would refuse to start inference (TINFER-PARAM-005): 91.7% of this")
    assert "(22.0 of 24.0 GiB), more than its 80%" in said and "VLLM_CPU_KVCACHE_SPACE" in said
    assert "largest: " in said and "(pid " in said and "\n" not in said
    meminfo.write_text("MemTotal:       25165824 kB\nMemAvailable:    8388608 kB\n")  # 66.7%
    assert memory_refusal(meminfo=meminfo) is None
