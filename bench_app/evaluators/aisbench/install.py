"""The AISBench of the evaluator's environment as a run sees it: its interpreter, the variables its
processes start with, its config folders and catalogs, and the modules of its stock dataset configs.

AisbenchEvaluator.install looks into the environment once, on first use; the planning checks, the task
functions (bench_app.evaluators.aisbench.task) and datafiles take what it found instead of asking again.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench_app.common.errors import EvaluationError
from bench_app.evaluators.aisbench import catalog

# Finds the module of a stock dataset config inside the evaluator environment (run with its python).
_LOCATE_SCRIPT = r"""
import importlib.util, json, pathlib, re, sys
spec = importlib.util.find_spec("ais_bench")
root = pathlib.Path(list(spec.submodule_search_locations)[0]) / "benchmark" / "configs" / "datasets"
found = {}
for name in sys.argv[1:]:
    hits = sorted(root.rglob(name + ".py"))
    if hits:
        parts = hits[0].relative_to(root).with_suffix("").parts
        module = "ais_bench.benchmark.configs.datasets." + ".".join(parts)
        variables = sorted(set(re.findall(r"\b([A-Za-z0-9_]+_datasets)\b", hits[0].read_text())))
        found[name] = {"module": module, "variables": variables}
print(json.dumps(found))
"""


@dataclass(frozen=True)
class AisbenchInstall:
    """What a run knows of the evaluator environment's AISBench (AisbenchEvaluator.install)."""

    python: str  # the environment's interpreter
    # What every process of the environment starts with, whatever its work dir (Evaluator.environment):
    # read only, each process gets a copy.
    env: Dict[str, str]
    # AIS_BENCH_DATASETS_CACHE, where AISBench resolves relative dataset paths (evaluator.datasets_root).
    datasets_root: Optional[str]
    # The stock dataset configs located so far: name -> what a task file imports (None: AISBench has no
    # such config). Each name is located once.
    _located: Dict[str, Optional[dict]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def root(self) -> Path:
        """The environment's folder (its lib/python3*/site-packages holds AISBench)."""
        return Path(self.python).parent.parent

    @cached_property
    def datasets_folder(self) -> Optional[Path]:
        """AISBench's configs/datasets; None where the environment cannot be looked into."""
        return catalog.configs_dir(self.root, "datasets")

    @cached_property
    def models_folder(self) -> Optional[Path]:
        """AISBench's configs/models; None where the environment cannot be looked into."""
        return catalog.configs_dir(self.root, "models")

    @cached_property
    def stock_configs(self) -> Dict[str, Path]:
        """Dataset config name -> its file (a scan of the whole folder: only where a check needs it)."""
        return catalog.stock_configs(self.datasets_folder) if self.datasets_folder else {}

    @cached_property
    def model_configs(self) -> Dict[str, Path]:
        """Model config name (aisbench.model) -> its file."""
        return catalog.model_configs(self.models_folder) if self.models_folder else {}

    @cached_property
    def package_inits(self) -> List[Path]:
        """The __init__.py of the installed ais_bench package (in the token-count cache's key)."""
        return [p / "__init__.py" for p in self.root.glob("lib/python3*/site-packages/ais_bench")]

    def stock_modules(self, names: Sequence[str]) -> Dict[str, dict]:
        """Of names, the stock dataset configs AISBench has: name -> {"module", "variables"}, what a task
        file imports. The names not located before are located in one process of the environment."""
        missing = sorted(set(names) - set(self._located))
        if missing:
            found = _locate(self.python, missing)
            self._located.update({name: found.get(name) for name in missing})
        return {name: self._located[name] for name in names if self._located[name] is not None}


def _locate(python: str, names: Sequence[str]) -> Dict[str, dict]:
    done = subprocess.run([python, "-c", _LOCATE_SCRIPT, *names], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise EvaluationError(
            "cannot inspect the evaluator environment (is AISBench installed? run `make setup`)",
            done.stderr[-2000:],
        )
    return json.loads(done.stdout.strip().splitlines()[-1])
