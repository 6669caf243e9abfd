"""A run from the command line: `bench-app [OVERRIDES]` (bench_app.cli.tools sends tools elsewhere).

Kept thin: a cheap
pre-flight check of the command line with Hydra's own parsers (so a typo in a group option names the
valid choices, and an existing run folder is refused before Hydra writes anything), then Hydra composes
the config and hands it to bench_app.cli.runner.run.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, List, Sequence

import hydra
from omegaconf import DictConfig, OmegaConf

from bench_app.common.errors import UserError
from bench_app.common.files import first_config_file
from bench_app.config.overrides import quote_value
from bench_app.config.resolvers import PROJECT_ROOT, register_resolvers
from bench_app.config.schema import register_schema
from bench_app.evaluators.aisbench import catalog
from bench_app.records.folder import RunFolder
from bench_app.run.planning import slurm
from bench_app.sweeps import jobs as sweep

CONF_DIR = PROJECT_ROOT / "conf"
GROUPS = ("model", "dataset", "engine", "evaluator", "override", "experiment")
# The groups users pick on the command line (override/ holds bundles that datasets use).
USER_GROUPS = ("model", "dataset", "engine", "evaluator", "experiment")

register_schema()
register_resolvers()


def config_dirs(extra: Iterable[str] = ()) -> List[Path]:
    """The project's conf/ plus user folders (hydra.searchpath file:// entries, --config-dir)."""
    dirs = [CONF_DIR]
    for entry in extra:
        path = Path(str(entry)[len("file://") :] if str(entry).startswith("file://") else str(entry))
        if "://" not in str(path) and path not in dirs:
            dirs.append(path)
    return dirs


def group_options(group: str, dirs: Sequence[Path] = (CONF_DIR,)) -> List[str]:
    return sorted({p.stem for d in dirs for p in (Path(d) / group).glob("*.yaml")})


# The config folders of this invocation, set by preflight (the help text lists their options).
_search_dirs: List[Path] = [CONF_DIR]


def _groups_help() -> str:
    """Each group's options; those from a user config folder say which (`mine [/my/conf]`)."""
    lines = []
    for group in USER_GROUPS:
        own = set(group_options(group, _search_dirs[:1]))
        names = [
            name if name in own else f"{name} [{first_config_file(group, name, _search_dirs).parent.parent}]"
            for name in group_options(group, _search_dirs)
        ]
        prefix = "+" if group == "experiment" else ""
        lines.append(f"  {prefix}{group}: {', '.join(names) or '(none)'}")
        if group == "dataset":
            lines.append(
                f"  dataset: ais/<name> for any of AISBench's {len(catalog.stock_configs())} dataset configs "
                "(list them: bench-app catalog [TEXT])"
            )
    return "\n".join(lines)


def _choice_names(value: Any) -> List[str]:
    """Option names in `a`, `[a,b]` or a sweep of lists `[a,b],[c]` (as Hydra parsed them)."""
    from hydra.core.override_parser.types import ChoiceSweep

    if isinstance(value, ChoiceSweep):
        return [name for item in value.list for name in _choice_names(item)]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _choice_names(item)]
    # Interpolations and other sweeps (range, glob) are Hydra's to check.
    return [value] if isinstance(value, str) and not value.startswith("${") else []


def unparsable_message(overrides: List[str], error: Exception) -> str:
    """Which override Hydra's lexer rejected, and how to write it quoted."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    for text in overrides:
        try:
            parser.parse_override(text)
        except HydraException:  # the lexer's own error for one override
            key, equals, value = text.partition("=")
            if not equals:
                break
            quoted = f"{key}={quote_value(value)}"
            plain = not any(c in quoted for c in '"$`!') and "\\\\" not in quoted
            shell = f'"{quoted}"' if plain else shlex.quote(quoted)  # double quotes read best where they work
            return (
                f"cannot parse {text!r}: a value with spaces, quotes or other special characters must be "
                f"quoted for Hydra: {quoted} (in a shell: {shell})."
            )
    return f"cannot parse the command line: {str(error).splitlines()[0]}"


def preflight(argv: List[str]) -> None:
    """Checks Hydra would report less clearly (or too late). Raises UserError."""
    from hydra._internal.utils import get_args_parser
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    args, _ = get_args_parser().parse_known_args(argv)
    try:
        overrides = OverridesParser.create().parse_overrides(args.overrides)
    except OverrideParseException as error:
        raise UserError(unparsable_message(args.overrides, error)) from None
    searchpath = [v for o in overrides if o.key_or_group == "hydra.searchpath" for v in (o.value() or [])]
    given = [*searchpath, *([args.config_dir] if args.config_dir else [])]
    dirs = config_dirs(given)
    missing = [d for d in dirs[1:] if not d.is_dir()]
    if missing:
        how = (
            "--config-dir" if args.config_dir and Path(args.config_dir) == missing[0] else "hydra.searchpath"
        )
        raise UserError(
            f"config folder {missing[0]} does not exist (given as {how}). "
            "A user config folder holds group folders like the project's conf/: model/, dataset/, engine/, "
            "evaluator/, experiment/."
        )
    _search_dirs[:] = dirs
    catalog.register_for(argv, dirs)
    for override in overrides:
        group = override.key_or_group.split("@")[0]
        if group not in GROUPS or override.is_delete():
            continue
        valid = group_options(group, dirs)
        unknown = [name for name in _choice_names(override.value()) if name not in valid]
        if unknown and group == "dataset":  # AISBench's own configs: dataset=ais/<name>
            valid = [*valid, *catalog.options()]
            unknown = [name for name in unknown if name not in valid]
        if unknown:
            import difflib

            places = ", ".join(str(d / group) for d in dirs)
            close = list(
                dict.fromkeys(c for u in unknown for c in difflib.get_close_matches(u, valid, 3, 0.5))
            )
            hint = f"Closest: {', '.join(close)}. " if close else ""
            listed = ", ".join(v for v in valid if not v.startswith(catalog.PREFIX)) or "(none)"
            stock = ", or ais/<name>: AISBench's configs (bench-app catalog)"
            stock = stock if group == "dataset" else ""
            raise UserError(
                f"unknown {group} {', '.join(repr(u) for u in unknown)} in '{override.input_line}'. "
                f"{hint}Valid {group} options: {listed} (files in {places}){stock}."
            )
    values = {o.key_or_group: o.value() for o in overrides if not o.is_sweep_override()}
    name, resuming = values.get("benchmark.name"), values.get("resume") is True
    resuming = resuming or slurm.requeued(os.environ)  # a requeued SLURM job continues its own run
    if isinstance(name, str) and not resuming and not args.multirun:
        run_dir = Path("outputs") / name
        if RunFolder(run_dir).holds_run():
            raise UserError(
                f"run folder {run_dir} already holds a run; it is never overwritten. "
                f"Choose another benchmark.name, or add resume=true to re-run its datasets that are not ok."
            )


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_entry(cfg: DictConfig) -> None:
    from bench_app.cli.runner import run  # imported here so `--help`/`--cfg` stay fast

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
    RunFolder(job_dir).error_file.unlink(missing_ok=True)  # an earlier attempt's (resume=true)
    watch = sweep.OwnerWatch.for_job(job_dir.parent)  # a joblib worker outliving a killed sweep stops
    if watch is not None:
        watch.idle.clear()
    try:
        exit_code = run(cfg, stop_requested=lambda: sweep.sweep_interrupted(job_dir))
    except Exception:  # an unexpected crash of one job is recorded; the other jobs and the summary go on
        exit_code, error = 1, traceback.format_exc()
        print(error, file=sys.stderr)
    if exit_code == 130 and not slurm.in_job(os.environ):
        # jobs not yet started need not start; a SLURM job's SIGTERM (scancel, time limit) is its own
        sweep.mark_interrupted(job_dir.parent)
    sweep.write_job_record(job_dir, num, overrides, exit_code, error)
    if watch is not None:
        watch.idle.set()


def _compose_once(argv: List[str]) -> None:
    """Hydra 1.3 composes the whole config twice per run: once only to read `hydra.mode`, once to run.
    bench_app decides run vs multirun by `-m` alone, so the first composition is skipped (a third of a
    dry run's time). Where a user does set hydra.mode on the command line, Hydra's own way is kept."""
    if any("hydra.mode" in arg for arg in argv):
        return
    from hydra._internal.hydra import Hydra

    Hydra.get_mode = lambda self, config_name, overrides: None  # -> RUN, or MULTIRUN with -m


def main() -> None:
    """A run or a sweep with the process's command line (`bench-app VERB` is bench_app.cli.tools')."""
    run_hydra(sys.argv[1:])


def run_hydra(argv: List[str], verbs_help: Callable[[], str] = lambda: "") -> None:
    """A run or a sweep: pre-flight, then Hydra with argv as its command line."""
    if not OmegaConf.has_resolver("bench_app_groups"):  # used by conf/hydra/help
        OmegaConf.register_new_resolver("bench_app_groups", _groups_help)
        OmegaConf.register_new_resolver("bench_app_verbs", verbs_help)
    sys.argv[1:] = argv
    try:
        argv = sweep.expand_repeats(sys.argv[1:])
        preflight(argv)
    except UserError as error:
        print(f"bench_app: error: {error}", file=sys.stderr)
        sys.exit(error.exit_code)
    if argv != sys.argv[1:]:
        print(f"bench_app: running as: {' '.join(argv)}", file=sys.stderr)
        sys.argv[1:] = argv
    _compose_once(argv)
    _hydra_entry()
    from bench_app.cli import callbacks

    if callbacks.SWEEP_EXIT_CODE:  # set by the sweep summary once every job has ended
        sys.exit(callbacks.SWEEP_EXIT_CODE)


if __name__ == "__main__":
    main()
