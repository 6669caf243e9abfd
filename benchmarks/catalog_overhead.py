"""What the AISBench catalog (`dataset=ais/<name>`) costs.

    .venv/bin/python benchmarks/catalog_overhead.py [RUNS]
Prints, in this process: the scan of AISBench's dataset configs (cold) and storing all / one of them in
Hydra's ConfigStore; then, run for run in one sitting, the dry-run wall time of the same dataset picked
as a curated file (`dataset=[gsm8k]`) and as its catalog entry
(`dataset=[ais/gsm8k_gen_0_shot_cot_chat_prompt]`), and of the embedded default (which names no catalog
entry, so only the module import and one regex over the command line are added).
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

from hydra.core.config_store import ConfigStore

from bench_app.evaluators.aisbench import catalog

CASES = {
    "default": [],
    "curated dataset=[gsm8k]": ["dataset=[gsm8k]"],
    "catalog dataset=[ais/gsm8k_gen_0_shot_cot_chat_prompt]": [
        "dataset=[ais/gsm8k_gen_0_shot_cot_chat_prompt]"
    ],
}


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, (time.perf_counter() - started) * 1000


def dry_run(workdir: str, name: str, args) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench_app", "execution.dry_run=true", "execution.context_check=off",
         f"benchmark.name={name}", *args],
        cwd=workdir, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"dry run {args} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    configs, scan_ms = timed(catalog.stock_configs)
    _, all_ms = timed(catalog.register)
    ConfigStore.instance().repo.get("dataset", {}).pop("ais", None)
    _, one_ms = timed(lambda: catalog.register(["gsm8k_gen_0_shot_cot_chat_prompt"]))
    print(f"catalog: {len(configs)} AISBench dataset configs; scan {scan_ms:.1f} ms (cold), "
          f"store all {all_ms:.1f} ms, store one {one_ms:.2f} ms")  # fmt: skip
    walls = {case: [] for case in CASES}
    with tempfile.TemporaryDirectory() as workdir:
        for i in range(runs):
            for case, args in CASES.items():
                walls[case].append(dry_run(workdir, f"run{i}_{len(walls[case])}_{abs(hash(case))}", args))
    medians = {case: statistics.median(values) for case, values in walls.items()}
    for case, median in medians.items():
        print(f"dry run, {case}: median {median:.3f} s over {runs} runs (min {min(walls[case]):.3f})")
    ratio = (
        medians["catalog dataset=[ais/gsm8k_gen_0_shot_cot_chat_prompt]"] / medians["curated dataset=[gsm8k]"]
    )
    print(f"ratio catalog entry / curated file: {ratio:.3f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "")
    main()
