"""Repeats in one run against repeats as jobs, against a FAST STAND-IN server (benchmarks/stand_in_server.py,
no model): an AIME-format dataset of Q questions (written here) sampled R times, at batch B.

    .venv/bin/python benchmarks/repeats.py [--questions 30] [--repeats 16] [--batch 64] [--slots 64]
                                           [--delay-ms 200] [--reasoning-chars 8000] [--cache run|off]

The stand-in answers at most S (--slots) requests at once, as a GPU server's batch does, each after
--delay-ms; its answer is an integer in \\boxed{} that the request's seed makes right or wrong, so AISBench
scores every repeat and a seed scores the same both ways. Back to back, both with seeds 1..R:
  - in one run: `benchmark.repeats=R` (AISBench's own n: every repeat in flight together, one server start);
  - as jobs: `benchmark.repeats=R benchmark.repeats_as=jobs` (a sweep of R jobs, one per seed, each its own
    run with its own server start and AISBench start; Hydra's basic launcher, one job after another).
Each run's request cache is its own folder's (--cache run, the default) or none (--cache off): no side or
job reuses another's answers.

Prints each side's wall time, server starts (results.yaml), requests sent (results.yaml, and as the
stand-in counted them), the ratio (target <= 0.25x), each repeat's score both ways (the same seed must
score the same), and where the time goes per job: server start, AISBench's own start (evaluation start to
its first request), generating (first request to last answer), scoring (last answer to evaluation end) and
the rest of the job (planning, snapshot, stopping the server, writing results and report), and the time
outside the runs' own wall_time_s (process start, composing, pre-flight checks, the sweep's summary).
Last, a `checks:` line: every dataset ok, Q x R requests and samples both ways, 1 against R server starts,
each repeat's score in results.yaml (repeats.scores) and each seed's from the relay's records
(requests.jsonl) against its seed's job, and the samples.jsonl records whose prediction is not their own
answer's. It reports; it asserts nothing.
Everything lands in a temporary folder, removed at the end (--keep DIR keeps a copy).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
DATASET = "sample_aime2024"  # AISBench's aime2024_gen_0_shot_chat_prompt on a data_path of our own


def write_aime(path: Path, count: int) -> None:
    """AIME's layout (aime.jsonl): `id`, `origin_prompt`, `gold_answer` (an integer 0-999 as text)."""
    path.parent.mkdir(parents=True)
    rows = [
        {"id": i, "gold_answer": str(gold),
         "origin_prompt": f"Stand-in problem {gold}: find the integer this problem is numbered with, from 0 "
                          f"to 999 (question {i + 1} of {count})."}
        for i, gold in ((i, (37 * i + 11) % 1000) for i in range(count))
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def run(arguments: list, cwd: Path, env: dict, log: Path) -> float:
    started = time.monotonic()
    with open(log, "w") as out:
        done = subprocess.run(
            [PYTHON, "-m", "bench_app", *arguments], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(arguments)}\n{log.read_text()[-4000:]}")
    return seconds


def read(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def stand_in_counts(folder: Path) -> tuple:
    """(servers, requests answered, most in flight at once, most waiting) as the stand-ins wrote them."""
    stats = [json.loads(p.read_text()) for p in folder.glob("*.json")]
    return (
        len(stats),
        sum(s["requests"] for s in stats),
        max((s["max_in_flight"] for s in stats), default=0),
        max((s["max_waiting"] for s in stats), default=0),
    )


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def breakdown(run_dir: Path) -> dict:
    """Where one run's time went, from its results.yaml and its dataset's requests.jsonl."""
    results = read(run_dir / "results.yaml")
    entry = results["datasets"][DATASET]
    begun = epoch(entry["evaluation_started_at"])  # to the second
    ended = begun + entry["evaluation_s"]
    requests = [json.loads(line) for line in (run_dir / DATASET / "requests.jsonl").open() if line.strip()]
    first = min(r["started_at"] for r in requests)
    last = max(r["started_at"] + r["seconds"] for r in requests)
    server = sum(s.get("ready_after_s") or 0.0 for s in results["servers"])
    parts = {
        "wall": results["wall_time_s"],
        "server start": server,
        "AISBench start": max(first - begun, 0.0),
        "generating": last - first,
        "scoring": max(ended - last, 0.0),
    }
    parts["rest"] = parts["wall"] - server - entry["evaluation_s"]
    return {
        "parts": parts,
        "starts": results["server_starts"],
        "servers": len(results["servers"]),
        "generated": (entry.get("answers") or {}).get("generated"),
        "reused": (entry.get("answers") or {}).get("reused"),
        "samples": entry.get("samples"),
        "requests": len(requests),
        "status": entry["status"],
        "reason": entry.get("reason"),
        "metrics": entry.get("metrics"),
        "repeats": entry.get("repeats") or {},
    }


def relay_scores(folder: Path) -> tuple:
    """Each seed's score from what the relay recorded (the stand-in's \\boxed{} against the problem's
    number, which is its gold), and the samples.jsonl records whose prediction is not their own answer's."""
    right = {}
    for line in (folder / "requests.jsonl").open():
        record = json.loads(line)
        gold = re.search(r"Stand-in problem (\d+)", record["messages"][-1]["content"]).group(1)
        boxed = re.search(r"\\boxed\{(\d+)\}", record.get("answer") or "")
        right.setdefault(record["settings"].get("seed"), []).append(bool(boxed) and boxed.group(1) == gold)
    scores = {seed: 100.0 * sum(v) / len(v) for seed, v in right.items()}
    mispaired = 0
    for line in (folder / "samples.jsonl").open():
        record = json.loads(line)
        boxed = re.search(r"\\boxed\{(\d+)\}", record.get("answer") or "")
        mispaired += not boxed or str(record.get("prediction")) != boxed.group(1)
    return scores, mispaired


def shown(parts: dict) -> str:
    return ", ".join(f"{name} {seconds:.1f}" for name, seconds in parts.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--slots", type=int, default=64, help="stand-in: most requests answered at once")
    parser.add_argument("--delay-ms", type=float, default=200)
    parser.add_argument("--reasoning-chars", type=int, default=8000)
    parser.add_argument("--cache", choices=("run", "off"), default="run")
    parser.add_argument("--keep", type=Path)
    options = parser.parse_args()
    questions, repeats = options.questions, options.repeats
    tmp = Path(tempfile.mkdtemp(prefix="bench_app_repeats_"))
    try:
        data = tmp / "data" / "aime.jsonl"
        write_aime(data, questions)
        common = [f"hydra.searchpath=[file://{ROOT / 'benchmarks' / 'conf'}]", "engine=stand_in",
                  f"dataset={DATASET}", f"datasets.{DATASET}.data_path={data}",
                  f"aisbench.batch_size={options.batch}", f"benchmark.repeats={repeats}",
                  "++aisbench.generation_kwargs.temperature=0.6", "execution.progress=false",
                  *(["execution.cache=off"] if options.cache == "off" else [])]  # fmt: skip
        print(
            f"FAST STAND-IN server (no model; at most {options.slots} requests at once, "
            f"{options.delay_ms:g} ms per answer, {options.reasoning_chars} characters of reasoning each); "
            f"AIME format (aime2024_gen_0_shot_chat_prompt), {questions} questions x {repeats} repeats, "
            f"batch {options.batch}, request cache: "
            f"{'each run its own' if options.cache == 'run' else 'off'}",
            flush=True,
        )
        walls, stats = {}, {}
        for side, extra in (
            ("run", ["benchmark.name=in_one_run", "++aisbench.generation_kwargs.seed=1"]),
            ("jobs", ["benchmark.repeats_as=jobs", f"hydra.sweep.dir={tmp / 'outputs' / 'sweeps' / 'jobs'}"]),
        ):
            (tmp / f"stats_{side}").mkdir()
            env = dict(
                os.environ,
                STAND_IN_DELAY_MS=str(options.delay_ms),
                STAND_IN_REASONING_CHARS=str(options.reasoning_chars),
                STAND_IN_MAX_CONCURRENT=str(options.slots),
                STAND_IN_STATS_DIR=str(tmp / f"stats_{side}"),
            )
            walls[side] = run([*common, *extra], tmp, env, tmp / f"{side}.log")
            stats[side] = stand_in_counts(tmp / f"stats_{side}")
            print(f"  {side}: {walls[side]:.1f} s", flush=True)

        one = breakdown(tmp / "outputs" / "in_one_run")
        sweep_dir = tmp / "outputs" / "sweeps" / "jobs"
        sweep = read(sweep_dir / "results.yaml")
        jobs = []
        for job in sorted(sweep["jobs"], key=lambda j: j["num"]):
            seed = next(o.split("=")[-1] for o in job["overrides"] if "generation_kwargs.seed" in o)
            folder = Path(job["dir"]) if Path(job["dir"]).is_absolute() else tmp / job["dir"]
            jobs.append((int(seed), job, breakdown(folder)))
        wanted = questions * repeats

        print(f"\nrepeats in one run (benchmark.repeats={repeats}): {walls['run']:.1f} s wall")
        print(
            f"  server starts {one['starts']} (servers listed {one['servers']}); requests sent "
            f"{one['generated']} (reused {one['reused']}; requests.jsonl {one['requests']}, samples "
            f"{one['samples']}; expected {wanted}); the stand-in answered {stats['run'][1]} "
            f"(servers {stats['run'][0]}, most in flight {stats['run'][2]}, most waiting {stats['run'][3]})"
        )
        print(f"  time: {shown(one['parts'])} s")
        print(
            f"  outside the run's own wall_time_s (process start, composing, pre-flight checks): "
            f"{walls['run'] - one['parts']['wall']:.1f} s"
        )
        print(f"  status {one['status']}, metrics {one['metrics']}, repeats {one['repeats']}")

        starts = sum(b["starts"] for _, _, b in jobs)
        generated = sum(b["generated"] or 0 for _, _, b in jobs)
        samples = sum(b["samples"] or 0 for _, _, b in jobs)
        statuses = sorted({b["status"] for _, _, b in jobs})
        form = f"benchmark.repeats={repeats} benchmark.repeats_as=jobs"
        print(f"\nrepeats as jobs ({form}): {walls['jobs']:.1f} s wall")
        print(
            f"  {len(jobs)} jobs ({', '.join(statuses)}), server starts {starts}; requests sent {generated} "
            f"(samples {samples}; expected {wanted}); the stand-in answered {stats['jobs'][1]} (servers "
            f"{stats['jobs'][0]}, most in flight {stats['jobs'][2]}, most waiting {stats['jobs'][3]})"
        )
        names = list(jobs[0][2]["parts"]) if jobs else []
        for seed, job, b in jobs:
            print(f"  job {job['num']:>2} seed {seed:>2}: {shown(b['parts'])} s")
        if jobs:
            mean = {name: sum(b["parts"][name] for _, _, b in jobs) / len(jobs) for name in names}
            total = {name: sum(b["parts"][name] for _, _, b in jobs) for name in names}
            print(f"  mean per job: {shown(mean)} s")
            print(f"  all jobs:     {shown(total)} s")
            print(
                "  outside the jobs' own wall_time_s (process start, composing, pre-flight checks, the "
                f"sweep's summary): {walls['jobs'] - total['wall']:.1f} s"
            )

        ratio = walls["run"] / walls["jobs"]
        print(
            f"\nratio in one run / as jobs: {walls['run']:.1f} / {walls['jobs']:.1f} s = {ratio:.3f}x "
            f"(target <= 0.25x: {'met' if ratio <= 0.25 else 'NOT met'}); server starts {one['starts']} vs "
            f"{starts}; requests sent {one['generated']} vs {generated}"
        )
        scores = one["repeats"].get("scores") or []
        seeds = one["repeats"].get("seeds") or []
        by_seed = {seed: b["metrics"].get("accuracy") for seed, _, b in jobs}
        pairs = [(seeds[i] if i < len(seeds) else None, s, by_seed.get(seeds[i] if i < len(seeds) else None))
                 for i, s in enumerate(scores)]  # fmt: skip
        differ = [p for p in pairs if p[2] is None or abs(p[1] - p[2]) > 1e-3]  # results.yaml: 4 places
        print(
            "each repeat's score, in one run vs its seed's job: "
            + ", ".join(f"seed {seed}: {a:.1f}/{b if b is None else round(b, 1)}" for seed, a, b in pairs)
            + f" ({'all the same' if pairs and not differ else f'{len(differ)} differ'})"
        )
        relay, mispaired = relay_scores(tmp / "outputs" / "in_one_run" / DATASET)
        same = all(abs(relay.get(seed, -1) - (by_seed.get(seed) or 0)) < 1e-6 for seed in by_seed)
        print(
            "each seed's score from the relay's records (requests.jsonl) of the one run: "
            + ", ".join(f"seed {seed}: {score:.1f}" for seed, score in sorted(relay.items()))
            + f" ({'the same as the jobs' if same else 'NOT the same as the jobs'}); samples.jsonl records "
            f"whose prediction is not the \\boxed{{}} of their own answer: {mispaired} of {one['samples']}"
        )
        problems = []
        if mispaired:
            problems.append(f"{mispaired} samples.jsonl records carry another answer's prediction")
        if one["status"] != "ok" or statuses != ["ok"]:
            problems.append("a dataset is not ok")
        if one["generated"] != wanted or generated != wanted or one["samples"] != wanted:
            problems.append(f"requests or samples differ from {wanted}")
        if one["starts"] != 1 or starts != repeats:
            problems.append(f"server starts {one['starts']} / {starts}, expected 1 / {repeats}")
        if len(scores) != repeats or differ:
            problems.append("per-repeat scores differ from the jobs'")
        print("checks: " + ("; ".join(problems) if problems else "every count as expected"))
    finally:
        if options.keep:
            shutil.copytree(tmp, options.keep, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
