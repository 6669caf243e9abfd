"""Port and device leases under contention (bench_app.run.serving.resources), real processes and flocks."""

import multiprocessing
import os
import signal
import socket
import time

import pytest
from conftest import wait_until

from bench_app.run.planning.devices import device_pool
from bench_app.run.serving.resources import LeaseError, ResourcePool

CTX = multiprocessing.get_context("fork")


def _hold(lease_dir, devices, max_cpu, tp, hold_s, queue, port=0, env="CUDA_VISIBLE_DEVICES"):
    pool = ResourcePool(lease_dir, devices, env if devices else None, max_cpu, holder="test")
    lease = pool.acquire("127.0.0.1", port, tp, wait_timeout_s=60)
    start = time.monotonic()
    time.sleep(hold_s)
    end = time.monotonic()
    queue.put(
        {
            "pid": os.getpid(),
            "devices": lease.devices,
            "slot": lease.cpu_slot,
            "port": lease.port,
            "env": lease.environment(),
            "start": start,
            "end": end,
            "waited": lease.waited_s,
        }
    )
    lease.release()


def _run_jobs(n, **kwargs):
    queue = CTX.Queue()
    jobs = [CTX.Process(target=_hold, kwargs={**kwargs, "queue": queue}) for _ in range(n)]
    for job in jobs:
        job.start()
    records = [queue.get(timeout=120) for _ in jobs]
    for job in jobs:
        job.join(10)
    return records


def _overlap(a, b):
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_device_pool_comes_from_config_then_visibility_variables_then_nothing_on_cpu():
    assert device_pool(["4", 5], "CUDA_VISIBLE_DEVICES", {}) == (["4", "5"], "CUDA_VISIBLE_DEVICES")
    assert device_pool(None, "CUDA_VISIBLE_DEVICES", {"CUDA_VISIBLE_DEVICES": "2,3"}) == (
        ["2", "3"],
        "CUDA_VISIBLE_DEVICES",
    )
    assert device_pool(None, None, {"ASCEND_RT_VISIBLE_DEVICES": "0,1,2"}) == (
        ["0", "1", "2"],
        "ASCEND_RT_VISIBLE_DEVICES",
    )
    assert device_pool(None, None, {}) == ([], None)  # the CPU build: no pool, CPU slots instead


def test_more_jobs_than_devices_wait_and_never_share_a_device_or_port(tmp_path):
    records = _run_jobs(4, lease_dir=tmp_path, devices=["0", "1"], max_cpu=0, tp=1, hold_s=1.5)
    for i, a in enumerate(records):
        assert len(a["devices"]) == 1 and a["env"] == {"CUDA_VISIBLE_DEVICES": a["devices"][0]}
        for b in records[i + 1 :]:
            if _overlap(a, b):
                assert a["devices"] != b["devices"], (a, b)
                assert a["port"] != b["port"], (a, b)
    # Two devices, four jobs of 1.5 s: at least two jobs had to wait for a device.
    assert sum(1 for r in records if r["waited"] >= 1.0) >= 2, records


def test_tensor_parallel_servers_get_disjoint_device_sets(tmp_path):
    records = _run_jobs(2, lease_dir=tmp_path, devices=["0", "1", "2", "3"], max_cpu=0, tp=2, hold_s=1.0)
    assert all(len(r["devices"]) == 2 for r in records)
    assert set(records[0]["devices"]).isdisjoint(records[1]["devices"])
    assert _overlap(records[0], records[1])  # four devices: both ran at once, nobody waited long
    assert {r["env"]["CUDA_VISIBLE_DEVICES"] for r in records} == {",".join(r["devices"]) for r in records}


def test_cpu_slots_bound_concurrent_servers(tmp_path):
    records = _run_jobs(3, lease_dir=tmp_path, devices=[], max_cpu=1, tp=1, hold_s=0.8)
    assert all(r["slot"] == 0 and r["env"] == {} for r in records)
    for i, a in enumerate(records):
        for b in records[i + 1 :]:
            assert not _overlap(a, b), "one CPU slot: servers must run one after another"


def test_impossible_request_fails_at_once_naming_the_values(tmp_path):
    pool = ResourcePool(tmp_path, ["0", "1"], "CUDA_VISIBLE_DEVICES", 2)
    started = time.monotonic()
    with pytest.raises(
        LeaseError, match=r"tensor_parallel_size 4 needs 4 devices, but the device pool has 2: \['0', '1'\]"
    ):
        pool.acquire("127.0.0.1", 0, 4, wait_timeout_s=60)
    assert time.monotonic() - started < 1


def test_waiting_times_out_naming_what_is_busy(tmp_path):
    holder = ResourcePool(tmp_path, [], None, 1, holder="outputs/first").acquire("127.0.0.1", 0, 1, 5)
    try:
        with pytest.raises(LeaseError, match=r"one of 1 CPU server slot\(s\) \(execution.max_cpu_servers\)"):
            ResourcePool(tmp_path, [], None, 1).acquire("127.0.0.1", 0, 1, wait_timeout_s=1.5)
    finally:
        holder.release()


def test_fixed_port_leased_by_another_job_waits_and_foreign_busy_port_fails(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    first = ResourcePool(tmp_path, [], None, 4).acquire("127.0.0.1", port, 1, 5)
    messages = []
    with pytest.raises(LeaseError, match=f"waited .* for port {port}"):
        ResourcePool(tmp_path, [], None, 4).acquire(
            "127.0.0.1", port, 1, wait_timeout_s=1.5, on_wait=messages.append
        )
    assert messages and f"port {port}" in messages[0] and "pid" in messages[0]
    first.release()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen(1)
        with pytest.raises(LeaseError, match=f"port {port} on 127.0.0.1 is already in use"):
            ResourcePool(tmp_path, [], None, 4).acquire("127.0.0.1", port, 1, wait_timeout_s=1.5)


def _flock_held(path) -> bool:
    """Whether another process holds the exclusive flock on path (a lease)."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_lease_of_a_killed_job_is_free_again(tmp_path):
    queue = CTX.Queue()
    job = CTX.Process(
        target=_hold, kwargs=dict(lease_dir=tmp_path, devices=["0"], max_cpu=0, tp=1, hold_s=60, queue=queue)
    )
    job.start()
    pool = ResourcePool(tmp_path, ["0"], "CUDA_VISIBLE_DEVICES", 0)
    # The lease held (its flock taken), not merely its file created: what the refusal below needs.
    wait_until(lambda: _flock_held(tmp_path / "device-0.lock"), 120, "the job to hold device 0")
    with pytest.raises(LeaseError, match="waited"):
        pool.acquire("127.0.0.1", 0, 1, wait_timeout_s=1)
    os.kill(job.pid, signal.SIGKILL)
    job.join(10)
    lease = pool.acquire("127.0.0.1", 0, 1, wait_timeout_s=5)
    assert lease.devices == ["0"]
    lease.release()
