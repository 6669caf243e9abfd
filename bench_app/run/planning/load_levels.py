"""Accuracy under load (execution.load_levels): one dataset, one server, several concurrency levels.

Each dataset becomes one planned dataset per level, `<short>@c<level>` (its own folder, samples, answers
and result), evaluated with `batch_size` = level requests in flight on the group's one server. The levels
of a dataset run back to back in a shuffled order (seeded by the run's name and time, recorded in
results.yaml), so a slow drift of the machine does not line up with the level. The lowest level is the
reference the others are compared with (bench_app.reports.load).

Each level's answers are its own in the request cache (the level is part of the key): a level is never
answered with another level's answers, and resume=true continues each level from its own.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any, List, Optional, Sequence, Set, Tuple

from bench_app.common.errors import UserError

SEPARATOR = "@c"
_LEVEL_SHORT = re.compile(rf"^(?P<base>.+){re.escape(SEPARATOR)}(?P<level>\d+)$")


def level_short(short: str, level: int) -> str:
    return f"{short}{SEPARATOR}{level}"


def split_short(short: str) -> Tuple[str, Optional[int]]:
    """'sample_gsm8k@c4' -> ('sample_gsm8k', 4); a dataset without a level -> (short, None)."""
    found = _LEVEL_SHORT.match(short)
    return (found["base"], int(found["level"])) if found else (short, None)


def check_levels(levels: Sequence[int], modes: Set[str]) -> List[int]:
    """The levels, ascending; a UserError naming what is wrong."""
    if isinstance(levels, (str, int)) or not all(
        isinstance(x, int) and not isinstance(x, bool) for x in levels
    ):
        raise UserError(f"execution.load_levels must be a list of integers, e.g. [1,4,16]; got {levels!r}")
    if len(levels) < 2 or min(levels) < 1 or len(set(levels)) != len(levels):
        raise UserError(
            "execution.load_levels: give two or more different levels >= 1 (requests in flight), "
            f"got {list(levels)}"
        )
    if "perf" in modes:
        raise UserError(
            "execution.load_levels scores answers at each level: aisbench.mode must be all or infer, not perf"
        )
    return sorted(levels)


def expand(plans: List[Any], levels: Sequence[int], seed: str) -> List[Any]:
    """One DatasetPlan (bench_app.run.planning.plan, which imports this module) per dataset and level, each
    dataset's levels in a shuffled order (seeded)."""
    shuffle = random.Random(seed)
    expanded = []
    for plan in plans:
        order = list(levels)
        shuffle.shuffle(order)
        for level in order:
            expanded.append(
                dataclasses.replace(
                    plan,
                    short=level_short(plan.short, level),
                    evaluator=dataclasses.replace(plan.evaluator, batch_size=level),
                    load_level=level,
                )
            )
    return expanded
