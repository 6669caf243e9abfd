"""Entry point: `python -m bench_app ...` and the `bench-app` console script.

Kept thin: a cheap pre-flight check of the command line (so a typo in a group option names the valid
choices, and an existing run folder is refused before Hydra writes anything), then Hydra composes
the config and hands it to bench_app.runner.run.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import List

import hydra
from omegaconf import DictConfig

from . import sweep
from .errors import UserError
from .resolvers import PROJECT_ROOT, register_resolvers
from .schema import register_schema

CONF_DIR = PROJECT_ROOT / "conf"
GROUPS = ("model", "dataset", "engine", "evaluator", "override")

register_schema()
register_resolvers()


def group_options(group: str) -> List[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _split_choices(value: str) -> List[str]:
    """Option names in `a`, `[a,b]` or a sweep of lists `[a,b],[c]`."""
    return re.findall(r"[^\[\],\s]+", value)


def preflight(argv: List[str]) -> None:
    """Checks Hydra would report less clearly (or too late). Raises UserError."""
    for arg in argv:
        match = re.fullmatch(r"\+{0,2}~?([a-z_]+)=(.*)", arg)
        if not match or match.group(1) not in GROUPS:
            continue
        group, value = match.groups()
        if any(token in value for token in ("${", "(", "*")):
            continue  # sweep functions and interpolations: leave them to Hydra
        valid = group_options(group)
        unknown = [choice for choice in _split_choices(value) if choice not in valid]
        if unknown:
            raise UserError(
                f"unknown {group} {', '.join(repr(u) for u in unknown)} in '{arg}'. "
                f"Valid {group} options: {', '.join(valid)} (files in {CONF_DIR / group})."
            )
    names = [a.split("=", 1)[1] for a in argv if a.startswith("benchmark.name=")]
    resuming = any(a in ("resume=true", "resume=True") for a in argv)
    multirun = "-m" in argv or "--multirun" in argv
    if names and not resuming and not multirun:
        run_dir = Path("outputs") / names[-1]
        if (run_dir / "configs").exists():
            raise UserError(
                f"run folder {run_dir} already holds a run; it is never overwritten. "
                f"Choose another benchmark.name, or add resume=true to re-run its datasets that are not ok."
            )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_entry(cfg: DictConfig) -> None:
    from .runner import run  # imported here so `--help`/`--cfg` stay fast

    if sweep.is_multirun():
        _run_sweep_job(cfg, run)
        return
    exit_code = run(cfg)
    if exit_code:
        sys.exit(exit_code)


def _run_sweep_job(cfg: DictConfig, run) -> None:
    """One job of a multirun: never raises or exits (Hydra would abort the sweep before its summary)."""
    import traceback

    from hydra.core.hydra_config import HydraConfig

    hydra_cfg = HydraConfig.get()
    job_dir = Path(hydra_cfg.runtime.output_dir)
    num, overrides = hydra_cfg.job.num, list(hydra_cfg.overrides.task)
    if sweep.sweep_interrupted(job_dir):
        sweep.write_job_record(job_dir, num, overrides, 130, "not started: the sweep was interrupted")
        return
    error = None
    try:
        exit_code = run(cfg, stop_requested=lambda: sweep.sweep_interrupted(job_dir))
    except Exception:  # an unexpected crash of one job is recorded; the other jobs and the summary go on
        exit_code, error = 1, traceback.format_exc()
        print(error, file=sys.stderr)
    if exit_code == 130:
        sweep.mark_interrupted(job_dir.parent)  # jobs not yet started need not start
    sweep.write_job_record(job_dir, num, overrides, exit_code, error)


def main() -> None:
    try:
        argv = sweep.expand_repeats(sys.argv[1:])
        preflight(argv)
    except UserError as error:
        print(f"bench_app: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    if argv != sys.argv[1:]:
        print(f"bench_app: running as: {' '.join(argv)}", file=sys.stderr)
        sys.argv[1:] = argv
    _hydra_entry()
    if sweep.SWEEP_EXIT_CODE:  # set by the sweep summary once every job has ended
        sys.exit(sweep.SWEEP_EXIT_CODE)


if __name__ == "__main__":
    main()
