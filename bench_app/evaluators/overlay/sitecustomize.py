"""Put first on an evaluator process's PYTHONPATH (evaluator.override_modules, evaluator.sandbox): Python
imports this at start-up. It makes each module of override_modules load from the user's file in place of
the installed one, and makes the evaluators that start each program a model wrote as a process of its own
start it inside the sandbox (bench_app.evaluators.sandbox).

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
    uid, run as root, this process's own: bench_app.evaluators.sandbox), its output written to files, which
    the program's own file-size limit bounds, instead of pipes that would fill this process's memory."""

    def __init__(self, sandbox):
        import subprocess

        self._subprocess, self._sandbox = subprocess, sandbox

    def __getattr__(self, name):
        return getattr(self._subprocess, name)

    def run(self, args, *rest, **kwargs):
        import tempfile

        uid, mark = str(self._sandbox["uid_base"] + os.getpid()), self._sandbox["uid_mark"]
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


def _sandbox_spawns(module):
    module.subprocess = _SandboxedSubprocess(_SANDBOX)


# Modules that start the model's programs through their module-level `subprocess.run`: LiveCodeBench's
# code generation runs each program in `sys.executable test_runner.py` (codegen_check_correctness).
_AFTER_IMPORT = {"ais_bench.benchmark.datasets.livecodebench.evaluator": _sandbox_spawns}


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
