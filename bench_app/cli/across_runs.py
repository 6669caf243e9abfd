"""The verbs that look across runs: compare (two runs, or a matrix against a baseline, with a release
gate), runs (the run history) and export (to MLflow). Registered in bench_app.cli.tools."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench_app.cli.parsing import Parser
from bench_app.cli.parsing import fail as _fail
from bench_app.common.errors import UserError


# ------------------------------------------------------------------------------------------ compare
def compare_args(parser: Parser) -> None:
    parser.add_argument(
        "base", type=Path, help="the baseline: a run folder, a sweep folder of repeats, or a file"
    )
    parser.add_argument(
        "runs", type=Path, nargs="*", help="runs to compare with it (run or sweep folders; or one file)"
    )
    parser.add_argument(
        "--levels",
        action="store_true",
        help="BASE is a run with execution.load_levels: compare its levels with its lowest one",
    )
    parser.add_argument("--html", type=Path, metavar="FILE", help="also write a comparison page")
    parser.add_argument("--json", action="store_true", help="the matrix as JSON on stdout, for scripts")
    parser.add_argument(
        "--gate",
        metavar="SPEC",
        help="release gate, e.g. 'max_drop=1.0': per dataset PASS (shown no worse than that many points), "
        "FAIL (shown worse: exit 1) or INCONCLUSIVE (exit 3, see --inconclusive)",
    )
    parser.add_argument(
        "--inconclusive",
        choices=["fail", "pass"],
        default="fail",
        help="--gate: how an INCONCLUSIVE dataset counts (default fail: exit 3)",
    )
    parser.add_argument(
        "--matrix", action="store_true", help="the datasets x runs matrix also for two single runs"
    )


def compare(args: argparse.Namespace) -> int:
    from bench_app.records.folder import RunFolder
    from bench_app.reports import compare as two_runs_diff

    a, runs = args.base, args.runs
    if args.levels or not runs:
        if not args.levels:
            return _fail("compare", "give a baseline and at least one run (or --levels with one run)")
        if runs:
            return _fail("compare", "--levels compares the load levels of one run: give only that run")
        return compare_matrix(args)
    two_runs = len(runs) == 1 and a.is_dir() and runs[0].is_dir()
    if len(runs) == 1 and a.is_file() and runs[0].is_file():
        if args.html or args.json or args.gate:
            return _fail("compare", "--html, --json and --gate compare run folders, not files")
        try:
            lines = two_runs_diff.compare_files(a, runs[0])
        except (two_runs_diff.BadInput, OSError, ValueError) as error:
            return _fail("compare", error)
        print("\n".join(lines) if lines else f"identical: {a} and {runs[0]}")
        return 1 if lines else 0
    plain = (
        two_runs
        and not (args.json or args.gate or args.matrix)
        and all(RunFolder(p).is_run_folder() for p in (a, runs[0]))
    )
    if plain:  # two runs: what differs, and the flipped answers (the matrix with --matrix)
        try:
            lines = two_runs_diff.compare_runs(a, runs[0])
        except (two_runs_diff.BadInput, UserError, OSError, ValueError) as error:
            return _fail("compare", error)
        if args.html is not None:
            print(f"comparison report: {two_runs_diff.write_html(a, runs[0], lines, args.html)}")
        if not lines:
            print(f"identical: {a} and {runs[0]} (configs, environment and scores)")
            return 0
        print("\n".join(lines))
        return 1
    return compare_matrix(args)


def compare_matrix(args: argparse.Namespace) -> int:
    import json

    from bench_app.reports import gate as release_gate
    from bench_app.reports import matrix, matrix_view
    from bench_app.sweeps.sides import level_sides, sides_of

    try:
        gate = release_gate.parse_gate(args.gate) if args.gate else None
        if args.levels:  # one run's load levels against its lowest
            base, *sides = level_sides(args.base)
        else:
            bases = sides_of(args.base)
            if len(bases) != 1:
                raise UserError(
                    f"the baseline {args.base} holds {len(bases)} configurations "
                    f"({', '.join(s.label for s in bases)}); give one run folder or a sweep of repeats"
                )
            base, sides = bases[0], [side for path in args.runs for side in sides_of(path)]
        built = matrix.build(base, sides, gate["max_drop"] if gate else None)
    except (UserError, OSError, ValueError) as error:
        return _fail("compare", error)
    outcome = release_gate.gate_outcome(built, gate) if gate is not None else None
    notes = sys.stderr if args.json else sys.stdout  # --json keeps stdout for the document
    if args.json:
        document = built.to_dict()
        if outcome is not None:
            document["gate"] = {
                "spec": gate,
                "passed": outcome.exit_code(args.inconclusive) == 0,
                "exit_code": outcome.exit_code(args.inconclusive),
                "failures": outcome.failures,
                "inconclusive": outcome.inconclusive,
                "passes": outcome.passed,
            }
        print(json.dumps(document, indent=2))
    else:
        matrix_view.print_matrix(built)
    if args.html is not None:
        print(f"comparison report: {matrix_view.write_html(built, args.html)}", file=notes)
    if outcome is not None:
        print("\n".join(matrix_view.gate_lines(outcome, args.gate, args.inconclusive)), file=notes)
        return outcome.exit_code(args.inconclusive)
    return 0


# --------------------------------------------------------------------------------------------- runs
RUN_STATUSES = ("ok", "completed", "failed", "interrupted", "dry_run", "running")


def runs_args(parser: Parser) -> None:
    parser.add_argument("--model", help="only runs whose model or precision contains this text")
    parser.add_argument("--dataset", help="only runs with a dataset whose short name contains this text")
    parser.add_argument("--status", choices=RUN_STATUSES, help="only runs that ended so (ok = completed)")
    parser.add_argument("--since", metavar="DATE", help="only runs started on or after DATE (YYYY-MM-DD)")
    parser.add_argument(
        "--root", type=Path, action="append", default=[], help="also list the runs under this folder"
    )
    parser.add_argument("--json", action="store_true", help="the rows as JSON, for scripts")


def runs(args: argparse.Namespace) -> int:
    import json
    from datetime import date

    from bench_app.rundir.index import RunIndex, select

    if args.since is not None:
        try:
            date.fromisoformat(args.since[:10])
        except ValueError:
            return _fail("runs", f"--since {args.since!r} is not a date (YYYY-MM-DD)")
    rows = []
    for root in dict.fromkeys([Path("outputs"), *args.root]):
        if not root.is_dir():
            if root in args.root:
                return _fail("runs", f"--root {root} is not a folder")
            continue
        try:
            index = RunIndex(root)
            index.refresh()
            rows += index.rows()
            index.close()
        except OSError as error:
            return _fail("runs", error)
    rows = select(rows, args.model, args.dataset, args.status, args.since)
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} run(s), newest first")
    for column in ("run", "model", "precision", "datasets", "status", "commit", "started"):
        table.add_column(column)
    for row in rows:
        scores = ", ".join(
            f"{s} {'-' if v is None else f'{v:.2f}'}"
            + (f" (decided at {row.stopped[s]})" if s in row.stopped else "")
            for s, v in row.scores.items()
        )
        style = "" if row.status == "completed" else "yellow"
        table.add_row(
            row.name, row.model, row.precision, scores, row.status, row.commit, row.started, style=style
        )
    Console(width=160).print(table)
    return 0


# ------------------------------------------------------------------------------------------- export
def export_args(parser: Parser) -> None:
    parser.add_argument("tracker", choices=["mlflow"], help="where to export to")
    parser.add_argument("runs", type=Path, nargs="+", help="run folders or sweep folders")
    parser.add_argument(
        "--tracking-uri",
        help="MLflow's tracking URI (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db "
        "in the current directory)",
    )
    parser.add_argument(
        "--experiment", default="bench_app", help="the MLflow experiment (default: bench_app)"
    )


def export(args: argparse.Namespace) -> int:
    from bench_app.exports.mlflow import Exporter, tracking_uri

    for path in args.runs:
        if not path.is_dir():
            return _fail("export", f"{path} is not a folder (give run folders or sweep folders)")
    try:
        exporter = Exporter(tracking_uri(args.tracking_uri), args.experiment)
        for path in args.runs:
            for what, mlflow_run, created, changed in exporter.export(path):
                print(f"{'created' if created else 'updated'} MLflow run {mlflow_run}: {what}")
                if changed:
                    kept = ", ".join(changed)
                    print(f"  note: params kept from the first export (MLflow's are write-once): {kept}")
    except UserError as error:
        return _fail("export", error)
    print(f"tracking URI: {exporter.uri} (experiment {args.experiment!r})")
    return 0
