"""Faults: each asserts the recorded status, the message, and that no process is left behind.

A deliberately broken stand-in engine (fakes/broken_engine.py) injects faults that the real vLLM does not
produce on demand; the bad-model-path case uses the real vLLM. The evaluator is always the real AISBench.
"""

import json
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import PYTHON, broken_engine_args, load, pid_alive, run_cli

FAST = ["aisbench.num_prompts=1", "execution.server_stop_timeout_s=5"]


def pids(pidfile: Path):
    return [int(p) for p in pidfile.read_text().split()] if pidfile.exists() else []


def assert_no_leftovers(pidfile: Path):
    for pid in pids(pidfile):
        assert not pid_alive(pid), f"process {pid} of the stand-in engine survived"


@pytest.mark.e2e  # the real vLLM, failing
def test_engine_exits_at_start_with_bad_model_path(workdir):
    done = run_cli(
        ["benchmark.name=badpath", "dataset=[sample_gsm8k]", "vllm.model_path=/nonexistent/model", *FAST],
        workdir,
    )
    assert done.returncode == 1
    result = load(workdir / "outputs/badpath/results.yaml")["datasets"]["sample_gsm8k"]
    assert result["status"] == "failed" and "engine exited with code" in result["reason"]
    assert result["log_tail"]
    assert load(workdir / "outputs/badpath/configs/metadata.yaml")["run"]["status"] == "failed"


def test_stand_in_exit_at_start_reports_the_exit_code(workdir):
    args, env = broken_engine_args("exit_at_start", workdir / "pids")
    done = run_cli(["benchmark.name=exit", "dataset=[sample_gsm8k]", *args, *FAST], workdir, env=env)
    assert done.returncode == 1
    result = load(workdir / "outputs/exit/results.yaml")["datasets"]["sample_gsm8k"]
    assert "engine exited with code 3" in result["reason"] and "simulated start failure" in result["log_tail"]
    assert_no_leftovers(workdir / "pids")


def test_never_healthy_times_out_and_stops_the_group(workdir):
    args, env = broken_engine_args("never_healthy", workdir / "pids")
    done = run_cli(
        [
            "benchmark.name=slow",
            "dataset=[sample_gsm8k,sample_mmlu]",
            *args,
            *FAST,
            "execution.server_start_timeout_s=4",
        ],
        workdir,
        env=env,
    )
    assert done.returncode == 1
    results = load(workdir / "outputs/slow/results.yaml")["datasets"]
    for short in ("sample_gsm8k", "sample_mmlu"):
        assert results[short]["status"] == "failed" and "not healthy after 4 s" in results[short]["reason"]
    assert len(pids(workdir / "pids")) == 2
    assert_no_leftovers(workdir / "pids")


def test_engine_dies_during_evaluation(workdir):
    args, env = broken_engine_args("dies_on_request", workdir / "pids")
    done = run_cli(
        ["benchmark.name=dies", "dataset=[sample_gsm8k,sample_mmlu]", *args, *FAST], workdir, env=env
    )
    assert done.returncode == 1
    results = load(workdir / "outputs/dies/results.yaml")["datasets"]
    assert results["sample_gsm8k"]["status"] == "failed"
    assert "server died during the evaluation" in results["sample_gsm8k"]["reason"]
    assert results["sample_mmlu"]["status"] == "failed" and "server died" in results["sample_mmlu"]["reason"]
    per_dataset = load(workdir / "outputs/dies/configs/per_dataset/sample_gsm8k.yaml")
    assert per_dataset["result"]["status"] == "failed" and per_dataset["server"]["version"] == "0.0.0-broken"
    assert_no_leftovers(workdir / "pids")


def test_busy_port_is_detected_before_starting(workdir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args, env = broken_engine_args("healthy", workdir / "pids")
        done = run_cli(
            ["benchmark.name=busy", "dataset=[sample_gsm8k]", f"vllm.port={port}", *args, *FAST],
            workdir,
            env=env,
        )
    assert done.returncode == 1
    result = load(workdir / "outputs/busy/results.yaml")["datasets"]["sample_gsm8k"]
    assert f"port {port} on 127.0.0.1 is already in use" in result["reason"]
    assert pids(workdir / "pids") == []  # nothing was started


def test_missing_dataset_files_fail_that_dataset_only_and_requests_failing_are_reported(workdir, browser):
    args, env = broken_engine_args("healthy", workdir / "pids")
    done = run_cli(
        [
            "benchmark.name=missing",
            "dataset=[sample_gsm8k,sample_mmlu]",
            *args,
            *FAST,
            "datasets.sample_gsm8k.data_path=/nonexistent/gsm8k",
            "execution.data_check=warn",  # planning would refuse it; here the dataset fails at its turn
        ],
        workdir,
        env=env,
    )
    assert done.returncode == 1
    results = load(workdir / "outputs/missing/results.yaml")
    assert results["server_starts"] == 1
    gsm8k, mmlu = results["datasets"]["sample_gsm8k"], results["datasets"]["sample_mmlu"]
    assert gsm8k["status"] == "failed" and "dataset files missing: /nonexistent/gsm8k" in gsm8k["reason"]
    # The stand-in answers every completion with HTTP 500: AISBench exits 0, bench_app still says failed.
    assert mmlu["status"] == "failed" and "metrics" not in mmlu
    # Why, as the relay saw it (AISBench itself saw only "Internal Server Error"), counted.
    assert re.match(
        r"(\d+) of \1 requests failed: the server answered 500: broken engine; see ", mmlu["reason"]
    )
    # Its records are kept: every prompt, with the error AISBench got.
    records = [json.loads(line) for line in (workdir / "outputs/missing/sample_mmlu/samples.jsonl").open()]
    assert len(records) == mmlu["samples"] > 0
    assert all(r["error"] and r["correct"] is False and r["prompt"] for r in records), records[0]
    # The report of a failed run: both failures with their reasons, the failed samples browsable.
    report = workdir / "outputs/missing/report.html"
    assert browser.open(report) == []
    failures = browser.js("return document.getElementById('failures').textContent")
    assert "dataset files missing: /nonexistent/gsm8k" in failures and "sample_mmlu: failed" in failures
    browser.js_until(
        "return document.getElementById('sample-count').textContent",
        f"{len(records)} of {len(records)} samples",
    )
    browser.screenshot(workdir / "outputs/missing/report.png", height=1600)
    assert_no_leftovers(workdir / "pids")


def test_requests_a_server_never_answers_fail_the_dataset_saying_why(workdir):
    """A server that accepts requests and never answers: the relay gives up after upstream_timeout_s, the
    dataset fails in bounded time with that cause in its reason, and nothing is left running."""
    args, env = broken_engine_args("never_answers", workdir / "pids")
    done = run_cli(
        ["benchmark.name=mute", "dataset=[sample_gsm8k]", *args, *FAST, "execution.upstream_timeout_s=2"],
        workdir,
        env=env,
    )
    assert done.returncode == 1, (done.stdout + done.stderr)[-3000:]
    gsm8k = load(workdir / "outputs/mute/results.yaml")["datasets"]["sample_gsm8k"]
    assert gsm8k["status"] == "failed", gsm8k
    assert gsm8k["reason"].startswith(
        "1 of 1 requests failed: no answer within execution.upstream_timeout_s (2 s); see sample_gsm8k/"
    ), gsm8k["reason"]
    assert_no_leftovers(workdir / "pids")


def test_sigint_mid_run_stops_everything_and_finalises_the_snapshot(workdir):
    args, env = broken_engine_args("healthy", workdir / "pids")
    import os

    process = subprocess.Popen(
        [PYTHON, "-m", "bench_app", "benchmark.name=int", "dataset=[sample_gsm8k,sample_mmlu]", *args, *FAST],
        cwd=workdir,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # Like a program in a terminal's foreground: a shell that starts a job in the background (as CI
        # harnesses may run `make test`) passes SIGINT on as ignored, and the runner then rightly ignores it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if "evaluating sample_gsm8k" in line:
            time.sleep(2)
            process.send_signal(signal.SIGINT)
            break
    output.append(process.stdout.read())
    assert process.wait(timeout=120) == 130, "".join(output)
    metadata = load(workdir / "outputs/int/configs/metadata.yaml")
    assert metadata["run"]["status"] == "interrupted" and metadata["run"]["ended"]
    results = load(workdir / "outputs/int/results.yaml")
    assert results["status"] == "interrupted"
    assert {r["status"] for r in results["datasets"].values()} <= {"skipped", "failed"}
    for per_dataset in (workdir / "outputs/int/configs/per_dataset").glob("*.yaml"):  # a server, or no key
        assert load(per_dataset).get("server", {}) is not None, per_dataset.name
    assert "status: interrupted" in (workdir / "outputs/int/report.html").read_text().replace('"', "")
    assert_no_leftovers(workdir / "pids")


def test_resume_reruns_only_datasets_that_are_not_ok(workdir):
    args, env = broken_engine_args("never_healthy", workdir / "pids")
    common = [
        "benchmark.name=res",
        "dataset=[sample_gsm8k,sample_mmlu]",
        *args,
        *FAST,
        "execution.server_start_timeout_s=3",
    ]
    assert run_cli(common, workdir, env=env).returncode == 1
    results_file = workdir / "outputs/res/results.yaml"
    results = load(results_file)
    # Pretend gsm8k had succeeded in the first run (what a partially failed real run leaves behind).
    ok = {"status": "ok", "metrics": {"accuracy": 75.0}, "group": 0, "samples": 4, "evaluation_s": 9.5}
    results["datasets"]["sample_gsm8k"] = ok
    results_file.write_text(yaml.safe_dump(results))
    metadata_file = workdir / "outputs/res/configs/metadata.yaml"
    metadata = load(metadata_file)
    metadata["rescored"] = [{"at": "2026-12-01T10:00:00", "datasets": ["sample_gsm8k"], "previous": {}}]
    metadata_file.write_text(yaml.safe_dump(metadata))
    per_dataset = workdir / "outputs/res/configs/per_dataset/sample_gsm8k.yaml"
    recorded = load(per_dataset)["result"]
    again = run_cli([*common, "resume=true"], workdir, env=env)
    assert again.returncode == 1
    resumed = load(results_file)["datasets"]
    # nothing the earlier run recorded of a kept dataset is lost: its entry, its file, the folder's history
    kept = resumed["sample_gsm8k"]
    assert {k: kept[k] for k in ok} == ok and kept["reason"].startswith("kept from the resumed run")
    assert load(per_dataset)["result"] == recorded
    assert load(metadata_file)["rescored"] == metadata["rescored"]
    assert resumed["sample_mmlu"]["status"] == "failed"
    assert len(pids(workdir / "pids")) == 4  # two starts, one per invocation
