"""The devices an engine configuration's servers need, the pool they come from, and how many servers of
one configuration fit (execution.replicas): worked out at planning; the leases are run.serving.resources'."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import List, Mapping, Optional, Sequence, Tuple

from bench_app.common.errors import UserError
from bench_app.run.planning import slurm

VISIBILITY_VARIABLES = ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES")


def devices_per_server(engine_args: Mapping[str, object]) -> int:
    """Devices one server of these engine args occupies: tensor x pipeline x (vLLM's own) data parallel."""
    extra = engine_args.get("extra_args") or {}
    size = int(engine_args.get("tensor_parallel_size") or 1)
    for name in ("pipeline_parallel_size", "data_parallel_size"):
        size *= int(extra.get(name) or 1)  # type: ignore[union-attr]
    return size


def device_pool(
    configured: Optional[Sequence], engine_visibility_env: Optional[str], environ: Mapping[str, str]
) -> Tuple[List[str], Optional[str]]:
    """The device ids servers may use, and the variable that exposes them to a server.

    execution.devices wins; otherwise what CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES expose;
    inside a SLURM job, the GPUs SLURM granted (SLURM_STEP_GPUS / SLURM_JOB_GPUS) and nothing else;
    otherwise, for an engine that names a visibility variable, the GPUs nvidia-smi lists. An engine
    without one (vLLM's CPU build) has an empty pool.
    """
    if configured is not None:
        return [str(d) for d in configured], engine_visibility_env
    for variable in VISIBILITY_VARIABLES:
        value = environ.get(variable, "").strip()
        if value:
            return [d.strip() for d in value.split(",") if d.strip()], variable
    if slurm.in_job(environ):  # the node's other GPUs belong to other jobs
        return (slurm.granted_gpus(environ) if engine_visibility_env else []), engine_visibility_env
    if engine_visibility_env == "CUDA_VISIBLE_DEVICES" and shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
        return [
            str(i) for i, line in enumerate(listed.splitlines()) if line.startswith("GPU ")
        ], engine_visibility_env
    return [], engine_visibility_env


def replica_count(
    setting: object,
    devices_needed: int,
    pool: List[str],
    max_cpu_servers: int,
    side_by_side: int = 1,
    cores_per_server: Optional[int] = None,
) -> int:
    """execution.replicas as a number of servers per engine group, checked against what the machine holds
    (side_by_side groups at once); raises UserError naming the numbers when it cannot hold them."""
    text = str(setting).strip().lower()
    where = "execution.replicas"
    if pool:
        holds = len(pool) // (devices_needed * side_by_side)
        unit = f"{devices_needed} device(s) each"
        capacity = f"the device pool has {len(pool)}: {pool} (execution.devices or the visibility variable)"
    else:
        holds = max_cpu_servers // side_by_side
        unit = "one CPU slot each"
        capacity = f"execution.max_cpu_servers is {max_cpu_servers}"
        if cores_per_server:
            cores = os.cpu_count() or 1
            holds = min(holds, cores // (cores_per_server * side_by_side))
            capacity += f" and this machine has {cores} cores for {cores_per_server} per server"
    if side_by_side > 1:
        capacity += f", shared by {side_by_side} engine groups side by side (execution.parallel_groups)"
    if text == "auto":
        if holds < 1:
            raise UserError(f"{where}=auto: not even one server of {unit} fits; {capacity}")
        return holds
    try:
        count = int(text)
    except ValueError:
        raise UserError(f"{where}={setting!r}: give a number of servers (1, 2, ...) or auto") from None
    if count < 1:
        raise UserError(f"{where}={count}: at least 1 server per engine configuration")
    if count > max(holds, 1):
        raise UserError(
            f"{where}={count} needs {count} servers of {unit} at once, but {capacity}: it holds "
            f"{max(holds, 0)}. Lower execution.replicas (or use auto), or give more devices."
        )
    return count
