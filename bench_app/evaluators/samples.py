"""What a dataset's per-sample records (<dataset>/samples.jsonl) say: a reasoning model's answers, repeats."""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

from bench_app.records.documents import AnswerSources, ReasoningSummary, RepeatSummary, SampleRecord


def _percentile(values: Sequence[int], fraction: float) -> Optional[int]:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else None


def answer_sources(records: List[SampleRecord]) -> Optional[AnswerSources]:
    """How many answers came from the request cache (reused) and how many the server generated now."""
    recorded = [r for r in records if r.cached is not None]
    reused = sum(1 for r in recorded if r.cached)
    return AnswerSources(reused=reused, generated=len(recorded) - reused) if recorded else None


def reasoning_summary(records: List[SampleRecord]) -> Optional[ReasoningSummary]:
    """How many answers were cut in their thinking, the score over the answers that finished (the
    server said stop) beside the score over all, and the median and p95 reasoning tokens; None when no
    answer was recorded as the server gave it (bench_app.run.relay.proxy)."""
    recorded = [r for r in records if r.cut_in_thinking is not None]
    if not recorded:
        return None
    scored = [r for r in recorded if r.correct is not None]
    finished = [r for r in scored if r.finish_reason == "stop"]
    thinking = [r.reasoning_tokens for r in recorded if r.reasoning_tokens]
    prompts = [r.prompt_tokens for r in recorded if r.prompt_tokens]

    def score(rows: List[SampleRecord]) -> Optional[float]:
        return round(100.0 * sum(bool(r.correct) for r in rows) / len(rows), 4) if rows else None

    return ReasoningSummary(
        answers=len(recorded),
        finished=sum(1 for r in recorded if r.finish_reason == "stop"),
        cut_in_thinking=sum(1 for r in recorded if r.cut_in_thinking),
        score_all=score(scored),
        score_finished=score(finished),
        reasoning_tokens_median=_percentile(thinking, 0.5),
        reasoning_tokens_p95=_percentile(thinking, 0.95),
        longest_prompt_tokens=max(prompts, default=None),
    )


def mean_interval(scores: Sequence[float]) -> Tuple[float, float, float]:
    """Repeated scores (two or more): their mean, its standard error across them, and the half-width of its
    95% Student-t interval. SciPy is imported here, so that a run without repeats never loads it."""
    from scipy import stats

    error = statistics.stdev(scores) / math.sqrt(len(scores))
    return statistics.fmean(scores), error, float(stats.t.ppf(0.975, len(scores) - 1)) * error


def repeat_summary(records: List[SampleRecord]) -> Optional[RepeatSummary]:
    """Repeats in one run (records with `repeat`): k, the seeds, each repeat's score (its pass over every
    question, in the order of the seeds), their mean (avg@k), its standard error and 95% t-interval across
    repeats, pass@k (a question counts when any of its k answers is right: the unbiased estimator's value
    with n = k), and maj@k: each question scored by its most frequent extracted answer, where the evaluator
    extracts answers. None without repeats."""
    rows = [r for r in records if r.repeat is not None and r.correct is not None]
    if not rows:
        return None
    by_repeat: Dict[int, List[bool]] = {}
    by_question: Dict[Tuple[str, Any], List[SampleRecord]] = {}
    # each repeat's pass is its seed's (what a job with that seed scores): AISBench's k places of a question
    # are filled in the order its copies arrive, so a place holds different seeds for different questions
    by_seed = all(row.seed is not None for row in rows)
    for row in rows:
        by_repeat.setdefault(int(row.seed if by_seed else row.repeat), []).append(bool(row.correct))
        by_question.setdefault((str(row.subset), row.id), []).append(row)
    scores = [100.0 * sum(v) / len(v) for _, v in sorted(by_repeat.items())]
    k = len(scores)
    summary = RepeatSummary(
        k=k,
        questions=len(by_question),
        seeds=sorted({int(r.seed) for r in rows if r.seed is not None}),
        scores=[round(s, 4) for s in scores],
        mean=round(statistics.fmean(scores), 4),
    )
    if k > 1:
        _, error, half = mean_interval(scores)
        summary.std_error = round(error, 4)
        summary.ci95 = [round(summary.mean - half, 4), round(summary.mean + half, 4)]
    summary.pass_at_k = round(
        100.0 * sum(any(r.correct for r in q) for q in by_question.values()) / len(by_question), 4
    )
    if any(r.prediction not in (None, "") for r in rows):  # the evaluator extracts answers
        votes = [_majority_vote(answers) for answers in by_question.values()]
        summary.maj_at_k = round(100.0 * sum(votes) / len(votes), 4)
    return summary


def _majority_vote(answers: List[SampleRecord]) -> float:
    """A question's majority vote: 1 when its most frequent extracted answer is right; a tie scores the share
    of the tied answers that are right (what breaking it at random gives on average, whatever the order the
    repeats came in). No extracted answer is one more answer, never right."""
    votes = [json.dumps(r.prediction or "", sort_keys=True) for r in answers]
    right = {vote for vote, r in zip(votes, answers, strict=True) if r.correct and vote != '""'}
    counts = Counter(votes)
    top = max(counts.values())
    tied = [vote for vote, count in counts.items() if count == top]
    return sum(vote in right for vote in tied) / len(tied)
