"""`bench-app parity RUN`: the run's scores against published (or saved) reference results
(bench_app.reports.parity)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench_app.cli.parsing import Parser
from bench_app.cli.parsing import fail as _fail
from bench_app.common.errors import UserError


def parity_args(parser: Parser) -> None:
    parser.add_argument("run", help="a run folder (outputs/<run>)")
    parser.add_argument(
        "--reference", help="the reference's name (default: the one matching the run's model)"
    )
    parser.add_argument(
        "--reference-dir", action="append", default=[], help="a folder of references of yours"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=2.0,
        metavar="POINTS",
        help="how far from the published figure still counts as consistent (default 2)",
    )
    parser.add_argument("--json", action="store_true", help="the verdicts as JSON")
    parser.add_argument("--html", help="also write the verdicts as an HTML page")
    parser.add_argument(
        "--gate", help="exit 1 when a dataset is below its reference by more: 'max_below=2.0'"
    )
    parser.add_argument(
        "--save-reference", metavar="NAME", help="store this run's scores and settings as reference NAME"
    )


def parity(args: argparse.Namespace) -> int:
    from bench_app.reports import parity as verdicts
    from bench_app.reports.references import REFERENCE_DIR

    extra = [Path(d) for d in args.reference_dir]
    try:
        if args.save_reference:
            folder = extra[0] if extra else REFERENCE_DIR
            print(f"saved {verdicts.save_reference(Path(args.run), args.save_reference, folder)}")
            return 0
        report = verdicts.parity(Path(args.run), args.reference, extra, args.tolerance)
        failing = verdicts.gate(report, args.gate) if args.gate else []
    except UserError as error:
        return _fail("parity", error)
    print(verdicts.to_json(report) if args.json else "\n".join(verdicts.lines(report)))
    if args.html:
        print(f"wrote {verdicts.write_html(report, Path(args.html))}")
    for line in failing:
        print(f"gate: {line}")
    return 1 if failing else 0
