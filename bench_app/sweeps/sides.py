"""What `bench-app compare` compares: a folder on its command line -> one or more sides of the matrix.

A run folder is one side. A sweep folder gives one side per configuration: its jobs that differ only in
a seed (benchmark.repeats, aisbench.generation_kwargs.seed, vllm.seed) are repeats of one configuration
and pool into one side; a sweep over vllm.dtype=bfloat16,float32 gives two sides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

from bench_app.common.errors import UserError
from bench_app.reports.matrix import Side
from bench_app.rundir.layout import RunFolder
from bench_app.sweeps.jobs import REPEAT_KEYS, collect_jobs, is_sweep_folder
from bench_app.sweeps.statistics import override_key


def sides_of(path: Path) -> List[Side]:
    """The sides a folder stands for (a UserError for what is neither a run nor a sweep)."""
    if RunFolder(path).is_run_folder():
        return [Side(path.name, [path])]
    if not is_sweep_folder(path):
        raise UserError(
            f"{path} is not a bench_app run folder (no configs/config_snapshot.yaml) "
            "nor a sweep folder (no job folders with .hydra/)"
        )
    configurations: Dict[Tuple[str, ...], List[Path]] = {}
    for job in collect_jobs(path):
        if RunFolder(Path(job.dir)).is_run_folder():
            rest = tuple(sorted(o for o in job.overrides if override_key(o) not in REPEAT_KEYS))
            configurations.setdefault(rest, []).append(Path(job.dir))
    if not configurations:
        raise UserError(f"sweep {path} has no job that wrote a run folder")
    sides = []
    for overrides, runs in configurations.items():
        label = path.name if len(configurations) == 1 else f"{path.name}[{','.join(overrides) or 'base'}]"
        sides.append(Side(f"{label} x{len(runs)}" if len(runs) > 1 else label, runs))
    return sides
