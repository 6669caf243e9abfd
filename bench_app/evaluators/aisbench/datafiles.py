"""Where an AISBench dataset's data files are, found without running AISBench.

The place is the dataset's `data_path:` when it has one; otherwise the `path=` of its AISBench config (its
own `config_file:` or the stock config of its `name:`, or of the sibling config it imports), which AISBench
takes relative to AIS_BENCH_DATASETS_CACHE (`evaluator.datasets_root`) or else to the site-packages folder
it is installed in. What is there is measured by bench_app.evaluators.data.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from bench_app.evaluators.aisbench.install import AisbenchInstall
from bench_app.evaluators.aisbench.relocate import path_of
from bench_app.evaluators.data import DataFiles, measure_path


def datasets_base(datasets_root: Optional[str], evaluator_env: Path) -> Path:
    """What AISBench takes a relative dataset path relative to (its get_data_path)."""
    if datasets_root:
        return Path(os.path.expanduser(datasets_root))
    found = sorted(evaluator_env.glob("lib/python3*/site-packages"))
    return found[0] if found else evaluator_env


def declared_path(name: str, config_file: Optional[str], data_path: Optional[str], install: AisbenchInstall):
    """(declared path, source) of a dataset, or (None, why) when its config names none."""
    if data_path:
        return data_path, "data_path"
    config = Path(config_file) if config_file else install.stock_configs.get(name)
    if config is None or not config.is_file():
        return None, f"no AISBench config {name!r} to read its path from"
    declared = config_path(config)
    return (declared, f"config {config.name}") if declared else (None, f"{config.name} names no path=")


def config_path(config: Path, depth: int = 3) -> Optional[str]:
    """The path= of a dataset config, or of the sibling config it imports (`from .other import ...`)."""
    found = path_of(config)
    if found or depth == 0:
        return found
    text = config.read_text(encoding="utf-8", errors="replace")
    for module in re.findall(r"^\s*from \.(\w+) import", text, re.MULTILINE):
        sibling = config.with_name(f"{module}.py")
        if sibling.is_file():
            found = config_path(sibling, depth - 1)
            if found:
                return found
    return None


def locate(
    name: str, config_file: Optional[str], data_path: Optional[str], install: AisbenchInstall
) -> Optional[DataFiles]:
    """The dataset's data files; None when its config names no path (e.g. synthetic data)."""
    declared, source = declared_path(name, config_file, data_path, install)
    if declared is None:
        return None
    path = Path(os.path.expanduser(declared))
    if not path.is_absolute():
        path = datasets_base(install.datasets_root, install.root) / path
    return measure_path(path, declared, source)
