"""Whatever kills the runner (SIGKILL here, like the OOM killer), no engine or evaluator process of
its run outlives it for more than a few seconds, and the next bench_app command marks the run abandoned."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, broken_engine_args, load, pid_alive, run_cli, wait_until

from bench_app.common.processes import group_alive


def _children(pid: int):
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _kill_runner_when(workdir, args, ready, timeout=300, env=None):
    """Start the runner, wait until `ready()`, SIGKILL it; return the process groups it had started."""
    runner = subprocess.Popen(
        [PYTHON, "-m", "bench_app", *args],
        cwd=workdir,
        env=dict(os.environ, **(env or {})),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: ready() or runner.poll() is not None, timeout, "the runner to reach the point")
        assert runner.poll() is None, "the runner ended before it could be killed"
        groups = {os.getpgid(child) for child in _children(runner.pid) if Path(f"/proc/{child}").exists()}
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait()
    finally:
        if runner.poll() is None:
            runner.kill()
    return groups


def _assert_gone_and_abandoned(workdir, name, groups):
    assert groups, "no child process group was found before the kill"
    # The watchdogs stop everything within seconds; 60 s leaves room for a machine that is slow or busy.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(group_alive(g) for g in groups):
        time.sleep(0.5)
    assert not [g for g in groups if group_alive(g)], "processes of the killed run are still alive after 60 s"
    metadata = load(workdir / "outputs" / name / "configs" / "metadata.yaml")
    assert metadata["run"]["status"] == "running"  # nobody could finalise it
    done = run_cli(["benchmark.name=next", "execution.dry_run=true"], workdir)
    assert done.returncode == 0, done.stderr
    assert "abandoned" in done.stdout + done.stderr
    metadata = load(workdir / "outputs" / name / "configs" / "metadata.yaml")
    assert metadata["run"]["status"] == "abandoned" and metadata["run"]["abandoned_found"]


@pytest.mark.e2e
def test_sigkill_of_the_runner_while_the_real_vllm_starts_takes_the_server_down(workdir):
    log = workdir / "outputs" / "k_start" / "logs" / "engine_group0.log"
    groups = _kill_runner_when(
        workdir,
        ["benchmark.name=k_start", "dataset=[sample_gsm8k]", "aisbench.num_prompts=1"],
        lambda: log.exists() and log.stat().st_size > 0,
    )
    _assert_gone_and_abandoned(workdir, "k_start", groups)


@pytest.mark.e2e
def test_sigkill_of_the_runner_while_aisbench_evaluates_takes_both_groups_down(workdir):
    log = workdir / "outputs" / "k_eval" / "sample_gsm8k" / "aisbench.log"
    groups = _kill_runner_when(
        workdir,
        ["benchmark.name=k_eval", "dataset=[sample_gsm8k]", "aisbench.num_prompts=1"],
        lambda: log.exists(),
    )
    assert len(groups) >= 2  # the server's group and the evaluator's group (plus their watchdogs)
    _assert_gone_and_abandoned(workdir, "k_eval", groups)
    done = run_cli(
        [
            "benchmark.name=k_eval",
            "resume=true",
            "dataset=[sample_gsm8k]",
            "aisbench.num_prompts=1",
            "execution.dry_run=true",
        ],
        workdir,
    )
    assert done.returncode == 0, done.stderr  # an abandoned run can be resumed


def test_sigkill_of_a_sweep_parent_takes_its_servers_down(workdir):
    engine, env = broken_engine_args("never_healthy", workdir / "pids")
    pidfile = workdir / "pids"
    args = [
        "-m",
        "hydra.sweep.dir=outputs/sweeps/killed",
        "dataset=[sample_gsm8k]",
        "vllm.max_num_seqs=4,8",
        "execution.server_start_timeout_s=300",
        *engine,
    ]
    runner = subprocess.Popen(
        [PYTHON, "-m", "bench_app", *args],
        cwd=workdir,
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_until(lambda: pidfile.exists() and len(pidfile.read_text().split()) >= 2, 300, "the stand-in engine")
    pids = [int(p) for p in pidfile.read_text().split()]
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    deadline = time.monotonic() + 60  # within seconds; room for a slow or busy machine

    def alive():
        return [p for p in pids if pid_alive(p)]

    while time.monotonic() < deadline and alive():
        time.sleep(0.5)
    assert not alive(), "the engine of the killed sweep is still alive after 60 s"
    done = run_cli(["benchmark.name=after_sweep", "execution.dry_run=true"], workdir)
    assert done.returncode == 0, done.stderr
    job = load(workdir / "outputs/sweeps/killed/0/configs/metadata.yaml")
    assert job["run"]["status"] == "abandoned" and job["run"]["abandoned_found"]


def test_sigkill_of_the_runner_takes_every_replica_down(workdir):
    engine, env = broken_engine_args("never_healthy", workdir / "pids")
    pidfile = workdir / "pids"
    groups = _kill_runner_when(
        workdir,
        ["benchmark.name=k_replicas", "dataset=[sample_gsm8k]", "execution.replicas=2", *engine],
        lambda: pidfile.exists() and len(pidfile.read_text().split()) >= 4,  # both replicas, their children
        timeout=300,
        env=env,
    )
    assert len(groups) >= 2  # one process group per replica
    _assert_gone_and_abandoned(workdir, "k_replicas", groups)
    assert not [p for p in map(int, pidfile.read_text().split()) if pid_alive(p)]
