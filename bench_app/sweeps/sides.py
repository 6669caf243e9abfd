"""What `bench-app compare` compares: a folder on its command line -> one or more sides of the matrix.

A run folder is one side. A sweep folder gives one side per configuration: its jobs that differ only in
a seed (benchmark.repeats, aisbench.generation_kwargs.seed, vllm.seed) are repeats of one configuration
and pool into one side; a sweep over vllm.dtype=bfloat16,float32 gives two sides. Sides are labelled by
the overrides that tell a sweep's jobs apart (not those every job shares).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from bench_app.common.errors import UserError
from bench_app.records.documents import SweepJob
from bench_app.records.folder import RunFolder
from bench_app.reports.matrix import Side
from bench_app.run.planning.load_levels import split_short
from bench_app.sweeps.jobs import REPEAT_KEYS, collect_jobs, is_sweep_folder
from bench_app.sweeps.statistics import override_key


def _distinct(jobs: Sequence[SweepJob]) -> Dict[int, Tuple[str, ...]]:
    """Each job's overrides that not every job of the sweep has, seeds left out."""
    common = set.intersection(*(set(job.overrides) for job in jobs)) if jobs else set()
    return {
        job.num: tuple(
            sorted(o for o in job.overrides if o not in common and override_key(o) not in REPEAT_KEYS)
        )
        for job in jobs
    }


def sides_of(path: Path) -> List[Side]:
    """The sides a folder stands for (a UserError for what is neither a run nor a sweep)."""
    if RunFolder(path).is_run_folder():
        if path.name.isdigit() and is_sweep_folder(path.parent):  # one job of a sweep: say which
            distinct = _distinct(collect_jobs(path.parent)).get(int(path.name), ())
            return [Side(f"{path.parent.name}/{path.name} {','.join(distinct)}".strip(), [path])]
        return [Side(path.name, [path])]
    if not is_sweep_folder(path):
        raise UserError(
            f"{path} is not a bench_app run folder (no configs/config_snapshot.yaml) "
            "nor a sweep folder (no job folders with .hydra/)"
        )
    jobs = [job for job in collect_jobs(path) if RunFolder(Path(job.dir)).is_run_folder()]
    if not jobs:
        raise UserError(f"sweep {path} has no job that wrote a run folder")
    distinct = _distinct(jobs)
    configurations: Dict[Tuple[str, ...], List[Path]] = {}
    for job in jobs:
        configurations.setdefault(distinct[job.num], []).append(Path(job.dir))
    sides = []
    for overrides, runs in configurations.items():
        label = path.name if len(configurations) == 1 else f"{path.name}[{','.join(overrides)}]"
        sides.append(Side(f"{label} x{len(runs)}" if len(runs) > 1 else label, runs))
    return sides


def level_sides(path: Path) -> List[Side]:
    """A run with execution.load_levels -> one side per level, the lowest (the reference) first."""
    if not RunFolder(path).is_run_folder():
        raise UserError(f"--levels: {path} is not a bench_app run folder (no configs/config_snapshot.yaml)")
    levels = sorted({split_short(short)[1] for short in RunFolder(path).dataset_results()} - {None})
    if len(levels) < 2:
        raise UserError(
            f"--levels: {path} was not run with execution.load_levels (no <dataset>@c<level> results)"
        )
    return [Side(f"{path.name}@c{level}", [path], level=level) for level in levels]
