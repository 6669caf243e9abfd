"""What a dataset's per-sample records (<dataset>/samples.jsonl) say about a reasoning model's answers."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence


def _percentile(values: Sequence[int], fraction: float) -> Optional[int]:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))] if ordered else None


def answer_sources(records: List[Dict[str, Any]]) -> Dict[str, int]:
    """How many answers came from the request cache (reused) and how many the server generated now."""
    recorded = [r for r in records if "cached" in r]
    reused = sum(1 for r in recorded if r["cached"])
    return {"reused": reused, "generated": len(recorded) - reused} if recorded else {}


def reasoning_summary(records: List[Dict[str, Any]]) -> Dict[str, Any]:
    """How many answers were cut in their thinking, the score over the answers that finished (the
    server said stop) beside the score over all, and the median and p95 reasoning tokens; {} when no
    answer was recorded as the server gave it (bench_app.run.relay)."""
    recorded = [r for r in records if "cut_in_thinking" in r]
    if not recorded:
        return {}
    scored = [r for r in recorded if r.get("correct") is not None]
    finished = [r for r in scored if r.get("finish_reason") == "stop"]
    thinking = [r["reasoning_tokens"] for r in recorded if r.get("reasoning_tokens")]
    prompts = [r["prompt_tokens"] for r in recorded if r.get("prompt_tokens")]

    def score(rows: List[Dict[str, Any]]) -> Optional[float]:
        return round(100.0 * sum(bool(r["correct"]) for r in rows) / len(rows), 4) if rows else None

    return {
        "answers": len(recorded),
        "finished": sum(1 for r in recorded if r.get("finish_reason") == "stop"),
        "cut_in_thinking": sum(1 for r in recorded if r["cut_in_thinking"]),
        "score_all": score(scored),
        "score_finished": score(finished),
        "reasoning_tokens_median": _percentile(thinking, 0.5),
        "reasoning_tokens_p95": _percentile(thinking, 0.95),
        "longest_prompt_tokens": max(prompts, default=None),
    }
