"""The release gate over a comparison matrix (`bench-app compare ... --gate 'max_drop=M'`): per run x dataset
PASS, FAIL or INCONCLUSIVE, each cell's non-inferiority decision (bench_app.reports.decisions, made by
bench_app.reports.matrix.build with the margin), one line each, and the exit code they add up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

from bench_app.common.errors import UserError
from bench_app.reports import decisions
from bench_app.reports.matrix import Matrix

GATE_KEYS = {"max_drop": "the largest drop, in points, a release may show (a non-inferiority margin)"}


def parse_gate(text: str) -> Dict[str, float]:
    """'max_drop=1.0' -> {'max_drop': 1.0}; a wrong key or value is a UserError naming the valid ones."""
    gate: Dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if key.strip() not in GATE_KEYS or not sep:
            valid = "; ".join(f"{k}: {why}" for k, why in GATE_KEYS.items())
            raise UserError(f"--gate {part!r}: give KEY=VALUE with KEY one of: {valid}")
        try:
            gate[key.strip()] = float(value)
        except ValueError:
            raise UserError(f"--gate {part!r}: {value!r} is not a number of points") from None
    if "max_drop" not in gate or gate["max_drop"] < 0:
        raise UserError(f"--gate {text!r}: needs max_drop=POINTS (>= 0), e.g. --gate 'max_drop=1.0'")
    return gate


@dataclass
class GateOutcome:
    failures: List[str]  # FAIL, and cells that could not be compared
    inconclusive: List[str]
    passed: List[str]

    def exit_code(self, inconclusive: str = "fail") -> int:
        """0: every dataset PASS; 1: a FAIL (or one not compared); 3: INCONCLUSIVE ones, unless they pass."""
        if self.failures:
            return 1
        return 3 if self.inconclusive and inconclusive == "fail" else 0


def _interval(decision: decisions.Decision) -> str:
    low, high = decision.interval
    return f"{decision.confidence:.1%} interval {low:+.2f}..{high:+.2f}"


def gate_outcome(matrix: Matrix, gate: Dict[str, float]) -> GateOutcome:
    """Per column x dataset: PASS, FAIL or INCONCLUSIVE against the margin, one line each."""
    margin, outcome = gate["max_drop"], GateOutcome([], [], [])
    for column in matrix.columns:
        for short in matrix.datasets:
            cell = column.cells[short]
            where = f"{column.side.label} {short}"
            decision = cell.decision
            if cell.missing:
                outcome.failures.append(f"{where}: not compared ({cell.missing})")
            elif cell.config_differs:
                outcome.failures.append(
                    f"{where}: dataset config differs from the baseline's ({', '.join(cell.config_differs)})"
                )
            elif decision is None:
                outcome.failures.append(f"{where}: not compared")
            elif decision.verdict == "FAIL":
                outcome.failures.append(
                    f"{where}: FAIL {cell.diff:+.2f} points ({_interval(decision)}): worse than -{margin:g}"
                )
            elif decision.verdict == "PASS":
                outcome.passed.append(f"{where}: PASS {cell.diff:+.2f} points ({_interval(decision)})")
            else:
                mde = f"{decision.mde:.1f}" if decision.mde is not None else "-"
                needed = (
                    f"about {decision.needed:,} questions x repeats would decide it"
                    if decision.needed
                    else "the estimate sits on the margin: more questions cannot decide it"
                )
                outcome.inconclusive.append(
                    f"{where}: INCONCLUSIVE {cell.diff:+.2f} points ({_interval(decision)} holds "
                    f"-{margin:g}); over {cell.paired} questions a difference below {mde} points from the "
                    f"margin cannot be seen (80% power); {needed}"
                )
    return outcome
