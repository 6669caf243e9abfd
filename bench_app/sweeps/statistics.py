"""Repeat statistics of a sweep: jobs that differ only in a seed, each metric's mean, std and 95% CI."""

from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Sequence, Tuple

from bench_app.records.documents import SweepJob
from bench_app.sweeps.jobs import REPEAT_KEYS, _parse_override


def t_critical_95(df: int) -> float:
    """Two-sided 95% Student t critical value, to three decimals as in the printed tables."""
    if df < 1:
        return math.nan
    from scipy.stats import t

    return round(float(t.ppf(0.975, df)), 3)


def describe(values: Sequence[float]) -> Dict[str, Any]:
    """n, mean, sample std, min, max and the 95% t confidence interval of the mean."""
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = t_critical_95(n - 1) * std / math.sqrt(n) if n > 1 else math.nan
    rounded = lambda x: round(x, 4)  # noqa: E731
    return {
        "n": n,
        "mean": rounded(mean),
        "std": rounded(std),
        "min": rounded(min(values)),
        "max": rounded(max(values)),
        "ci95": [rounded(mean - half), rounded(mean + half)] if n > 1 else None,
    }


def override_key(override: str) -> str:
    parsed = _parse_override(override)
    return parsed.key_or_group if parsed is not None else override.split("=", 1)[0]


def _seed_of(job: SweepJob) -> str:
    override = next(o for o in job.overrides if override_key(o) in REPEAT_KEYS)
    parsed = _parse_override(override)
    return parsed.get_value_element_as_str() if parsed is not None else override.split("=", 1)[1]


def repeat_groups(jobs: Sequence[SweepJob]) -> List[Tuple[List[str], List[SweepJob]]]:
    """Jobs that differ only in a seed override, grouped by everything else (2+ jobs per group)."""
    groups: Dict[Tuple[str, ...], List[SweepJob]] = {}
    for job in jobs:
        seeds = [o for o in job.overrides if override_key(o) in REPEAT_KEYS]
        if not seeds:
            continue
        rest = tuple(sorted(o for o in job.overrides if override_key(o) not in REPEAT_KEYS))
        groups.setdefault(rest, []).append(job)
    return [(list(config), members) for config, members in groups.items() if len(members) > 1]


def repeat_statistics(jobs: Sequence[SweepJob]) -> List[Dict[str, Any]]:
    """Per repeat group and dataset: statistics of every numeric metric over the jobs where it is ok."""
    report = []
    for config, members in repeat_groups(jobs):
        datasets: Dict[str, Any] = {}
        shorts = sorted({s for job in members for s in job.datasets})
        for short in shorts:
            ok = [job.datasets[short] for job in members if short in job.datasets]
            ok = [entry for entry in ok if entry.status == "ok"]
            metrics: Dict[str, Any] = {}
            names = sorted(
                {k for entry in ok for k, v in entry.metrics.items() if isinstance(v, (int, float))}
            )
            for name in names:
                values = [float(e.metrics[name]) for e in ok if isinstance(e.metrics.get(name), (int, float))]
                if values:
                    metrics[name] = describe(values)
            datasets[short] = {"ok_runs": len(ok), "runs": len(members), "metrics": metrics}
        report.append(
            {
                "config": config,
                "jobs": [j.num for j in members],
                "seeds": [_seed_of(j) for j in members],
                "datasets": datasets,
            }
        )
    return report
