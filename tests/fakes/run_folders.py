"""Synthetic run folders in bench_app's layout (what a real run leaves), for the tests of the tools that
read many runs (compare's matrix, the run history) and for benchmarks/runs_index.py.

Each dataset is given as its samples' right/wrong answers; the score is their share of right ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional

import yaml


def write_run(
    root: Path,
    name: str,
    datasets: Dict[str, List[Optional[bool]]],
    *,
    dtype: str = "bfloat16",
    quantization: Optional[str] = None,
    model: str = "tiny",
    max_out_len: int = 48,
    status: str = "completed",
    timestamp: str = "2026-12-01T10:00:00",
    commit: str = "0123456789abcdef0123",
    failed: Optional[Dict[str, str]] = None,
    prompt_prefix: str = "question",
) -> Path:
    run = root / name
    (run / "configs/per_dataset").mkdir(parents=True)
    vllm = {
        "model_path": f"/models/{model}",
        "served_model_name": model,
        "dtype": dtype,
        "quantization": quantization,
        "kv_cache_dtype": None,
    }
    dump = lambda path, data: path.write_text(yaml.safe_dump(data, sort_keys=False))  # noqa: E731
    dump(
        run / "configs/config_snapshot.yaml",
        {"benchmark": {"name": name, "timestamp": timestamp}, "vllm": vllm},
    )
    dump(
        run / "configs/metadata.yaml",
        {
            "git": {"commit": commit},
            "run": {
                "status": status,
                "started": timestamp,
                "ended": _later(timestamp, 90),
                "host": "h",
                "pid": 1,
            },
        },
    )
    entries = {}
    for short, answers in datasets.items():
        dump(
            run / f"configs/per_dataset/{short}.yaml",
            {
                "dataset": {"name": f"{short}_gen", "short": short},
                "vllm": vllm,
                "aisbench": {"model": "vllm_api_general_chat", "batch_size": 4, "subsets": None},
                "model_config": {"max_out_len": max_out_len, "generation_kwargs": {"temperature": 0.0}},
            },
        )
        if failed and short in failed:
            entries[short] = {"name": f"{short}_gen", "status": "failed", "reason": failed[short]}
            continue
        (run / short).mkdir()
        lines = [
            json.dumps({"id": i, "subset": short, "prompt": f"{prompt_prefix} {i}", "correct": correct})
            for i, correct in enumerate(answers)
        ]
        (run / short / "samples.jsonl").write_text("".join(line + "\n" for line in lines))
        scored = [a for a in answers if a is not None]
        accuracy = round(100.0 * sum(scored) / len(scored), 4) if scored else 0.0
        entries[short] = {"name": f"{short}_gen", "status": "ok", "metrics": {"accuracy": accuracy}}
    dump(
        run / "results.yaml",
        {
            "schema_version": 1,
            "benchmark": {"name": name, "timestamp": timestamp},
            "model": vllm | {"name": model, "path": vllm["model_path"]},
            "status": status,
            "datasets": entries,
        },
    )
    return run


def write_sweep(root: Path, name: str, jobs: List[Dict]) -> Path:
    """A sweep folder: job folders 0..n-1 (each a run, with .hydra/ and job.yaml naming its overrides)."""
    sweep = root / name
    sweep.mkdir(parents=True)
    for num, job in enumerate(jobs):
        overrides = job.pop("overrides")
        run = write_run(sweep, str(num), **job)
        (run / ".hydra").mkdir()
        (run / ".hydra/overrides.yaml").write_text(yaml.safe_dump(overrides))
        (run / "job.yaml").write_text(yaml.safe_dump({"num": num, "overrides": overrides, "exit_code": 0}))
    return sweep


def _later(stamp, seconds):
    """An ISO time (as metadata.yaml writes it) that many seconds later."""
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(stamp) + timedelta(seconds=seconds)).isoformat(timespec="seconds")
