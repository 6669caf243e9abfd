"""The walk of a run's configuration through the code: which modules receive it, in what order.

Runs `python -m bench_app OVERRIDES` (give execution.dry_run=true for a walk without servers) with a profiler
that notes every call of a bench_app function taking the run's configuration (Hydra's DictConfig, the typed
BenchAppConfig or the resolved document) or what is planned from it (RunPlan, DatasetPlan, EngineGroup) as an
argument. The walk is the sequence of the modules of those
calls, a module repeated back to back counted once. It prints the rooms (distinct modules) and the climbs
back (returns to a module the walk had already left) and, with --show, the walk itself.

    .venv/bin/python scripts/cfg_walk.py [--show] execution.dry_run=true benchmark.name=walk_probe
"""

from __future__ import annotations

import sys
import threading
from typing import List

from omegaconf import DictConfig

from bench_app.config.schema import BenchAppConfig
from bench_app.run.planning.plan import DatasetPlan, EngineGroup, RunPlan

WALK: List[str] = []
_CONFIG_TYPES = (DictConfig, BenchAppConfig, RunPlan, DatasetPlan, EngineGroup)


def _carries_config(frame) -> bool:
    code = frame.f_code
    for name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
        value = frame.f_locals.get(name)
        if isinstance(value, _CONFIG_TYPES) or (name == "resolved" and isinstance(value, dict)):
            return True
    return False


def _profile(frame, event, _arg):
    if event != "call":
        return
    module = frame.f_globals.get("__name__", "")
    if not module.startswith("bench_app") or module.startswith("bench_app.config"):
        return  # the config layer builds and checks the config; the walk is where it goes from there
    if _carries_config(frame) and (not WALK or WALK[-1] != module):
        WALK.append(module)


def main() -> int:
    show = "--show" in sys.argv
    overrides = [a for a in sys.argv[1:] if a != "--show"]
    from bench_app.cli.main import main as bench_main

    sys.argv = ["bench_app", *overrides]
    sys.setprofile(_profile)
    threading.setprofile(_profile)
    code = 0
    try:
        bench_main()
    except SystemExit as ended:
        code = ended.code if isinstance(ended.code, int) else 0
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    rooms = list(dict.fromkeys(WALK))
    climbs = len(WALK) - len(rooms)
    if show:
        print("\n".join(WALK), file=sys.stderr)
    print(f"cfg walk: {len(rooms)} rooms, {climbs} climbs back ({len(WALK)} steps; bench_app exit {code})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
