"""Put first on an evaluator process's PYTHONPATH when evaluator.override_modules is set: Python imports
this at start-up, and it makes each named module load from the user's file in place of the installed one.

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


class _OverrideFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        file = _FILES.get(fullname)
        if file is None:
            return None
        package = [os.path.dirname(file)] if os.path.basename(file) == "__init__.py" else None
        return importlib.util.spec_from_file_location(fullname, file, submodule_search_locations=package)


if _FILES:
    sys.meta_path.insert(0, _OverrideFinder())
