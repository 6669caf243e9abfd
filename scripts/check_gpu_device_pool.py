"""Check the device pool and leases on a real NVIDIA machine (run by hand there; CI has no GPU).

    python3 scripts/check_gpu_device_pool.py
1. With CUDA_VISIBLE_DEVICES unset and engine=vllm's visibility variable, the pool is what nvidia-smi lists.
2. Two leases of tensor_parallel_size=1 on a one-GPU pool: the second waits until the first is released.
3. A process started with a lease's environment sees exactly the leased GPU (torch), and the variable
   really restricts it (an id outside the pool gives 0 devices).
4. Inside a SLURM job (the variables slurmd sets, with CUDA_VISIBLE_DEVICES unset as on sites that do
   not set it): the pool is SLURM_JOB_GPUS, not every GPU nvidia-smi lists, and a process under its
   lease sees exactly those; a job granted no GPUs gets none of the node's and is told what to ask for.
Prints what it finds; exits 1 if a check fails.
"""

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_app.run.serving.resources import LeaseError, ResourcePool, device_pool  # noqa: E402

PROBE = (
    "import json, torch; print(json.dumps({'count': torch.cuda.device_count(), "
    "'names': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]}))"
)


def probe(env_update):
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env.update(env_update)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    failures = []
    environ = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    devices, variable = device_pool(None, "CUDA_VISIBLE_DEVICES", environ)
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
    print(f"nvidia-smi -L:\n{listed}\ndevice pool: {devices} via {variable}")
    if not devices or variable != "CUDA_VISIBLE_DEVICES":
        failures.append("no device pool detected from nvidia-smi")
    with tempfile.TemporaryDirectory() as lease_dir:
        pool = ResourcePool(Path(lease_dir), devices, variable, 0, holder="gpu-check")
        first = pool.acquire("127.0.0.1", 0, 1, wait_timeout_s=10)
        print(f"lease 1: devices {first.devices}, port {first.port}, environment {first.environment()}")
        seen = probe(first.environment())
        print(f"process under lease 1 sees: {seen}")
        if seen["count"] != 1:
            failures.append(f"expected 1 visible GPU under the lease, saw {seen['count']}")
        outside = probe({"CUDA_VISIBLE_DEVICES": str(len(devices))})  # an id outside the pool
        print(f"process with CUDA_VISIBLE_DEVICES={len(devices)} (outside the pool) sees: {outside}")
        if outside["count"] != 0:
            failures.append("CUDA_VISIBLE_DEVICES did not restrict the process")
        if len(devices) == 1:
            try:
                pool.acquire("127.0.0.1", 0, 1, wait_timeout_s=2)
                failures.append("a second lease got the only GPU while the first held it")
            except LeaseError as error:
                print(f"lease 2 while lease 1 holds the only GPU: {error}")
            threading.Timer(2.0, first.release).start()
            started = time.monotonic()
            second = pool.acquire("127.0.0.1", 0, 1, wait_timeout_s=30)
            print(
                f"lease 2 after lease 1 was released: devices {second.devices}, waited "
                f"{time.monotonic() - started:.1f} s"
            )
            second.release()
        else:
            first.release()
        try:
            pool.acquire("127.0.0.1", 0, len(devices) + 1, wait_timeout_s=5)
            failures.append("tensor_parallel_size larger than the pool was granted")
        except LeaseError as error:
            print(f"tensor_parallel_size {len(devices) + 1}: {error}")
    check_slurm_job(devices, failures)
    print("FAILED: " + "; ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


def check_slurm_job(node_devices, failures) -> None:
    job = {"SLURM_JOB_ID": "41", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "1"}
    granted = node_devices[-1:]
    environ = {**job, "SLURM_JOB_GPUS": ",".join(granted)}
    devices, variable = device_pool(None, "CUDA_VISIBLE_DEVICES", environ)
    print(f"SLURM job granted SLURM_JOB_GPUS={granted}: device pool {devices} via {variable}")
    if devices != granted:
        failures.append(f"SLURM job pool {devices} is not the granted {granted}")
    with tempfile.TemporaryDirectory() as lease_dir:
        lease = ResourcePool(Path(lease_dir), devices, variable, 0, holder="slurm-check").acquire(
            "127.0.0.1", 0, 1, wait_timeout_s=10
        )
        seen = probe(lease.environment())
        print(f"process under the SLURM job's lease ({lease.environment()}) sees: {seen}")
        if seen["count"] != 1:
            failures.append(f"expected the 1 granted GPU under the SLURM lease, saw {seen['count']}")
        lease.release()
    nothing, _ = device_pool(None, "CUDA_VISIBLE_DEVICES", job)
    print(f"SLURM job granted no GPUs: device pool {nothing}")
    if nothing:
        failures.append(f"a SLURM job granted no GPUs got the node's: {nothing}")
    os.environ.update(job)
    try:
        with tempfile.TemporaryDirectory() as lease_dir:
            ResourcePool(Path(lease_dir), [], variable, 1).acquire("127.0.0.1", 0, 1, wait_timeout_s=2)
        failures.append("a GPU engine got a lease in a SLURM job granted no GPUs")
    except LeaseError as error:
        print(f"GPU engine in a SLURM job granted no GPUs: {error}")
    finally:
        for key in job:
            os.environ.pop(key)


if __name__ == "__main__":
    sys.exit(main())
