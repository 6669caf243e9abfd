"""`bench-app parity RUN`: is the run's score the published one? Per dataset the run's score with its 95%
interval, the reference's, the difference, and a verdict with its reasons.

References are YAML files (conf/reference/<name>.yaml, and any folder given with --reference-dir): per dataset
and mode (thinking / non_thinking) the published score, metric, variant, number of questions, repeats,
sampling settings and output budget, where the source gives it and whether it was checked there, and what
the source does not report. A run picks the reference whose `matches` its model path or served name contains
(the longest such pattern wins, `excludes` rule one out), unless one is named.

Verdicts (an equivalence decision, bench_app.reports.decisions): `consistent` (the 95% interval of run -
reference lies within +-tolerance, counting the reference's own sampling error where its questions and
repeats are known), `below` / `above` (it lies beyond -tolerance / +tolerance), `inconclusive` (neither:
with the questions x repeats that would decide it), `not comparable` (no reference for the dataset or its
mode, or no score). Settings that move scores (thinking
mode, a smaller output budget, greedy decoding where the authors sample, fewer repeats, a subset or another
variant) add a caution to the verdict: the numbers may differ for that reason alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import yaml

from bench_app.common.errors import UserError
from bench_app.common.files import atomic_write
from bench_app.evaluators.samples import mean_interval
from bench_app.records.documents import DatasetEntry, PerDataset
from bench_app.records.folder import RunFolder
from bench_app.records.reference import ParityReference, PublishedFigure
from bench_app.reports import decisions
from bench_app.reports.references import (
    load_reference,
)
from bench_app.run.planning import sampling

DEFAULT_TOLERANCE = 2.0  # points: how far from the published figure still counts as the same
GREEDY_BELOW = 0.05  # a temperature at or below this decodes (almost) greedily


@dataclass
class Row:
    dataset: str
    mode: str
    score: Optional[float] = None
    questions: Optional[int] = None
    ci95: Optional[Tuple[float, float]] = None
    reference: Optional[float] = None
    difference: Optional[float] = None
    verdict: str = "not comparable"
    where: Optional[str] = None  # where the source gives the reference's figure (table, page)
    decision: Optional[decisions.Decision] = None  # its interval, mde, and the questions that would decide
    verified: Optional[bool] = None  # whether that figure was checked against its source
    reasons: List[str] = field(default_factory=list)
    cautions: List[str] = field(default_factory=list)

    @property
    def shown(self) -> Dict[str, str]:
        """score (with its interval and n), reference, difference and verdict as the tables write them."""
        interval = f" [{self.ci95[0]:g}, {self.ci95[1]:g}]" if self.ci95 else ""
        return {
            "score": f"{self.score:g}{interval} (n={self.questions})" if self.score is not None else "-",
            "reference": f"{self.reference:g}" if self.reference is not None else "-",
            "difference": f"{self.difference:+g}" if self.difference is not None else "-",
            "verdict": self.verdict + (" (caution)" if self.cautions else ""),
        }


@dataclass
class ParityReport:
    """What `bench-app parity` found: printed, written as HTML, given as JSON (--json), exported to MLflow."""

    run: str
    reference: str  # the reference file's name
    tolerance: float
    verified: bool  # every figure this run was compared with was checked against the source
    source: Optional[str]
    repeats: int
    rows: List[Row]

    @property
    def unverified(self) -> List[str]:
        """The datasets whose reference figure is not checked against its source."""
        return [row.dataset for row in self.rows if row.verified is False]

    def to_dict(self) -> Dict[str, Any]:
        rows = [{**asdict(r), "decision": r.decision.to_dict() if r.decision else None} for r in self.rows]
        return {**asdict(self), "rows": rows}


def wilson(score: float, n: int) -> Tuple[float, float]:
    """95% Wilson interval of a percentage over n questions, in percent (run.planning.sampling's)."""
    return sampling.wilson(score * n / 100.0, n)


def _mode(per_dataset: PerDataset) -> str:
    thinking = per_dataset.generation.thinking
    return "non_thinking" if thinking is False else "thinking"  # null: the chat template's default (thinks)


def _questions(entry: DatasetEntry) -> Optional[int]:
    if entry.probe and entry.probe.size:
        return int(entry.probe.size)
    if entry.repeats and entry.repeats.questions:  # repeats in one run: a record per answer
        return int(entry.repeats.questions)
    if entry.samples:
        return int(entry.samples)
    return int(entry.prompts.total) if entry.prompts and entry.prompts.total else None


def _cautions(document: PerDataset, published: PublishedFigure, repeats_run: int = 1) -> List[str]:
    aisbench, model_config = document.aisbench, document.generation
    generation_kwargs = model_config.generation_kwargs or {}
    said: List[str] = []
    budget, wanted = model_config.max_out_len, published.max_out_len
    if budget and wanted and int(budget) < int(wanted):
        said.append(f"max_out_len {budget} < the reference's {wanted}: long answers are cut")
    temperature, sampled = generation_kwargs.get("temperature"), published.sampling.get("temperature")
    if temperature is not None and sampled and float(temperature) <= GREEDY_BELOW < float(sampled):
        said.append(f"greedy decoding (temperature {temperature}) where the authors sample at {sampled}")
    penalty = published.sampling.get("presence_penalty")
    if penalty and not generation_kwargs.get("presence_penalty"):
        said.append(f"no presence penalty where the authors use {penalty}")
    repeats = published.repeats or 1
    if repeats > repeats_run:
        passes = "one pass" if repeats_run == 1 else f"{repeats_run} repeats"
        said.append(f"{passes} where the reference averages {repeats} samples per question")
    name, variants = document.dataset.name, published.names
    if variants and name not in variants:
        said.append(f"{name} is not the reference's variant {published.variant} ({', '.join(variants)})")
    subset = {k: getattr(aisbench, k) for k in ("num_prompts", "sample_size", "subsets")}
    if any(v is not None for v in subset.values()):
        shown = ", ".join(f"{k} {v}" for k, v in subset.items() if v is not None)
        said.append(f"a subset of the dataset ({shown})")
    return said


def _what_would_decide(decision, tolerance: float, samples: Optional[int], reference: float) -> str:
    if samples:
        own = decisions.reference_margin(reference, samples)
        if own >= tolerance:
            return (
                f"the reference's own 95% margin over its {samples:,} samples is +-{own:.1f} points, wider "
                f"than the tolerance: no run can be shown within +-{tolerance:g} of it (widen --tolerance)"
            )
    mde = f"{decision.mde:.1f}" if decision.mde is not None else "-"
    if decision.needed:
        return (
            f"a difference below {mde} points from the tolerance cannot be seen at this size (80% power); "
            f"about {decision.needed:,} questions x repeats would decide it"
        )
    return "the estimate sits on the tolerance: more questions cannot decide it"


def _runs(path: Path) -> List[RunFolder]:
    """The run (its repeats, if any, inside it), or the runs of a sweep of repeats (one job per seed)."""
    folder = RunFolder(path)
    if folder.is_run_folder():
        return [folder]
    jobs = [RunFolder(p) for p in sorted(Path(path).iterdir()) if p.is_dir() and RunFolder(p).is_run_folder()]
    if not jobs:
        raise UserError(f"{path} is neither a run folder nor a sweep of run folders")
    return jobs


def _repeat_interval(scores: List[float]) -> Tuple[float, float]:
    """95% t-interval of the mean over repeats, within 0..100."""
    mean, _, half = mean_interval(scores)
    return round(max(0.0, mean - half), 1), round(min(100.0, mean + half), 1)


def parity(
    run: Path,
    reference: Optional[str] = None,
    extra: Sequence[Path] = (),
    tolerance: float = DEFAULT_TOLERANCE,
) -> ParityReport:
    if not tolerance >= 0:
        raise UserError(
            f"--tolerance {tolerance:g}: give a number of points >= 0 (default {DEFAULT_TOLERANCE:g})"
        )
    runs = _runs(run)
    results = [r.read_results() for r in runs]
    per_dataset = runs[0].read_per_dataset()
    model = results[0].model
    chosen, document = load_reference(reference, [model.path, model.name], extra)
    rows: List[Row] = []
    repeats = len(runs)
    for short, entry in results[0].datasets.items():
        config = per_dataset.get(short, PerDataset())
        row = Row(short, _mode(config))
        rows.append(row)
        entries = [r.datasets.get(short) for r in results]
        scores = [e.metrics.get("accuracy") for e in entries if e is not None and e.status == "ok"]
        if len(scores) != len(entries) or not all(isinstance(x, (int, float)) for x in scores):
            row.reasons.append(
                f"the run has no score ({entry.status})" if len(runs) == 1 else "a repeat has no score"
            )
            continue
        inside = entries[0].repeats.scores if len(entries) == 1 and entries[0].repeats else None
        if inside and len(inside) > 1:  # repeats in one run: each repeat's pass over every question
            scores = [float(x) for x in inside]
        repeats = max(repeats, len(scores))
        row.score, row.questions = round(sum(scores) / len(scores), 4), _questions(entry)
        if len(scores) > 1:  # repeats: their spread, not one pass's sampling error
            row.ci95 = _repeat_interval([float(x) for x in scores])
        elif row.questions:
            row.ci95 = wilson(row.score, row.questions)
        key = short.split("@")[0]
        if key not in document.datasets:
            why = document.not_reported.get(key)
            row.reasons.append(f"no reference: {why}" if why else f"no reference for {key} in {chosen}")
            continue
        published = document.figure(key, row.mode)
        if published is None or published.score is None:
            row.reasons.append(f"the reference has no {row.mode.replace('_', '-')} score for {key}")
            continue
        row.reference = float(published.score)
        row.difference = round(row.score - row.reference, 2)
        row.where, row.verified = published.where, document.is_verified(published)
        row.cautions = _cautions(config, published, len(scores))
        if not row.verified:
            row.cautions.append(
                f"the reference's figure for {key} is marked unverified (not checked against its source)"
            )
        if row.ci95 is None:
            row.reasons.append("the number of questions is not recorded: no interval")
            continue
        samples = published.samples
        decision = decisions.parity(
            row.score,
            row.questions or len(scores),
            row.reference,
            tolerance,
            samples,
            row.ci95 if len(scores) > 1 else None,
        )
        row.verdict, row.decision = decision.verdict, decision
        over = (
            f"the mean of {len(scores)} repeats ({', '.join(f'{x:g}' for x in scores)})"
            if len(scores) > 1
            else f"{row.questions} questions"
        )
        low, high = decision.interval
        own = f", counting the reference's own error over {samples:,} samples" if samples else ""
        placed = {
            "consistent": f"within +-{tolerance:g}",
            "below": f"below -{tolerance:g}",
            "above": f"above +{tolerance:g}",
        }.get(row.verdict, f"not decided against +-{tolerance:g}")
        row.reasons.append(
            f"run - reference: 95% interval {low:+.1f}..{high:+.1f} over {over}{own}: {placed}"
            + (f" (reference: {row.where})" if row.where else "")
        )
        if row.verdict == "inconclusive":
            row.reasons.append(_what_would_decide(decision, tolerance, samples, row.reference))
    compared = [row.verified for row in rows if row.verified is not None]
    return ParityReport(
        run=str(run),
        reference=chosen,
        tolerance=tolerance,
        verified=all(compared) if compared else bool(document.verified),
        source=document.source,
        repeats=repeats,
        rows=rows,
    )


def lines(report: ParityReport) -> List[str]:
    said = [f"parity of {report.run} against reference {report.reference} ({report.source or ''})"]
    if not report.verified:
        unchecked = report.unverified
        said.append(
            "  note: the reference's figures "
            + (f"for {', '.join(unchecked)} " if unchecked else "")
            + "are marked unverified (verified: false in its file)"
        )
    for row in report.rows:
        shown = row.shown
        said.append(
            f"  {row.dataset} [{row.mode}]: run {shown['score']}, reference {shown['reference']}, difference "
            f"{shown['difference']}: {shown['verdict']}"
        )
        said.extend(f"      {reason}" for reason in row.reasons)
        said.extend(f"      caution: {caution}" for caution in row.cautions)
    return said


def gate(report: ParityReport, spec: str) -> List[str]:
    """Datasets that fail the gate (e.g. max_below=2.0: below the reference by more than 2 points)."""
    key, _, value = spec.partition("=")
    if key.strip() != "max_below":
        raise UserError(f"--gate {spec!r}: give max_below=POINTS")
    try:
        limit = float(value)
    except ValueError:
        raise UserError(f"--gate {spec!r}: {value!r} is not a number of points") from None
    return [
        f"{r.dataset}: {r.difference:+g} points (below by more than {limit:g})"
        for r in report.rows
        if r.verdict == "below" and r.difference is not None and -r.difference > limit
    ]


def save_reference(run: Path, name: str, folder: Path) -> Path:
    """A run's scores and settings as a reference of its own (a team's baseline)."""
    target = Path(folder) / f"{name}.yaml"
    if target.exists():
        raise UserError(f"{target} exists; it is never overwritten: choose another name")
    run_folder = RunFolder(run)
    results, per_dataset = run_folder.read_results(), run_folder.read_per_dataset()
    datasets: Dict[str, Dict[str, PublishedFigure]] = {}
    for short, entry in results.datasets.items():
        score = entry.metrics.get("accuracy")
        if entry.status != "ok" or not isinstance(score, (int, float)):
            continue
        config = per_dataset.get(short, PerDataset())
        datasets.setdefault(short.split("@")[0], {})[_mode(config)] = PublishedFigure(
            score=float(score),
            metric="accuracy",
            variant=config.dataset.name,
            questions=_questions(entry),
            max_out_len=config.generation.max_out_len,
            repeats=1,
            sampling=config.generation.generation_kwargs or {},
        )
    model = results.model.path or results.model.name or ""
    document = ParityReference(
        model=results.model.name or model,
        matches=[m for m in {results.model.name, Path(str(model)).name} if m],
        verified=True,
        source=f"bench_app run {run.resolve()} ({results.benchmark.timestamp})",
        datasets=datasets,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, yaml.safe_dump(document.to_dict(), sort_keys=False, allow_unicode=True))
    return target


def to_json(report: ParityReport) -> str:
    return json.dumps(report.to_dict(), indent=1, ensure_ascii=False)


def write_html(report: ParityReport, out: Path) -> Path:
    """The verdicts as one self-contained HTML table."""
    from html import escape

    head = ["dataset", "mode", "run (95% interval, n)", "reference", "difference", "verdict", "why"]
    body = []
    for row in report.rows:
        shown = row.shown
        cells = [
            row.dataset,
            row.mode,
            shown["score"],
            shown["reference"],
            shown["difference"],
            shown["verdict"],
            "; ".join(row.reasons + [f"caution: {c}" for c in row.cautions]),
        ]
        body.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    unchecked = report.unverified
    note = (
        ""
        if report.verified
        else f"<p><b>The reference's figures {escape(' for ' + ', '.join(unchecked)) if unchecked else ''} "
        "are marked unverified.</b></p>"
    )
    page = (
        "<!doctype html><meta charset='utf-8'><title>parity</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border-bottom:1px solid #ddd;padding:4px 8px;"
        "text-align:left;vertical-align:top}</style>"
        f"<h1>Parity: {escape(Path(report.run).name)} vs {escape(report.reference)}</h1>"
        f"<p>{escape(report.source or '')}</p>{note}<table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(body)
        + "</table>"
    )
    atomic_write(out, page)
    return out
