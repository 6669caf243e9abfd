"""Scores answers to bench_app's LiveCodeBench sample with AISBench's own evaluator, as its evaluation task
does (run with the evaluator environment's python; whether it is sandboxed is the environment's
BENCH_APP_SANDBOX, read by bench_app's sitecustomize.py on PYTHONPATH).

    score_livecodebench.py DATA_FOLDER ANSWERS.json TIMEOUT
ANSWERS.json: [[question_id, program], ...]; prints a list of each one's test results (True passed,
False failed, -1 runtime error or timeout, -2 compile error): AISBench's eval_results.
"""

import json
import sys

from ais_bench.benchmark.datasets.livecodebench.evaluator import LCBCodeGenerationEvaluator
from ais_bench.benchmark.datasets.livecodebench.livecodebench import LCBCodeGenerationDataset

folder, answers_file, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3])
answers = json.load(open(answers_file))
test_set = {row["question_id"]: row for row in LCBCodeGenerationDataset.load(path=folder)["test"]}
rows = [test_set[question] for question, _ in answers]
predictions = [f"```python\n{program}\n```" for _, program in answers]
evaluator = LCBCodeGenerationEvaluator(num_process_evaluate=4, timeout=timeout)
scored = evaluator.score(predictions, [row["question_id"] for row in rows], rows)
print(json.dumps([scored["eval_results"][i][0] for i in range(len(rows))]))
