"""hydra/launcher=slurm against a real single-node SLURM cluster: munge, MariaDB, slurmdbd, slurmctld and
slurmd from Debian's packages, started by scripts/slurm_local.sh in a temporary folder on ports of its own
(so a cluster a user runs with the same script is left alone) and stopped, by pid, at the end.

The tests skip, saying why, where the daemons cannot run (not root, or the packages are missing);
`make test` installs them (scripts/setup.sh slurm) wherever it can.
"""

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, broken_engine_args, load, pid_alive, run_cli, wait_until

from bench_app.common.errors import LeaseError
from bench_app.run.planning import slurm
from bench_app.run.planning.devices import device_pool
from bench_app.run.serving.resources import ResourcePool
from bench_app.sweeps.jobs import collect_jobs

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT / "scripts" / "slurm_local.sh"
DAEMONS = ("slurmctld", "slurmd", "slurmdbd", "sacctmgr", "munged", "mariadbd", "sbatch", "squeue", "scancel")
SLURM_SWEEP = ["-m", "hydra/launcher=slurm", "hydra.launcher.gpus_per_task=null", "hydra.launcher.mem_gb=1"]


def _why_not() -> str:
    if os.geteuid() != 0:
        return "the SLURM daemons need root"
    missing = [tool for tool in DAEMONS if not shutil.which(tool)]
    return f"not installed: {', '.join(missing)} (scripts/setup.sh slurm)" if missing else ""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """SLURM_CONF of a running cluster; afterwards every daemon the script started is gone."""
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    state = tmp_path_factory.mktemp("slurm_local")
    env = dict(os.environ, SLURM_LOCAL_DIR=str(state), SLURM_LOCAL_PORT="16817")
    started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    pids = {path.stem: int(path.read_text()) for path in (state / "run").glob("*.pid")}
    assert {"slurmctld", "slurmd", "slurmdbd", "mariadb"} <= set(pids), pids
    try:
        yield {"SLURM_CONF": str(state / "slurm.conf")}
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=300)
        assert stopped.returncode == 0, stopped.stderr
        assert [name for name, pid in pids.items() if pid_alive(pid)] == []


def _squeue(env, *args):
    done = subprocess.run(
        ["squeue", "-h", *args], env=dict(os.environ, **env), capture_output=True, text=True
    )
    return done.stdout.split()


def _start_never_healthy_sweep(cluster, tmp_path, *args):
    """A two-job SLURM sweep whose servers never become healthy (each writes its pid and its child's to
    tmp_path/pids); returns the running sweep and its folder."""
    engine, fake_env = broken_engine_args("never_healthy", tmp_path / "pids")
    sweep_dir = tmp_path / "sweep"
    sweep = subprocess.Popen(
        [PYTHON, "-m", "bench_app", *SLURM_SWEEP, *engine, "hydra.launcher.cpus_per_task=1",
         "dataset=sample_gsm8k", "vllm.max_num_seqs=4,8", f"hydra.sweep.dir={sweep_dir}", *args],
        cwd=tmp_path, env=dict(os.environ, **cluster, **fake_env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return sweep, sweep_dir


def _lines(path: Path):
    return path.read_text().split() if path.exists() else []


def _processes_of_job(slurm_job_id: str):
    """Processes (any user) whose environment says they belong to this SLURM job."""
    marker = f"SLURM_JOB_ID={slurm_job_id}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker in environ.read_bytes().split(b"\0") and pid_alive(int(environ.parent.name)):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


# ---------------------------------------------------------------- against the cluster
def test_dry_run_sweep_runs_as_a_job_array_and_reproduces_locally(cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    done = run_cli(
        [
            *SLURM_SWEEP,
            "hydra.launcher.cpus_per_task=1",
            "execution.dry_run=true",
            "vllm.max_num_seqs=4,8,16,32",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
        env=cluster,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "slurm: submitted 4 job(s) as job array" in done.stderr
    assert " done" in done.stderr and "4 done" in done.stderr  # progress while it waited
    record = load(sweep_dir / "slurm_jobs.yaml")["jobs"]
    array = record[0]["job_id"].split("_")[0]
    assert [job["job_id"] for job in record] == [f"{array}_{i}" for i in range(4)]
    summary = load(sweep_dir / "results.yaml")
    assert summary["sweep"]["status"] == "dry_run" and summary["sweep"]["job_status"] == {"dry_run": 4}
    for entry, job in zip(summary["jobs"], record, strict=True):
        assert (entry["slurm_job_id"], entry["slurm_state"]) == (job["job_id"], "COMPLETED")
        configs = sweep_dir / str(job["num"]) / "configs"
        for name in ("config_original.yaml", "config_snapshot.yaml", "metadata.yaml", "reproduce.sh"):
            assert (configs / name).is_file(), name
        assert sorted(p.name for p in (configs / "per_dataset").iterdir()) == [
            "sample_ceval.yaml",
            "sample_gsm8k.yaml",
            "sample_longbenchv2.yaml",
            "sample_mmlu.yaml",
        ]
        metadata = load(configs / "metadata.yaml")
        assert metadata["slurm"]["job_id"] == job["job_id"]
        assert metadata["slurm"]["cpus_per_task"] == 1 and len(metadata["slurm"]["cpu_affinity"]) == 1
        assert metadata["command"]["full_command"].startswith("python -m bench_app execution.dry_run=True")
    assert f"| 1 ({array}_1) |" in (sweep_dir / "summary.md").read_text()

    # reproduce.sh of a SLURM job: a single local run (no SLURM, no sweep) with the same effective config
    job = sweep_dir / "1"
    local = tmp_path / "local"
    local.mkdir()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    again = subprocess.run(
        [str(job / "configs" / "reproduce.sh")], cwd=local, env=environ, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    (run_dir,) = (local / "outputs").iterdir()
    metadata = load(run_dir / "configs" / "metadata.yaml")
    assert metadata["run"]["status"] == "dry_run" and "slurm" not in metadata and "sweep" not in metadata
    original = load(job / "configs" / "metadata.yaml")
    assert metadata["fingerprint"] == original["fingerprint"]
    for plan in (job / "configs" / "per_dataset").iterdir():
        ours = load(run_dir / "configs" / "per_dataset" / plan.name)
        assert (ours["vllm"], ours["aisbench"]) == (load(plan)["vllm"], load(plan)["aisbench"])


@pytest.mark.e2e
def test_real_tiny_job_under_slurmd_leaves_no_process(cluster, tmp_path):
    sweep_dir = tmp_path / "sweep"
    done = run_cli(
        [
            *SLURM_SWEEP,
            "hydra.launcher.cpus_per_task=2",
            "hydra.launcher.mem_gb=4",
            "hydra.launcher.timeout_min=20",
            "dataset=sample_gsm8k",
            "aisbench.num_prompts=1",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
        env=cluster,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (job,) = load(sweep_dir / "results.yaml")["jobs"]
    assert job["status"] == "completed" and job["slurm_state"] == "COMPLETED"
    assert job["datasets"]["sample_gsm8k"]["status"] == "ok"
    metadata = load(sweep_dir / "0" / "configs" / "metadata.yaml")
    assert metadata["slurm"]["cpus_per_task"] == 2
    assert _processes_of_job(metadata["slurm"]["slurm_job_id"]) == []


def test_cancelled_and_timed_out_jobs_fail_with_slurms_state(cluster, tmp_path):
    sweep, sweep_dir = _start_never_healthy_sweep(
        cluster, tmp_path, "hydra.launcher.timeout_min=1", "execution.server_start_timeout_s=600"
    )
    try:
        wait_until(lambda: (sweep_dir / "slurm_jobs.yaml").exists(), 300, "the SLURM record")
        first, second = (job["job_id"] for job in load(sweep_dir / "slurm_jobs.yaml")["jobs"])
        servers = lambda: len(_lines(tmp_path / "pids")) == 4  # noqa: E731 - each: a server and its child
        wait_until(servers, 120, "both jobs' servers")
        subprocess.run(["scancel", first], env=dict(os.environ, **cluster), check=True)
        # the other one runs into SLURM's time limit (1 minute; SLURM checks limits every 30 s)
        out, err = sweep.communicate(timeout=400)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 1, err[-3000:]
    assert "1 running" in err and "ended otherwise" in err  # progress while it waited
    jobs = {job["slurm_job_id"]: job for job in load(sweep_dir / "results.yaml")["jobs"]}
    assert (jobs[first]["status"], jobs[first]["slurm_state"]) == ("failed", "CANCELLED")
    assert (jobs[second]["status"], jobs[second]["slurm_state"]) == ("failed", "TIMEOUT")
    assert f"SLURM ended job {first} as CANCELLED" in jobs[first]["error"]
    assert f"SLURM ended job {second} as TIMEOUT" in jobs[second]["error"]
    summary = (sweep_dir / "summary.md").read_text()
    assert "status: **failed**" in summary and "as TIMEOUT" in summary and "as CANCELLED" in summary
    pids = [int(line) for line in (tmp_path / "pids").read_text().split()]
    assert len(pids) == 4 and not [pid for pid in pids if pid_alive(pid)]  # both servers, children too


def test_ctrl_c_cancels_the_sweeps_jobs_and_writes_the_summary(cluster, tmp_path):
    sweep, sweep_dir = _start_never_healthy_sweep(cluster, tmp_path)
    try:
        wait_until(lambda: (sweep_dir / "slurm_jobs.yaml").exists(), 300, "the SLURM record")
        ids = [job["job_id"] for job in load(sweep_dir / "slurm_jobs.yaml")["jobs"]]
        running = lambda: set(ids) <= set(_squeue(cluster, "-t", "RUNNING", "-o", "%i"))  # noqa: E731
        wait_until(running, 300, "both jobs to run")
        wait_until(lambda: len(_lines(tmp_path / "pids")) == 4, 300, "both servers")
        sweep.send_signal(signal.SIGINT)
        out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 130, err[-3000:]
    assert "cancelling the sweep's jobs" in err
    assert not set(ids) & set(_squeue(cluster, "-o", "%i"))  # nothing of the sweep left in the queue
    results = load(sweep_dir / "results.yaml")
    assert results["sweep"]["status"] == "interrupted"
    # a job sees the sweep's interrupt marker too and may have stopped itself before scancel reached it
    assert {job["status"] for job in results["jobs"]} == {"interrupted"}
    assert {job["slurm_state"] for job in results["jobs"]} <= {"CANCELLED", "COMPLETED"}
    pids = [int(line) for line in (tmp_path / "pids").read_text().split()]
    assert not [pid for pid in pids if pid_alive(pid)]


# ---------------------------------------------------------------- without a cluster
def test_states_of_array_tasks_as_squeue_and_sacct_print_them():
    assert slurm._parse("8_0|RUNNING\n8_[1-3,5%2]|PENDING\n9|CANCELLED by 0\n") == {
        "8_0": "RUNNING",
        "8_1": "PENDING",
        "8_2": "PENDING",
        "8_3": "PENDING",
        "8_5": "PENDING",
        "9": "CANCELLED",
    }


def test_device_pool_inside_a_slurm_job_is_what_slurm_granted():
    job = {"SLURM_JOB_ID": "12", "SLURM_ARRAY_JOB_ID": "11", "SLURM_ARRAY_TASK_ID": "1"}
    assert device_pool(None, "CUDA_VISIBLE_DEVICES", {**job, "SLURM_JOB_GPUS": "2,3"}) == (
        ["2", "3"],
        "CUDA_VISIBLE_DEVICES",
    )
    # SLURM's own CUDA_VISIBLE_DEVICES (renumbered under cgroups) wins over the node's ids
    granted = {**job, "SLURM_JOB_GPUS": "2,3", "CUDA_VISIBLE_DEVICES": "0,1"}
    assert device_pool(None, "CUDA_VISIBLE_DEVICES", granted)[0] == ["0", "1"]
    # granted nothing: an empty pool (never the node's other GPUs), and a lease says what to ask for
    assert device_pool(None, "CUDA_VISIBLE_DEVICES", job) == ([], "CUDA_VISIBLE_DEVICES")
    assert device_pool(None, None, {**job, "SLURM_JOB_GPUS": "0"}) == ([], None)  # a CPU engine


def test_a_gpu_engine_in_a_slurm_job_without_gpus_is_told_what_to_ask_for(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "12")
    pool = ResourcePool(tmp_path, [], "CUDA_VISIBLE_DEVICES", 1)
    with pytest.raises(LeaseError, match="granted no GPUs.*hydra.launcher.gpus_per_task"):
        pool.acquire("127.0.0.1", 0, 2, wait_timeout_s=1)


def test_cpus_per_task_binds_the_job_when_slurm_did_not(tmp_path):
    probe = (
        "import os, json; from bench_app.run.planning import slurm; "
        "chosen = slurm.keep_to_cpus_per_task(os.environ); "
        "print(json.dumps([chosen, sorted(os.sched_getaffinity(0))]))"
    )
    cpus = sorted(os.sched_getaffinity(0))
    env = dict(os.environ, SLURM_JOB_ID="5", SLURM_CPUS_PER_TASK="1", SLURM_ARRAY_TASK_ID="1")
    out = subprocess.run([PYTHON, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    chosen, affinity = json.loads(out)
    if len(cpus) < 2:
        assert chosen is None and affinity == cpus
    else:
        assert chosen == affinity == [cpus[1]]  # task 1 of the array takes the second CPU


def test_a_job_slurm_cancelled_before_it_started_is_in_the_summary(tmp_path):
    record = slurm.SlurmRecord(
        [slurm.SlurmJob(0, "7_0", ["a=1"], "COMPLETED"), slurm.SlurmJob(1, "7_1", ["a=2"], "CANCELLED")]
    )
    record.write(tmp_path)
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / "job.yaml").write_text("num: 0\noverrides: [a=1]\nexit_code: 0\n")
    jobs = collect_jobs(tmp_path)
    assert [(job.num, job.status, job.slurm_state) for job in jobs] == [
        (0, "completed", "COMPLETED"),
        (1, "failed", "CANCELLED"),
    ]
    assert jobs[1].error == "SLURM ended job 7_1 as CANCELLED (it left no run folder)"
