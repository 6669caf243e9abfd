"""The command line: `bench-app VERB ...` runs a tool, anything else a run (bench_app.cli.main).

The tools beside the run have one argparse parser each.

Each verb is a parser (usage, an example, flags) and a handler that calls the library below it;
`python -m bench_app.<verb>` (the modules kept at the top of the package) calls the same code.
A mistyped verb or flag is answered with the closest ones.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence

from bench_app.cli.across_runs import (
    compare,
    compare_args,
    export,
    export_args,
    runs,
    runs_args,
)
from bench_app.cli.parsing import Parser
from bench_app.cli.parsing import fail as _fail
from bench_app.common.errors import UserError


# ------------------------------------------------------------------------------------------- report
def _report_args(parser: Parser) -> None:
    parser.add_argument("folder", type=Path, help="a run folder or a sweep folder")


def _report(args: argparse.Namespace) -> int:
    from bench_app.records.folder import RunFolder
    from bench_app.sweeps.html import is_sweep_folder, write_report

    folder = args.folder
    if not folder.is_dir() or not (RunFolder(folder).holds_run() or is_sweep_folder(folder)):
        return _fail(
            "report",
            f"{folder} is not a bench_app run folder (no configs/) "
            "nor a sweep folder (job folders with .hydra/)",
        )
    try:
        print(write_report(folder))
    except UserError as error:
        return _fail("report", error)
    return 0


# ------------------------------------------------------------------------------------------ rescore
def _rescore_args(parser: Parser) -> None:
    parser.add_argument("run", type=Path, help="a run folder")
    parser.add_argument("datasets", nargs="*", help="the datasets to rescore (default: all)")


def _rescore(args: argparse.Namespace) -> int:
    from bench_app.reports.rescore import rescore

    try:
        return rescore(args.run, args.datasets)
    except UserError as error:
        return _fail("rescore", error)


# ------------------------------------------------------------------------------------------- replay
def _replay_args(parser: Parser) -> None:
    parser.add_argument("snapshot", type=Path, help="<run>/configs/config_snapshot.yaml")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="Hydra overrides, as for a run")


def _replay(args: argparse.Namespace) -> int:
    from bench_app.cli.replay import replay

    if not args.snapshot.is_file():
        return _fail("replay", f"{args.snapshot} is not a file (give <run>/configs/config_snapshot.yaml)")
    replay(args.snapshot, args.overrides)
    return 0


# ----------------------------------------------------------------------------------------- envcheck
def _envcheck_args(parser: Parser) -> None:
    parser.add_argument("metadata", type=Path, help="<run>/configs/metadata.yaml")


def _envcheck(args: argparse.Namespace) -> int:
    from bench_app.rundir.envcheck import differences

    if not args.metadata.is_file():
        return _fail("envcheck", f"{args.metadata} is not a file (give <run>/configs/metadata.yaml)")
    found = differences(args.metadata)
    if not found:
        print("environment check: same versions, packages and git state as the recorded run")
        return 0
    print(f"environment check: {len(found)} difference(s) from the recorded run:")
    for line in found:
        print(f"  - {line}")
    return 1


# ------------------------------------------------------------------------------------------ catalog
def _catalog_args(parser: Parser) -> None:
    parser.add_argument("text", nargs="?", default="", help="only the configs whose name contains TEXT")
    parser.add_argument("--models", action="store_true", help="the model configs (aisbench.model) instead")


def _catalog(args: argparse.Namespace) -> int:
    from bench_app.evaluators.aisbench import catalog

    if catalog.configs_dir() is None:
        return _fail("catalog", "AISBench (ais_bench) is not installed in this environment")
    print("\n".join(catalog.model_table(args.text) if args.models else catalog.table(args.text)))
    return 0


# ------------------------------------------------------------------------------------------ migrate
def _datasets_args(parser: Parser) -> None:
    from bench_app.cli.datasets import datasets_args

    datasets_args(parser)


def _datasets(args: argparse.Namespace) -> int:
    from bench_app.cli.datasets import datasets

    try:
        return datasets(args)
    except UserError as error:
        return _fail("datasets", error)


def _parity_args(parser: Parser) -> None:
    from bench_app.cli.parity import parity_args

    parity_args(parser)


def _parity(args: argparse.Namespace) -> int:
    from bench_app.cli.parity import parity

    return parity(args)


def _migrate_args(parser: Parser) -> None:
    parser.add_argument("source", type=Path, help="the original system's suite folder (suites and tasks)")
    parser.add_argument("--out", type=Path, default=Path("migrated_conf"), help="the user config folder")
    parser.add_argument("--into-conf", action="store_true", help="write into the project's conf/ instead")


def _migrate(args: argparse.Namespace) -> int:
    from bench_app.cli.migrate import migrate
    from bench_app.config.resolvers import PROJECT_ROOT

    out = PROJECT_ROOT / "conf" if args.into_conf else args.out
    try:
        if not args.into_conf and out.resolve() == (PROJECT_ROOT / "conf").resolve():
            raise UserError("--out is the project's conf/; add --into-conf to write there on purpose")
        names, report = migrate(args.source, out)
    except UserError as error:
        return _fail("migrate", error)
    for path in report.written:
        print(f"wrote {path}")
    for source, key, where in dict.fromkeys(report.mapped):  # each once, in order
        print(f"mapped   {source}: {key} -> {where}")
    for source, key, why in report.unmapped:
        print(f"UNMAPPED {source}: {key}: {why}")
    proof = report.proof
    for change in proof.mended:
        print(f"mended   {change}")
    for config, problem in proof.broken:
        print(f"BROKEN   {config}: {problem}")
    if proof.not_checked:
        print(f"not checked: the carried configs could not be loaded: {proof.not_checked}")
    elif proof.loaded or proof.broken:
        print(
            f"loaded   {len(proof.loaded)} of {len(proof.loaded) + len(proof.broken)} carried dataset "
            "configs in AISBench's environment"
        )
    for name in names:
        print(f"run: bench-app --config-dir {out.resolve()} +experiment={name}")
    return 0


# -------------------------------------------------------------------------------------------- cache
def _cache_args(parser: Parser) -> None:
    parser.add_argument(
        "action", choices=["stats", "prune"], help="stats: what it holds; prune: drop old answers"
    )
    parser.add_argument("folder", type=Path, help="a run folder, or a shared cache folder (execution.cache)")
    parser.add_argument("--older-than-days", type=float, default=30.0, help="prune: answers unused this long")


def _cache(args: argparse.Namespace) -> int:
    from datetime import datetime

    from bench_app.records.cache import CacheError, RequestCache
    from bench_app.records.names import CACHE_FILE

    path = args.folder / CACHE_FILE
    if not path.is_file():
        return _fail("cache", f"no request cache in {args.folder} (no {CACHE_FILE})")
    try:
        cache = RequestCache(path)
    except CacheError as error:
        return _fail("cache", error)
    run_folder = (args.folder / "results.yaml").exists() or (args.folder / "configs").is_dir()
    if args.action == "prune" and run_folder:
        cache.close()
        return _fail(
            "cache",
            f"{args.folder} is a run folder: its request cache holds that run's answers (the reasoning's "
            "text among them), which resume and its samples read; only a shared cache (execution.cache) "
            "is pruned",
        )
    if args.action == "prune":
        removed = cache.prune(args.older_than_days * 86400)
        print(f"pruned {removed} answer(s) unused for {args.older_than_days:g} day(s)")
    stats, engines = cache.stats(), cache.engine_identities()
    cache.close()
    when = {
        k: datetime.fromtimestamp(stats[k]).isoformat(timespec="seconds") if stats[k] else "-"
        for k in ("oldest", "newest")
    }
    print(
        f"{path}: {stats['answers']} answer(s) of {stats['engines']} engine configuration(s), "
        f"{stats['bytes'] / 1e6:.1f} MB; stored {when['oldest']} .. {when['newest']}"
    )
    _print_engines(engines)
    return 0


def _print_engines(engines) -> None:
    """Each engine configuration, and what differs from the one before it of the same model: why answers
    of that model were not reused."""
    from datetime import datetime

    from bench_app.run.planning.identity import changes

    last_of_model = {}
    for identity, count, stored in engines:
        day = datetime.fromtimestamp(stored).isoformat(timespec="seconds") if stored else "-"
        if not identity:
            print(f"  {count} answer(s) of an earlier bench_app (no identity recorded: never reused), {day}")
            continue
        model = (identity.get("model") or {}).get("path")
        print(f"  {model}: {count} answer(s), last {day}")
        if model in last_of_model:
            print(f"    since the configuration before: {'; '.join(changes(last_of_model[model], identity))}")
        last_of_model[model] = identity


class Verb(NamedTuple):
    summary: str
    example: str
    arguments: Callable[[Parser], None]
    handler: Callable[[argparse.Namespace], int]


VERBS: Dict[str, Verb] = {
    "compare": Verb(
        "runs against a baseline: two runs -> what differs (exit 0 identical, 1 different); more runs, "
        "sweeps, --matrix -> datasets x runs with paired tests (Holm); --gate -> exit 1 on a real drop",
        "bench-app compare outputs/bf16 outputs/w8a8 outputs/w4a4 --html compare.html --gate 'max_drop=1.0'",
        compare_args,
        compare,
    ),
    "report": Verb(
        "(re)write the report.html of a run or a sweep",
        "bench-app report outputs/tiny_20261201_101500",
        _report_args,
        _report,
    ),
    "rescore": Verb(
        "score a run's stored predictions again with the current scorers, no inference",
        "bench-app rescore outputs/tiny_20261201_101500 sample_gsm8k",
        _rescore_args,
        _rescore,
    ),
    "replay": Verb(
        "run again from a config snapshot alone (what reproduce.sh --frozen calls)",
        "bench-app replay outputs/tiny_20261201_101500/configs/config_snapshot.yaml benchmark.name=again",
        _replay_args,
        _replay,
    ),
    "envcheck": Verb(
        "how this environment differs from the one a run recorded (exit 1 when it does)",
        "bench-app envcheck outputs/tiny_20261201_101500/configs/metadata.yaml",
        _envcheck_args,
        _envcheck,
    ),
    "catalog": Verb(
        "AISBench's dataset configs (dataset=ais/<name>); with --models, its model configs (aisbench.model)",
        "bench-app catalog gsm8k",
        _catalog_args,
        _catalog,
    ),
    "runs": Verb(
        "the run history: every run under outputs/ (and --root folders), newest first, with filters",
        "bench-app runs --model qwen3 --dataset gsm8k --status ok --since 2026-11-01",
        runs_args,
        runs,
    ),
    "export": Verb(
        "export runs and sweeps to a tracker (MLflow): params, metrics, tags, artifacts; again = update",
        "bench-app export mlflow outputs/bf16 outputs/w8a8 --tracking-uri sqlite:///mlflow.db",
        export_args,
        export,
    ),
    "cache": Verb(
        "the request cache of a run or a shared one: what it holds (stats), or drop old answers (prune)",
        "bench-app cache stats ~/.cache/bench_app/requests",
        _cache_args,
        _cache,
    ),
    "datasets": Verb(
        "the data files of a run's datasets: check (present, complete, unchanged), list, fetch (verified)",
        "bench-app datasets fetch model=qwen3_30b 'dataset=[ceval,gsm8k]'",
        _datasets_args,
        _datasets,
    ),
    "parity": Verb(
        "is the run's score the published one? per dataset its 95% interval, the reference, a verdict, why",
        "bench-app parity outputs/qwen3_bf16 --gate 'max_below=2.0'",
        _parity_args,
        _parity,
    ),
    "migrate": Verb(
        "the original system's suite and task files -> a user config folder (never overwrites)",
        "bench-app migrate /path/to/suites --out my_conf",
        _migrate_args,
        _migrate,
    ),
}


def parser_for(verb: str) -> Parser:
    spec = VERBS[verb]
    parser = Parser(
        prog=f"bench-app {verb}",
        description=spec.summary,
        epilog=f"example:\n  {spec.example}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    spec.arguments(parser)
    return parser


def run_verb(verb: str, argv: Optional[Sequence[str]] = None) -> int:
    """Parse argv for one verb and run it; returns the exit code."""
    args = parser_for(verb).parse_args(list(sys.argv[1:] if argv is None else argv))
    return VERBS[verb].handler(args)


def compare_main() -> None:
    """The bench-app-compare console script of earlier releases: bench-app compare."""
    sys.exit(run_verb("compare"))


def report_main() -> None:
    """The bench-app-report console script of earlier releases: bench-app report."""
    sys.exit(run_verb("report"))


def looks_like_verb(word: str) -> bool:
    """A bare word: Hydra's overrides always hold '=' (or start with +, ~ or -)."""
    return bool(re.fullmatch(r"[A-Za-z][\w-]*", word))


def unknown_verb_message(word: str) -> str:
    close = difflib.get_close_matches(word, list(VERBS), 3, 0.5)
    hint = f"Closest: {', '.join(close)}. " if close else ""
    return (
        f"unknown command {word!r}. {hint}Commands: {', '.join(VERBS)}; "
        "a run takes Hydra overrides (KEY=VALUE), e.g. 'bench-app dataset=sample_gsm8k'."
    )


def verbs_help() -> str:
    width = max(len(v) for v in VERBS)
    lines = [f"  bench-app {name:<{width}}  {spec.summary}" for name, spec in VERBS.items()]
    return "\n".join(lines + ["  bench-app VERB --help shows a command's usage and an example."])


def main(argv: Optional[List[str]] = None) -> None:
    """`bench-app` and `python -m bench_app`: a first word without '=' is a tool, else Hydra's run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not (argv and looks_like_verb(argv[0])):
        from bench_app.cli.main import run_hydra

        run_hydra(argv, verbs_help)
        return
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"bench-app: error: {unknown_verb_message(verb)}", file=sys.stderr)
        sys.exit(2)
    sys.exit(run_verb(verb, rest))
