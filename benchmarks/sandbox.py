"""What the sandbox costs per program a model wrote, both ways an AISBench evaluator runs one:
- as a process of its own: LiveCodeBench's test runner (what its code generation starts for each program)
  run N times on the sample's honest solutions, straight and inside the sandbox, alternating, one at a time;
- in a fork of the evaluator (`exec`): AISBench's mbpp.execution (MBPP's evaluators) run N times on the MBPP
  sample's reference solutions, as AISBench runs it and as bench_app's sitecustomize.py replaces it (the
  same code in a sandboxed python), one at a time, in two evaluator processes.

    .venv/bin/python benchmarks/sandbox.py [N]

The sandbox is the one a run uses (evaluator.sandbox=auto, the default limits: bench_app's own command
line from AisbenchEvaluator.environment). Prints each way's median and mean wall time per program, the
difference (target: < 50 ms per program), and `bwrap ... true` alone (the sandbox's own start). Each
program's results must be the same both ways (printed). It reports; it asserts nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_app.evaluators.aisbench import AisbenchEvaluator  # noqa: E402
from bench_app.evaluators.sandbox import SANDBOX_VARIABLE, for_process  # noqa: E402

SAMPLE = ROOT / "data/samples/livecodebench/code_generation_lite"
MBPP_SAMPLE = ROOT / "data/samples/mbpp/mbpp.jsonl"
PYTHON = str(ROOT / ".venv/bin/python")
RUNNER = next((ROOT / ".venv/lib").glob("python3*/site-packages/ais_bench/benchmark/datasets/livecodebench"))
RUNNER = RUNNER / "test_runner.py"


def payloads():
    """The test runner's input for each honest solution (as codegen_check_correctness sends it)."""
    solutions = json.loads((SAMPLE / "solutions.json").read_text())
    rows = [json.loads(line) for line in (SAMPLE / "test.jsonl").read_text().splitlines()]
    found = []
    for row in rows:
        cases = json.loads(row["public_test_cases"]) + json.loads(row["private_test_cases"])
        sample = {
            "inputs": [c["input"] for c in cases],
            "outputs": [c["output"] for c in cases],
            "fn_name": json.loads(row["metadata"]).get("func_name"),
        }
        payload = {
            "sample": {"input_output": json.dumps(sample)},
            "generation": solutions[row["question_id"]],
            "debug": False,
            "timeout": 6,
        }
        found.append((row["question_id"], json.dumps(payload)))
    return found


def timed(argv, payload):
    started = time.perf_counter()
    done = subprocess.run(argv, input=payload, capture_output=True, text=True)
    took = time.perf_counter() - started
    result = json.loads(done.stdout.strip().splitlines()[-1])["res"] if done.stdout.strip() else None
    return took, result


def time_mbpp_execution(runs: int) -> None:
    """In an evaluator process (sandboxed or not by its environment): mbpp.execution on each reference
    solution in turn; prints [[seconds, result], ...]."""
    from ais_bench.benchmark.datasets import mbpp

    rows = [json.loads(line) for line in MBPP_SAMPLE.read_text().splitlines()]
    found = []
    for index in range(runs):
        row = rows[index % len(rows)]
        started = time.perf_counter()
        _, result = mbpp.execution(row["code"] + "\n" + "\n".join(row["test_list"]), index, 10)
        found.append([time.perf_counter() - started, result])
    print(json.dumps(found))


def in_process(runs: int, sandbox: str) -> list:
    with tempfile.TemporaryDirectory() as folder:
        evaluator = AisbenchEvaluator(command=[str(ROOT / ".venv/bin/ais_bench")], sandbox=sandbox)
        env = evaluator.environment(Path(folder))
    argv = [PYTHON, __file__, "--mbpp", str(runs)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--mbpp"]:
        return time_mbpp_execution(int(sys.argv[2]))
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with tempfile.TemporaryDirectory() as folder:
        env = AisbenchEvaluator(command=[str(ROOT / ".venv/bin/ais_bench")]).environment(Path(folder))
    prefix = for_process(json.loads(env[SANDBOX_VARIABLE])["argv"], os.getpid())  # as sitecustomize.py does
    version = subprocess.run([prefix[0], "--version"], capture_output=True, text=True).stdout.strip()
    programs = payloads()
    straight, inside, differ = [], [], 0
    for index in range(runs):
        question, payload = programs[index % len(programs)]
        bare_s, bare = timed([PYTHON, str(RUNNER)], payload)
        boxed_s, boxed = timed([*prefix, PYTHON, str(RUNNER)], payload)
        straight.append(bare_s)
        inside.append(boxed_s)
        differ += bare != boxed
    alone = [timed([*prefix, "true"], "")[0] for _ in range(runs)]

    def ms(values):
        median, mean = statistics.median(values) * 1000, statistics.mean(values) * 1000
        return f"median {median:.1f} ms, mean {mean:.1f} ms"

    print(f"{runs} programs ({len(programs)} honest LiveCodeBench sample solutions in turn); {version}")
    print(f"  straight (AISBench's test runner): {ms(straight)}")
    print(f"  in the sandbox:                    {ms(inside)}")
    added = [b - a for a, b in zip(straight, inside, strict=True)]
    print(f"  the sandbox's cost per program:    {ms(added)} (target < 50 ms)")
    print(f"  `bwrap ... true` alone:            {ms(alone)}")
    print(f"  programs whose results differ: {differ} of {runs}")

    straight, inside = in_process(runs, "off"), in_process(runs, "auto")
    rows = len(MBPP_SAMPLE.read_text().splitlines())
    print(f"{runs} programs ({rows} MBPP sample reference solutions in turn), run in a fork of the evaluator")
    print(f"  straight (AISBench's mbpp.execution): {ms([t for t, _ in straight])}")
    print(f"  in the sandbox (sitecustomize.py):    {ms([t for t, _ in inside])}")
    added = [b[0] - a[0] for a, b in zip(straight, inside, strict=True)]
    print(f"  the sandbox's cost per program:       {ms(added)} (target < 50 ms)")
    differ = sum(a[1] != b[1] for a, b in zip(straight, inside, strict=True))
    print(f"  programs whose results differ: {differ} of {runs}")


if __name__ == "__main__":
    main()
