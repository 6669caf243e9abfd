"""SIMULATION, no model and no server: what `execution.decide` saves and what it gets wrong, on simulated
datasets with a known truth, evaluated in nested stages and stopped at the first decided look
(bench_app.run.sequential: O'Brien-Fleming-type alpha spending, one-sided alpha per dataset).

    .venv/bin/python benchmarks/decide.py [--questions 14042 198] [--stages 0.1 0.25 0.5 1.0]
        [--margin 1 5] [--tolerance 2 5] [--flip-rate 0.10 0.20] [--reference 65.8 40]
        [--alpha 0.025] [--simulations 10000] [--seed 1]

--margin, --tolerance, --flip-rate and --reference take one value for every size or one per size.
For each size: the release gate (paired answers, a share --flip-rate of them flipped either way) with no
drop, a drop of twice the margin and a drop equal to the margin; parity against a published figure
--reference with the run's truth at it, at twice the tolerance above it and at the tolerance above it.
Prints the share of requests saved against a full run (1 - questions asked / total, averaged), the verdict
rates, the error rates (nominal: at most alpha each at the boundary truths) and where runs stopped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_app.run import sequential  # noqa: E402

KNOWN = {14042: "MMLU", 198: "GPQA-Diamond"}


def stage_counts(rng, questions: int, stages: Sequence[float], probabilities, simulations: int):
    """Cumulative category counts at each stage of one question order (i.i.d. questions: each stage's new
    questions are a multinomial draw), shape (simulations, stages, categories), and the stage sizes."""
    sizes = [max(1, round(t * questions)) for t in stages]
    new = np.diff([0] + sizes)
    draws = np.stack([rng.multinomial(m, probabilities, size=simulations) for m in new], axis=1)
    return np.cumsum(draws, axis=1), sizes


def stop(counts, sizes, bounds, look: Callable, undecided: str):
    """Each simulated run's verdict and questions asked: its first decided look, else all of them."""
    verdicts, asked = [], []
    for run in counts:
        for row, size, boundary in zip(run, sizes, bounds, strict=True):
            decided = look(row, size, boundary)
            if decided.verdict is not None:
                verdicts.append(decided.verdict)
                asked.append(size)
                break
        else:
            verdicts.append(undecided)
            asked.append(sizes[-1])
    return np.array(verdicts), np.array(asked)


def summarise(label, verdicts, asked, sizes, labels: List[str], errors: Dict[str, List[str]]) -> None:
    rates = "  ".join(f"{name} {np.mean(verdicts == name):6.1%}" for name in labels)
    wrong = "  ".join(f"{name} {np.isin(verdicts, kinds).mean():6.2%}" for name, kinds in errors.items())
    stopped = " / ".join(f"{np.mean(asked == n):.0%}" for n in sizes)
    saved = 1 - asked.mean() / sizes[-1]
    print(f"  {label:<26} saved {saved:6.1%}  | {rates}  | errors: {wrong or '-'}  | stopped at: {stopped}")


def per_size(values: Sequence[float], count: int, name: str) -> List[float]:
    if len(values) not in (1, count):
        raise SystemExit(f"--{name}: one value, or one per size ({count})")
    return list(values) * count if len(values) == 1 else list(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, nargs="+", default=[14042, 198])
    parser.add_argument("--stages", type=float, nargs="+", default=[0.1, 0.25, 0.5, 1.0])
    parser.add_argument("--margin", type=float, nargs="+", default=[1.0, 5.0], help="gate max_drop, points")
    parser.add_argument("--tolerance", type=float, nargs="+", default=[2.0, 5.0], help="parity, points")
    parser.add_argument("--flip-rate", type=float, nargs="+", default=[0.10, 0.20])
    parser.add_argument("--reference", type=float, nargs="+", default=[65.8, 40.0], help="published score")
    parser.add_argument("--alpha", type=float, default=0.025, help="one-sided, per dataset")
    parser.add_argument("--simulations", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    count = len(args.questions)
    margins, tolerances = per_size(args.margin, count, "margin"), per_size(args.tolerance, count, "tolerance")
    flips, references = (
        per_size(args.flip_rate, count, "flip-rate"),
        per_size(args.reference, count, "reference"),
    )
    bounds = sequential.boundaries(args.stages, args.alpha)
    print(f"SIMULATION ({args.simulations} runs per truth, seed {args.seed}): stages {args.stages}, "
          f"one-sided alpha {args.alpha}, boundaries {[round(b, 4) for b in bounds]};\n"
          "'stopped at': the share of runs whose first decided look was each stage "
          "(the last: decided there or never)")  # fmt: skip
    rng = np.random.default_rng(args.seed)
    for questions, margin, tolerance, flip, reference in zip(
        args.questions, margins, tolerances, flips, references, strict=True
    ):
        name = KNOWN.get(questions, "")
        print(
            f"\n{questions} questions {name} - gate: max_drop {margin} points, {flip:.0%} of answers flipped"
        )
        for label, difference, errors in (
            ("no drop", 0.0, {"FAIL": ["FAIL"]}),
            (f"drop {2 * margin:g} (2x margin)", -2 * margin, {"PASS": ["PASS"]}),
            (f"drop {margin:g} (= margin)", -margin, {"false PASS": ["PASS"], "false FAIL": ["FAIL"]}),
        ):
            delta = difference / 100
            counts, sizes = stage_counts(
                rng,
                questions,
                args.stages,
                [(flip + delta) / 2, (flip - delta) / 2, 1 - flip],
                args.simulations,
            )
            verdicts, asked = stop(
                counts, sizes, bounds,
                lambda row, n, b, margin=margin: sequential.gate_look(int(row[0]), int(row[1]), n, margin, b),
                "INCONCLUSIVE",
            )  # fmt: skip
            summarise(label, verdicts, asked, sizes, ["PASS", "FAIL", "INCONCLUSIVE"], errors)
        print(f"{questions} questions {name} - parity: reference {reference}, tolerance {tolerance} points")
        for label, difference, errors in (
            ("truth at the reference", 0.0, {"below/above": ["below", "above"]}),
            (f"truth +{2 * tolerance:g} (2x tolerance)", 2 * tolerance,
             {"consistent/below": ["consistent", "below"]}),
            (f"truth +{tolerance:g} (= tolerance)", tolerance, {"false consistent": ["consistent"],
                                                                "false above": ["above"]}),
        ):  # fmt: skip
            truth = (reference + difference) / 100
            counts, sizes = stage_counts(rng, questions, args.stages, [truth, 1 - truth], args.simulations)
            verdicts, asked = stop(
                counts, sizes, bounds,
                lambda row, n, b, reference=reference, tolerance=tolerance: sequential.parity_look(
                    int(row[0]), n, reference, tolerance, b
                ),
                "inconclusive",
            )  # fmt: skip
            summarise(label, verdicts, asked, sizes, ["consistent", "below", "above", "inconclusive"], errors)


if __name__ == "__main__":
    main()
