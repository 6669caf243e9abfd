"""Engine groups of one run side by side (execution.parallel_groups) on leased devices.

The stand-in engine never becomes healthy, so each group ends after execution.server_start_timeout_s;
what is checked is which devices each server was given, and when it ran relative to the other.
"""

from conftest import broken_engine_args, load, pid_alive, run_cli

TWO_GROUPS = [
    "dataset=[sample_gsm8k,sample_longbenchv2]",
    "execution.parallel_groups=2",
    "execution.server_start_timeout_s=4",
    "execution.server_stop_timeout_s=5",
    "engine.device_visibility_env=CUDA_VISIBLE_DEVICES",
]


def _run(tmp_path, name, *args):
    engine, env = broken_engine_args("never_healthy", tmp_path / "pids")
    env["FAKE_ENGINE_ENVFILE"] = str(tmp_path / f"{name}.env")
    env["CUDA_VISIBLE_DEVICES"] = ""  # the pool comes from execution.devices only
    done = run_cli(
        [f"benchmark.name={name}", *TWO_GROUPS, *args, *engine, f"execution.lease_dir={tmp_path / 'leases'}"],
        tmp_path,
        env=env,
    )
    starts = [line.split() for line in (tmp_path / f"{name}.env").read_text().splitlines()]
    return done, load(tmp_path / "outputs" / name / "results.yaml"), starts


def test_groups_run_side_by_side_on_disjoint_devices_recorded_per_dataset(tmp_path):
    done, results, starts = _run(tmp_path, "side", "execution.devices=[0,1]")
    assert done.returncode == 1  # the stand-in never becomes healthy
    servers = results["servers"]
    assert sorted(d for s in servers for d in s["devices"]) == ["0", "1"]
    assert all(s["visible_devices_env"] == "CUDA_VISIBLE_DEVICES" and len(s["devices"]) == 1 for s in servers)
    assert sorted(device for _, device in starts) == ["0", "1"]  # what each server process saw
    # Both started before either could have timed out: side by side.
    assert abs(float(starts[0][0]) - float(starts[1][0])) < 3.5, starts
    for short in ("sample_gsm8k", "sample_longbenchv2"):
        recorded = load(tmp_path / "outputs/side/configs/per_dataset" / f"{short}.yaml")["server"]
        assert recorded["devices"] in (["0"], ["1"]) and recorded["port"] > 0
        assert "not healthy after 4 s" in results["datasets"][short]["reason"]
    assert "CUDA_VISIBLE_DEVICES=" in (tmp_path / "outputs/side/summary.md").read_text()
    for pid in filter(None, (tmp_path / "pids").read_text().split()):
        assert not pid_alive(int(pid))


def test_a_group_waits_for_devices_instead_of_oversubscribing(tmp_path):
    done, results, starts = _run(tmp_path, "wait", "execution.devices=[0,1,2]", "vllm.tensor_parallel_size=2")
    assert done.returncode == 1
    servers = sorted(results["servers"], key=lambda s: s["waited_for_resources_s"])
    assert all(len(s["devices"]) == 2 for s in servers)
    # Three devices, two servers of two: the second waited until the first had stopped.
    assert servers[1]["waited_for_resources_s"] >= 3.5, servers
    assert float(starts[1][0]) - float(starts[0][0]) >= 3.5, starts
    assert "waiting for 2 of devices ['0', '1', '2']" in done.stdout


def test_tensor_parallel_larger_than_the_pool_fails_the_group_with_a_clear_reason(tmp_path):
    engine, env = broken_engine_args("never_healthy", tmp_path / "pids")
    done = run_cli(
        [
            "benchmark.name=toobig",
            "dataset=[sample_gsm8k]",
            "execution.devices=[0]",
            "vllm.tensor_parallel_size=2",
            *engine,
            f"execution.lease_dir={tmp_path / 'leases'}",
        ],
        tmp_path,
        env=env,
    )
    assert done.returncode == 1
    result = load(tmp_path / "outputs/toobig/results.yaml")["datasets"]["sample_gsm8k"]
    assert result["status"] == "failed"
    assert "tensor_parallel_size 2 needs 2 devices, but the device pool has 1: ['0']" in result["reason"]
    assert not (tmp_path / "pids").exists()  # nothing was started
