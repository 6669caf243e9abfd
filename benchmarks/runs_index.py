"""The run history's index (bench_app.rundir.index) on N synthetic run folders (default 1,000) it writes
itself: each the size of a real seven-dataset Qwen3 run (results.yaml with subsets, finished requests and
server records; metadata.yaml; the snapshot).

    .venv/bin/python benchmarks/runs_index.py [N]

Prints, for listing every run (walk + read what changed + rows, newest first):
  cold: no index file yet, every folder read (target < 2 s for 1,000);
  warm: the index holds every run, nothing changed (target < 0.2 s);
  one changed: one results.yaml rewritten since the last listing;
  and `bench-app runs --json` end to end (a new process: Python, imports, the warm listing).
Everything lands in a temporary folder, removed at the end.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_app.rundir.index import INDEX_FILE, RunIndex, select  # noqa: E402

DATASETS = ["ceval", "mmlu", "gsm8k", "math500", "gpqa", "livecodebench", "longbenchv2"]


def write_folder(root: Path, number: int) -> None:
    run = root / f"qwen3_30b_run_{number:05d}"
    (run / "configs/per_dataset").mkdir(parents=True)
    stamp = f"2026-{1 + number % 12:02d}-{1 + number % 28:02d}T{number % 24:02d}:00:00"
    precision = ("bf16", "w8a8", "w4a4")[number % 3]
    vllm = {
        "model_path": f"/models/Qwen3-30B-A3B-{precision}",
        "served_model_name": "qwen3-30b-a3b",
        "dtype": "bfloat16",
        "quantization": None if precision == "bf16" else "ascend",
        "kv_cache_dtype": None,
        "tensor_parallel_size": 4,
        "max_model_len": 32768,
    }
    datasets = {}
    for index, short in enumerate(DATASETS):
        datasets[short] = {
            "name": f"{short}_gen_0_shot_cot_chat_prompt",
            "status": "ok" if (number + index) % 17 else "failed",
            "group": index % 2,
            "metrics": {
                "accuracy": round(50 + (number * 7 + index * 13) % 40 + 0.123, 4),
                "subsets": {f"{short}-subset_{k}": {"accuracy": 40.0 + k} for k in range(5)},
            },
            "server_started_at": stamp,
            "evaluation_started_at": stamp,
            "evaluation_s": 1234.5,
            "finished_requests": {"stop": 980, "length": 20},
            "output_dir": str(run / short),
            "prompts": {"done": 1000, "total": 1000},
            "samples": 1000,
            "reasoning": {"answers": 1000, "finished": 990, "cut_in_thinking": 10},
        }
    results = {
        "schema_version": 1,
        "benchmark": {"name": run.name, "timestamp": stamp},
        "model": {"name": "qwen3-30b-a3b", "path": vllm["model_path"], "dtype": "bfloat16",
                  "quantization": vllm["quantization"], "kv_cache_dtype": None},
        "status": "completed",
        "wall_time_s": 8123.4,
        "server_starts": 2,
        "datasets": datasets,
        "servers": [{"group": g, "argv": ["vllm", "serve", vllm["model_path"], "--dtype", "bfloat16"] * 6,
                     "port": 8000 + g, "version": "0.32.0"} for g in range(2)],
    }  # fmt: skip
    metadata = {
        "runtime": {"timestamp": stamp, "hostname": "node01", "platform": "Linux", "python_version": "3.11"},
        "versions": {"python": "3.11.7", "vllm": "0.32.0", "torch": "2.13.0", "ais_bench": "3.1"},
        "git": {"commit": f"{number:040x}", "branch": "main", "dirty": False},
        "run": {"status": "completed", "started": stamp, "ended": stamp, "pid": 1, "host": "node01"},
        "fingerprint": {short: f"{number:016x}" for short in DATASETS},
    }
    snapshot = {"benchmark": {"name": run.name, "timestamp": stamp}, "vllm": vllm}
    for name, document in (
        ("results.yaml", results),
        ("configs/metadata.yaml", metadata),
        ("configs/config_snapshot.yaml", snapshot),
    ):
        (run / name).write_text(yaml.safe_dump(document, sort_keys=False))


def listing(root: Path) -> tuple:
    start = time.perf_counter()
    index = RunIndex(root)
    index.refresh()
    rows = select(index.rows())
    index.close()
    return time.perf_counter() - start, len(rows)


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    with tempfile.TemporaryDirectory(prefix="bench_app_runs_index_") as temp:
        root = Path(temp) / "outputs"
        started = time.perf_counter()
        for number in range(count):
            write_folder(root, number)
        print(f"wrote {count} run folders in {time.perf_counter() - started:.1f} s")
        cold, listed = listing(root)
        warm, _ = listing(root)
        warm_again, _ = listing(root)
        changed_file = root / "qwen3_30b_run_00000/results.yaml"
        changed_file.write_text(changed_file.read_text().replace("status: completed", "status: failed", 1))
        one_changed, _ = listing(root)
        assert listed == count, (listed, count)
        started = time.perf_counter()
        done = subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-m", "bench_app", "runs", "--json"],
            cwd=Path(temp), capture_output=True, text=True, check=True,
        )  # fmt: skip
        cli = time.perf_counter() - started
        size = (root / INDEX_FILE).stat().st_size / 1e6
        print(f"listed {listed} runs; index {size:.1f} MB ({len(done.stdout) / 1e6:.1f} MB of JSON)")
        print(f"cold (no index):      {cold:.3f} s   (target < 2 s)")
        print(f"warm (nothing new):   {min(warm, warm_again):.3f} s   (target < 0.2 s)")
        print(f"one changed:          {one_changed:.3f} s")
        print(f"`bench-app runs --json` end to end: {cli:.2f} s")


if __name__ == "__main__":
    main()
