"""Repeats in one run (benchmark.repeats > 1): the settings checked at planning, and the relay's seeds.

The evaluator (AISBench's own `n`) sends each question once per repeat, identical requests, all in flight
together up to its batch size. The relay gives each copy the lowest repeat of that request not taken yet and
sends it with that repeat's seed, which its cache key then holds: a question's k answers are k samples, and an
interrupted dataset is answered from the cache repeat by repeat. A request that fails gives its repeat back,
so the evaluator's retry is sent with the same seed. Which of AISBench's k slots gets which seed follows the
order the copies arrive in; the repeats are exchangeable, so no score depends on it.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Sequence, Set, Tuple

from bench_app.common.errors import UserError
from bench_app.config.schema import REPEAT_FORMS, BenchmarkConf


def check_form(benchmark: BenchmarkConf) -> None:
    """benchmark.repeats_as names a form, and `jobs` came from the command line (it makes a sweep)."""
    if benchmark.repeats_as not in REPEAT_FORMS:
        raise UserError(
            f"benchmark.repeats_as: {benchmark.repeats_as!r} is not a form. Valid: "
            f"{', '.join(REPEAT_FORMS)} (run: every repeat in this run; jobs: a sweep, one job per seed)."
        )
    if benchmark.repeats_as == "jobs" and benchmark.repeats > 1:
        raise UserError(
            "benchmark.repeats_as=jobs makes a sweep, which is decided on the command line: give "
            f"benchmark.repeats={benchmark.repeats} benchmark.repeats_as=jobs there."
        )


def checked_repeats(repeats: Any, mode: str) -> int:
    """A dataset's repeats (its own, else benchmark.repeats): an integer >= 1, and 1 in perf mode."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise UserError(f"repeats must be an integer >= 1 (samples per question), got {repeats!r}.")
    if repeats > 1 and mode == "perf":
        raise UserError(
            f"repeats={repeats} with aisbench.mode=perf: repeats sample answers for accuracy; a perf run "
            "measures latency once per prompt. Leave repeats at 1 or choose another mode."
        )
    return repeats


class RepeatSeeds:
    """The relay's side, for the dataset being recorded (used on the relay's event loop thread only)."""

    def __init__(self, seeds: Sequence[int] = ()):
        self.seeds: List[int] = list(seeds) if len(seeds) > 1 else []  # none: no repeats
        self._taken: Dict[str, Set[int]] = {}

    def __bool__(self) -> bool:
        return bool(self.seeds)

    def take(self, body: Dict[str, Any]) -> Tuple[str, int]:
        """The lowest repeat of this request not taken yet; its seed is written into the body."""
        same = json.dumps({k: v for k, v in body.items() if k != "seed"}, sort_keys=True)
        taken = self._taken.setdefault(same, set())
        repeat = next(i for i in range(len(taken) + 1) if i not in taken)
        taken.add(repeat)
        seeds = self.seeds  # more copies than repeats (a question asked twice): the seeds go on
        body["seed"] = seeds[repeat] if repeat < len(seeds) else seeds[-1] + repeat - len(seeds) + 1
        return same, repeat

    def give_back(self, same: str, repeat: int) -> None:
        self._taken.get(same, set()).discard(repeat)
