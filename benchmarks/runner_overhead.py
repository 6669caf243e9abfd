"""Runner overhead: compose + plan + snapshot with no server (a dry run of the embedded default).

    .venv/bin/python benchmarks/runner_overhead.py [RUNS]
Prints the median wall time and the runner process's peak RSS. Targets: <= 0.6 s, <= 150 MB.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 15


def main() -> None:
    walls, peaks = [], []
    with tempfile.TemporaryDirectory() as workdir:
        for i in range(RUNS):
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-m", "bench_app", "execution.dry_run=true", f"benchmark.name=overhead_{i}"],
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            _, status, usage = os.wait4(process.pid, 0)
            walls.append(time.perf_counter() - started)
            peaks.append(usage.ru_maxrss / 1024)  # KiB -> MiB on Linux
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit(f"dry run failed: {process.stderr.read().decode()[-2000:]}")
    print(f"dry run of the embedded default, {RUNS} runs")
    print(
        f"median wall time: {statistics.median(walls):.3f} s (min {min(walls):.3f}, max "
        f"{max(walls):.3f}); target <= 0.6 s"
    )
    print(f"peak RSS (max over runs): {max(peaks):.1f} MiB; target <= 150 MB")


if __name__ == "__main__":
    main()
