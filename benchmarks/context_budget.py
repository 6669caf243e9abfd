"""Context budget check: time to count every prompt's tokens (chat template applied), cold and cached.

    .venv/bin/python benchmarks/context_budget.py [N_PROMPTS]
Measures bench_app.run.planning.budget.check_context for (1) the embedded default's four sample datasets and
(2) a generated gsm8k-format dataset of N_PROMPTS questions (default 10,000), each first with an empty
cache (one evaluator process renders and counts) and then again (served from the cache).
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir


def plan_of(overrides):
    from bench_app.cli.main import CONF_DIR
    from bench_app.config.resolve import resolve
    from bench_app.run.planning.plan import build_plan

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return build_plan(resolve(compose(config_name="config", overrides=["benchmark.name=b", *overrides])))


def timed(overrides):
    from bench_app.run.planning.budget import check_context

    plan = plan_of(overrides)  # composing is not part of the check
    started = time.perf_counter()
    budgets = check_context(plan, "warn")
    return time.perf_counter() - started, budgets


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["BENCH_APP_BUDGET_CACHE"] = str(Path(tmp) / "cache")  # read when budget is imported
        data = Path(tmp) / "gsm8k"
        data.mkdir()
        questions = [
            {
                "question": f"A farmer has {i} sheep and buys {i % 7 + 2} more, then sells {i % 3}. "
                f"How many sheep does the farmer have now? Explain each step.",
                "answer": f"{i} + {i % 7 + 2} - {i % 3}\n#### {i + i % 7 + 2 - i % 3}",
            }
            for i in range(n)
        ]
        for split in ("train", "test"):
            (data / f"{split}.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
        cases = {
            "sample datasets (embedded default)": [],
            f"generated gsm8k, {n} prompts": [
                "dataset=[sample_gsm8k]",
                f"datasets.sample_gsm8k.data_path={data}",
            ],
        }
        for label, overrides in cases.items():
            cold, budgets = timed(overrides)
            cached, _ = timed(overrides)
            prompts = sum(b.prompts for b in budgets.values())
            print(f"{label}: {prompts} prompts; cold {cold:.2f} s, cached {cached:.3f} s")


if __name__ == "__main__":
    main()
