"""Many runs against one baseline: datasets x runs, each cell a paired test on the shared questions.

`bench-app compare BASE RUN [RUN ...]` answers "which precision can ship?": for every dataset and run,
the score, its delta against the baseline, and whether the delta is more than noise.

- A side (the baseline or a column) is one run, or the repeats of one configuration pooled.
- Cells pair the samples both sides scored with the same prompt. One run against one run, right/wrong:
  the exact McNemar test (bench_app.reports.paired). A pooled side scores each question by its share of
  right answers over the repeats (a graded score); those cells use a paired bootstrap of the mean
  difference, whose percentile interval also gives the p-value (p < 0.05 iff the 95% interval misses 0).
- Testing many datasets at once inflates false alarms; Holm's step-down correction adjusts each
  column's p-values, and a cell is significant when its adjusted p is below 0.05. A cell that is not says
  how large a difference could have been seen (the minimum detectable effect, 80% power).
- The release gate (`--gate 'max_drop=M'`) is a non-inferiority decision per cell
  (bench_app.reports.decisions): PASS, FAIL or INCONCLUSIVE, with its interval, minimum detectable effect
  and the questions that would decide an open one.
- The aggregate is the mean over datasets of the paired deltas, with a bootstrap interval that resamples
  each dataset's questions (stratified), so a large dataset does not drown a small one.
- A cell whose dataset configuration differs from the baseline's (prompt, subsets, generation settings,
  the AISBench config file) is flagged with the keys that differ: it is shown, never silently compared.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

from bench_app.common.errors import UserError
from bench_app.config.schema import EvaluatorSettings
from bench_app.records.documents import PerDataset
from bench_app.records.folder import RunFolder, headline
from bench_app.reports import decisions
from bench_app.reports.compare import diff_mappings
from bench_app.reports.paired import SIGNIFICANCE, mcnemar_exact_p
from bench_app.run.planning.load_levels import split_short

BOOTSTRAP_SAMPLES = 4000
BOOTSTRAP_SEED = 0  # the same folders always give the same intervals
# Evaluator settings that change how fast answers come or how many per question, not which questions are
# asked or how: compared runs may differ in them (repeats: a side's answers pool per question).
_OPERATIONAL = {
    "max_num_workers",
    "batch_size",
    "retry",
    "num_warmups",
    "dump_eval_details",
    "mode",
    "repeats",
}


@dataclass
class Side:
    """The baseline or one column: a run, or the repeats of one configuration (pooled)."""

    label: str
    runs: List[Path]
    # execution.load_levels: only this level's datasets (`<short>@c<level>`), named without the level
    level: Optional[int] = None

    @property
    def pooled(self) -> bool:
        return len(self.runs) > 1


def _evaluator_defaults() -> Dict[str, Any]:
    return {f.name: f.default for f in EvaluatorSettings.aisbench_fields() if f.default is not MISSING}


def dataset_config(per_dataset: PerDataset) -> Dict[str, Any]:
    """What decides the questions and how they are asked (not the engine, not the evaluator's pace).
    A setting a run recorded no value for (written before bench_app had it) counts at its default."""
    recorded = {**_evaluator_defaults(), **per_dataset.aisbench.to_dict()}
    aisbench = {k: v for k, v in recorded.items() if k not in _OPERATIONAL}
    return {
        "dataset.name": per_dataset.dataset.name,
        "aisbench": aisbench,
        "model_config": per_dataset.generation.to_dict(),
        "config_file.sha256": per_dataset.config_file.sha256 if per_dataset.config_file else None,
    }


@dataclass
class SideData:
    """What a side holds per dataset: scores, per-question values (0..1) and prompts, its config."""

    side: Side
    scores: Dict[str, List[float]] = field(default_factory=dict)  # headline of each ok run
    metric: Dict[str, str] = field(default_factory=dict)
    failed: Dict[str, str] = field(default_factory=dict)  # dataset -> status/reason where no run is ok
    values: Dict[str, Dict[Tuple[str, Any], float]] = field(default_factory=dict)
    prompts: Dict[str, Dict[Tuple[str, Any], Any]] = field(default_factory=dict)
    config: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    pooled: Set[str] = field(default_factory=set)  # datasets with several answers per question
    # a drawn part of the dataset (a probe, a stage of execution.decide): AISBench numbers its questions anew,
    # so they pair by prompt; and where a staged dataset stopped ("stage k of K")
    by_prompt: Set[str] = field(default_factory=set)
    stopped: Dict[str, str] = field(default_factory=dict)

    @classmethod
    def read(cls, side: Side) -> SideData:
        data = cls(side)
        sums: Dict[str, Dict[Tuple[str, Any], List[float]]] = {}
        for run in side.runs:
            folder = RunFolder(run)
            if not folder.is_run_folder():
                raise UserError(f"{run} is not a bench_app run folder (no configs/config_snapshot.yaml)")
            per_dataset = folder.read_per_dataset()
            for recorded, entry in folder.dataset_results().items():
                short, level = split_short(recorded)
                if level != side.level:
                    if side.level is not None or level is None:
                        continue
                    short = recorded  # a load sweep's levels compared with a plain run: each level apart
                data.config.setdefault(short, dataset_config(per_dataset.get(recorded, PerDataset())))
                main = headline(entry.metrics) if entry.status == "ok" else None
                if main is None:
                    data.failed.setdefault(short, f"{entry.status or 'no result'}: {entry.reason or ''}")
                    continue
                if entry.probe or entry.decided:
                    data.by_prompt.add(short)
                if entry.decided and entry.decided.partial:
                    data.stopped[short] = f"stage {entry.decided.stage} of {entry.decided.stages}"
                data.metric.setdefault(short, main[0])
                data.scores.setdefault(short, []).append(main[1])
                for record in folder.read_samples(recorded) or []:
                    if record.correct is None:
                        continue
                    key = (str(record.subset), record.id)
                    if data.prompts.setdefault(short, {}).setdefault(key, record.prompt) != record.prompt:
                        continue  # a repeat asked another prompt under this id: not the same question
                    sums.setdefault(short, {}).setdefault(key, []).append(float(bool(record.correct)))
        for short in data.scores:
            data.failed.pop(short, None)
        data.values = {s: {k: sum(v) / len(v) for k, v in by_key.items()} for s, by_key in sums.items()}
        # several answers per question: the repeats of a sweep, or of one run (benchmark.repeats)
        data.pooled = {s for s, by_key in sums.items() if any(len(v) > 1 for v in by_key.values())}
        return data

    def score(self, short: str) -> Optional[float]:
        values = self.scores.get(short)
        return sum(values) / len(values) if values else None


@dataclass
class Cell:
    """One dataset x run: the scores, the paired test on the shared questions, and flags."""

    dataset: str
    metric: Optional[str] = None
    base_score: Optional[float] = None
    score: Optional[float] = None
    paired: int = 0
    right_to_wrong: int = 0  # single runs: right in the baseline, wrong in the run
    wrong_to_right: int = 0
    prompt_differs: int = 0
    diff: Optional[float] = None  # paired mean difference, points (run - baseline)
    ci: Optional[Tuple[float, float]] = None
    test: Optional[str] = None  # mcnemar | bootstrap
    p_value: Optional[float] = None
    p_holm: Optional[float] = None
    config_differs: List[str] = field(default_factory=list)
    missing: Optional[str] = None  # why there is no comparison
    mde: Optional[float] = None  # points: the difference this test finds with 80% power (after Holm's alpha)
    stopped: Optional[str] = None  # execution.decide stopped it early: "stage k of K" (not a full score)
    decision: Optional[decisions.Decision] = None  # the release gate's verdict, when there is a gate
    _replicates: Any = None  # bootstrap means of the difference (for the aggregate)
    _differences: Any = None  # per question, points (pooled sides: the gate's t-interval)

    @property
    def delta(self) -> Optional[float]:
        return None if self.score is None or self.base_score is None else self.score - self.base_score

    @property
    def significant(self) -> bool:
        return self.p_holm is not None and self.p_holm < SIGNIFICANCE

    @property
    def worse(self) -> bool:
        return self.significant and (self.diff or 0.0) < 0

    def to_dict(self) -> Dict[str, Any]:
        rounded = lambda x: None if x is None else round(x, 4)  # noqa: E731
        return {
            "metric": self.metric,
            "base_score": rounded(self.base_score),
            "score": rounded(self.score),
            "delta": rounded(self.delta),
            "paired": self.paired,
            "right_to_wrong": self.right_to_wrong,
            "wrong_to_right": self.wrong_to_right,
            "prompt_differs": self.prompt_differs,
            "paired_delta": rounded(self.diff),
            "ci95": None if self.ci is None else [rounded(self.ci[0]), rounded(self.ci[1])],
            "test": self.test,
            "p_value": rounded(self.p_value),
            "p_holm": rounded(self.p_holm),
            "significant": self.significant,
            "worse": self.worse,
            "config_differs": self.config_differs,
            "missing": self.missing,
            "mde": rounded(self.mde),
            "gate": None if self.decision is None else self.decision.to_dict(),
            "stopped": self.stopped,
        }


@dataclass
class Column:
    side: Side
    cells: Dict[str, Cell]
    aggregate: Dict[str, Any]


@dataclass
class Matrix:
    base: Side
    datasets: List[str]
    columns: List[Column]

    def to_dict(self) -> Dict[str, Any]:
        return {
            "baseline": {"label": self.base.label, "runs": [str(r) for r in self.base.runs]},
            "alpha": SIGNIFICANCE,
            "correction": "holm",
            "datasets": self.datasets,
            "runs": [
                {
                    "label": c.side.label,
                    "runs": [str(r) for r in c.side.runs],
                    "cells": {s: cell.to_dict() for s, cell in c.cells.items()},
                    "aggregate": c.aggregate,
                }
                for c in self.columns
            ],
        }


def bootstrap_means(differences, samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED):
    """Means of `samples` resamples (with replacement) of the paired differences."""
    import numpy as np

    values = np.asarray(differences, dtype=float)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    chunk = max(1, 4_000_000 // max(1, len(values)))  # bounded memory for large datasets
    for start in range(0, samples, chunk):
        stop = min(samples, start + chunk)
        means[start:stop] = values[rng.integers(0, len(values), (stop - start, len(values)))].mean(axis=1)
    return means


def percentile_ci(replicates) -> Tuple[float, float]:
    import numpy as np

    low, high = np.percentile(replicates, [100 * SIGNIFICANCE / 2, 100 * (1 - SIGNIFICANCE / 2)])
    return float(low), float(high)


def bootstrap_p(replicates) -> float:
    """Two-sided percentile-bootstrap p-value: twice the share of resamples on the far side of 0."""
    import numpy as np

    below, above = float(np.mean(replicates <= 0)), float(np.mean(replicates >= 0))
    return min(1.0, 2 * min(below, above))


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def compare_cell(short: str, base: SideData, run: SideData) -> Cell:
    cell = Cell(short, metric=base.metric.get(short) or run.metric.get(short))
    cell.base_score, cell.score = base.score(short), run.score(short)
    if short in base.config and short in run.config:
        cell.config_differs = [k for k, _, _ in diff_mappings(base.config[short], run.config[short])]
    if cell.base_score is None or cell.score is None:
        cell.missing = base.failed.get(short) if cell.base_score is None else run.failed.get(short)
        cell.missing = f"{'baseline' if cell.base_score is None else 'run'} {cell.missing or 'has no result'}"
        return cell
    x_values, y_values = base.values.get(short, {}), run.values.get(short, {})
    x_prompts, y_prompts = base.prompts.get(short, {}), run.prompts.get(short, {})
    cell.stopped = run.stopped.get(short) or (
        f"baseline {base.stopped[short]}" if short in base.stopped else None
    )
    if short in base.by_prompt or short in run.by_prompt:  # a drawn part: its own numbering, the same prompts
        x_values = {(k[0], x_prompts[k]): v for k, v in x_values.items()}
        y_values = {(k[0], y_prompts[k]): v for k, v in y_values.items()}
        x_prompts, y_prompts = {k: k[1] for k in x_values}, {k: k[1] for k in y_values}
    shared = [k for k in x_values if k in y_values]
    same = [k for k in shared if x_prompts.get(k) == y_prompts.get(k)]
    cell.prompt_differs = len(shared) - len(same)
    cell.paired = len(same)
    if not same:
        cell.missing = "no questions both answered with the same prompt (samples.jsonl)"
        return cell
    differences = [100.0 * (y_values[k] - x_values[k]) for k in same]
    cell.diff, cell._differences = sum(differences) / len(differences), differences
    cell._replicates = bootstrap_means(differences)
    cell.ci = percentile_ci(cell._replicates)
    if not (base.side.pooled or run.side.pooled or short in base.pooled or short in run.pooled):
        cell.right_to_wrong = sum(1 for k in same if x_values[k] > y_values[k])
        cell.wrong_to_right = sum(1 for k in same if x_values[k] < y_values[k])
        cell.test, cell.p_value = "mcnemar", mcnemar_exact_p(cell.right_to_wrong, cell.wrong_to_right)
    else:
        cell.test, cell.p_value = "bootstrap", bootstrap_p(cell._replicates)
    return cell


def aggregate(cells: List[Cell]) -> Dict[str, Any]:
    """Mean over the datasets with a paired test: scores, delta, and its stratified bootstrap CI."""
    tested = [c for c in cells if c.diff is not None]
    if not tested:
        return {"datasets": 0}
    replicates = sum(c._replicates for c in tested) / len(tested)
    mean = lambda xs: round(sum(xs) / len(xs), 4)  # noqa: E731
    low, high = percentile_ci(replicates)
    return {
        "datasets": len(tested),
        "base_score": mean([c.base_score for c in tested]),
        "score": mean([c.score for c in tested]),
        "paired_delta": mean([c.diff for c in tested]),
        "ci95": [round(low, 4), round(high, 4)],
    }


def decide(cell: Cell, tested: int, margin: Optional[float]) -> None:
    """The cell's minimum detectable effect (at Holm's first alpha, 0.05 / tested) and, with a gate, its
    non-inferiority verdict."""
    if margin is None:
        alpha = decisions.ALPHA / max(1, tested)
        if cell.test == "mcnemar":
            flips = (cell.right_to_wrong, cell.wrong_to_right, cell.paired, alpha)
            spread = decisions.matched_interval(*flips)[2]
        else:
            spread = decisions.graded_interval(cell._differences, alpha)[2]
        cell.mde = decisions.minimum_detectable(spread, cell.paired, alpha)
        return
    if cell.test == "mcnemar":
        cell.decision = decisions.gate(
            margin,
            tested,
            cell.paired,
            right_to_wrong=cell.right_to_wrong,
            wrong_to_right=cell.wrong_to_right,
        )
    else:
        cell.decision = decisions.gate(margin, tested, cell.paired, differences=cell._differences)
    cell.mde = cell.decision.mde  # the same test's, at the same alpha


def build(base: Side, sides: Sequence[Side], margin: Optional[float] = None) -> Matrix:
    """The matrix; with `margin` (the gate's max_drop) every compared cell also gets its gate verdict."""
    base_data = SideData.read(base)
    columns = []
    datasets = list(base_data.config)
    for side in sides:
        data = SideData.read(side)
        datasets += [s for s in data.config if s not in datasets]
        cells = {s: compare_cell(s, base_data, data) for s in datasets}
        tested = [c for c in cells.values() if c.p_value is not None]
        for cell, adjusted in zip(tested, holm([c.p_value for c in tested]), strict=True):
            cell.p_holm = adjusted
            decide(cell, len(tested), margin)
        columns.append(Column(side, cells, aggregate(list(cells.values()))))
    for column in columns:  # a dataset only a later column has is missing in the earlier ones
        for short in datasets:
            column.cells.setdefault(short, Cell(short, missing="run has no result"))
    return Matrix(base, datasets, columns)
