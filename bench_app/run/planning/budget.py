"""Context budget: do the prompts fit, checked before any server starts (also in a dry run).

For every dataset the evaluator renders its prompts the way it will send them (chat template
applied by the model's own tokenizer) and counts their tokens; each must leave room for max_out_len
inside its engine group's max_model_len. Counting costs one evaluator process for all datasets
(seconds: it imports the evaluator); the counts are cached under .cache/context_budget/, keyed by
the task, the dataset files, the tokenizer files and the chat template, so a repeated run is instant.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from bench_app.common.errors import ComponentError, UserError
from bench_app.common.files import atomic_write
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.records.documents import ContextBudget
from bench_app.run.planning.plan import DatasetPlan, RunPlan

# BENCH_APP_BUDGET_CACHE moves it (benchmarks measure a cold cache with an empty folder).
CACHE_DIR = Path(os.environ.get("BENCH_APP_BUDGET_CACHE") or PROJECT_ROOT / ".cache" / "context_budget")
CHECK_MODES = ("error", "warn", "off")


@dataclass
class DatasetBudget:
    prompts: int = 0
    longest_prompt_tokens: int = 0
    median_prompt_tokens: float = 0
    max_out_len: int = 0
    max_model_len: int = 0
    # max_model_len - (longest prompt + its max_out_len); negative: the longest sample does not fit.
    headroom: int = 0
    not_fitting: int = 0
    # 0-based index of the longest prompt in the dataset (as the evaluator orders it).
    longest_sample: int = -1
    cached: bool = False
    skipped: Optional[str] = None  # why it could not be checked (tokenizer or data not available)
    # Prompts per subset in the task's order, and the subsets' names (what a probe is drawn from).
    subset_sizes: List[int] = field(default_factory=list)
    subset_names: List[str] = field(default_factory=list)

    def record(self) -> ContextBudget:
        if self.skipped:
            return ContextBudget(skipped=self.skipped)
        return ContextBudget(**{k: v for k, v in asdict(self).items() if k != "skipped"})


def _stat_lines(paths: Iterable[Path]) -> List[str]:
    """Size and mtime of every file under the given paths (no content is read: cheap for big data)."""
    lines = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                stat = file.stat()
                lines.append(f"{file}:{stat.st_size}:{stat.st_mtime_ns}")
            except OSError:
                lines.append(f"{file}:absent")
    return lines


def cache_key(task_text: str, data_paths: List[Path], tokenizer_files: List[Path]) -> str:
    parts = [task_text, *_stat_lines(data_paths), *_stat_lines(tokenizer_files)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def summarise(
    counts: Dict[str, list], max_model_len: int, num_prompts: Optional[int] = None
) -> DatasetBudget:
    """The budget of the prompts that will be sent: the first num_prompts of each subset, as AISBench
    takes them (of the whole list when the counts do not say where subsets begin)."""
    tokens, out_lens = counts["prompt_tokens"], counts["max_out_len"]
    if num_prompts is not None:
        sizes = counts.get("subset_sizes") or [len(tokens)]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        keep = [
            i
            for start, size in zip(starts, sizes, strict=True)
            for i in range(start, start + min(size, num_prompts))
        ]
        tokens, out_lens = [tokens[i] for i in keep], [out_lens[i] for i in keep]
    if not tokens:
        return DatasetBudget(max_model_len=max_model_len, skipped="no prompts were rendered")
    longest = max(range(len(tokens)), key=lambda i: tokens[i])
    return DatasetBudget(
        prompts=len(tokens),
        longest_prompt_tokens=tokens[longest],
        median_prompt_tokens=statistics.median(tokens),
        max_out_len=max(out_lens),
        max_model_len=max_model_len,
        headroom=max_model_len - tokens[longest] - out_lens[longest],
        not_fitting=sum(1 for t, o in zip(tokens, out_lens, strict=True) if t + o > max_model_len),
        longest_sample=longest,
    )


def count_tokens(plan: RunPlan, datasets: List[DatasetPlan]) -> Dict[str, Dict[str, list]]:
    """Token counts per dataset, from the cache or the evaluator (one process for all misses)."""
    counts: Dict[str, Dict[str, list]] = {}
    misses: Dict[str, str] = {}
    for dataset in datasets:
        try:
            key = cache_key(
                *plan.evaluator.prompt_inputs(
                    dataset.short, dataset.name, dataset.evaluator, str(dataset.engine_args["model_path"])
                )
            )
        except NotImplementedError as error:
            counts[dataset.short] = {"error": str(error)}
            continue
        cached = CACHE_DIR / f"{key}.json"
        if cached.exists():
            counts[dataset.short] = {**json.loads(cached.read_text()), "cached": True}
        else:
            misses[dataset.short] = key
    by_model: Dict[str, List[DatasetPlan]] = {}
    for dataset in datasets:
        if dataset.short in misses:
            by_model.setdefault(str(dataset.engine_args["model_path"]), []).append(dataset)
    for model_path, group in by_model.items():
        items = [(d.short, d.name, d.evaluator) for d in group]
        try:
            found = plan.evaluator.count_prompt_tokens(items, model_path)
        except (ComponentError, OSError, subprocess.SubprocessError) as error:
            # The evaluator environment itself is unusable: say so, cache nothing, let the run report it.
            reason = getattr(error, "reason", None) or str(error)
            for short, _, _ in items:
                counts[short] = {"error": f"cannot count prompt tokens: {reason}"}
            continue
        for short, result in found.items():
            counts[short] = result
            atomic_write(CACHE_DIR / f"{misses[short]}.json", json.dumps(result))
    return counts


def check_context(plan: RunPlan, mode: str) -> Dict[str, DatasetBudget]:
    """The budget of every dataset; raises UserError in mode `error` when a sample does not fit."""
    if mode not in CHECK_MODES:
        raise UserError(
            f"execution.context_check: {mode!r} is not supported. Valid: {', '.join(CHECK_MODES)}."
        )
    if mode == "off":
        return {}
    counts = count_tokens(plan, plan.datasets)
    budgets: Dict[str, DatasetBudget] = {}
    for dataset in plan.datasets:
        result = counts.get(dataset.short, {"error": "not counted"})
        max_model_len = int(plan.groups[dataset.group].engine_args["max_model_len"])
        if "error" in result:
            budgets[dataset.short] = DatasetBudget(max_model_len=max_model_len, skipped=result["error"])
        else:
            budgets[dataset.short] = summarise(result, max_model_len, dataset.evaluator.num_prompts)
            budgets[dataset.short].cached = bool(result.get("cached"))
            sizes = list(result.get("subset_sizes") or [len(result.get("prompt_tokens") or [])])
            budgets[dataset.short].subset_sizes = sizes
            names = list(result.get("subset_names") or [])
            budgets[dataset.short].subset_names = names if len(names) == len(sizes) else []
        dataset.context_budget = budgets[dataset.short].record()
    failing = {short: b for short, b in budgets.items() if not b.skipped and b.not_fitting}
    if failing and mode == "error":
        raise UserError(
            " ".join(_failure_text(short, b) for short, b in failing.items())
            + (
                " Fix: a vllm_config_override with a larger context for that dataset (e.g. the "
                "yarn_long_context bundle, or vllm_config_override: {max_model_len: N}), or a smaller "
                "model_config.max_out_len; execution.context_check=warn runs anyway."
            )
        )
    return budgets


def _failure_text(short: str, budget: DatasetBudget) -> str:
    return (
        f"dataset {short}: {budget.not_fitting} of {budget.prompts} prompt(s) do not fit: the longest "
        f"(sample {budget.longest_sample}) has {budget.longest_prompt_tokens} tokens + max_out_len "
        f"{budget.max_out_len} > max_model_len {budget.max_model_len}."
    )


def budget_lines(budgets: Dict[str, DatasetBudget]) -> List[str]:
    """The plan's budget table, one line per dataset."""
    lines = [
        f"{'dataset':<22} {'prompts':>7} {'longest':>7} {'median':>7} {'max_out':>7} {'budget':>7} "
        f"{'headroom':>8} {'not fit':>7}"
    ]
    for short, b in budgets.items():
        if b.skipped:
            lines.append(f"{short:<22} not checked: {b.skipped}")
            continue
        lines.append(
            f"{short:<22} {b.prompts:>7} {b.longest_prompt_tokens:>7} {b.median_prompt_tokens:>7g} "
            f"{b.max_out_len:>7} {b.max_model_len:>7} {b.headroom:>8} {b.not_fitting:>7}"
            + ("  (cached)" if b.cached else "")
        )
    return lines
