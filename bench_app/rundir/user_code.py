"""The user's own evaluator code kept with the run: copies of every evaluator.python_path folder and of
every evaluator.override_modules file under configs/, with their sha256s in metadata.yaml. A frozen
replay (bench-app replay, reproduce.sh --frozen) runs these copies, not whatever the paths hold later."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

from bench_app.common.files import copy_python_tree, file_sha256

# configs/python_path/<n>_<folder>/: the .py files of each evaluator.python_path folder.
PYTHON_PATH_COPIES = "python_path"
# configs/override_modules/<dotted.module>.py: each evaluator.override_modules file.
OVERRIDE_COPIES = "override_modules"


def python_path_copy(index: int, folder: str) -> str:
    return f"{index}_{Path(folder).name}"


def override_copy(module: str) -> str:
    return f"{OVERRIDE_COPIES}/{module}.py"


def keep_python_path(folders: Sequence[str], shadowed: Sequence[str], configs: Path) -> List[Dict[str, Any]]:
    """metadata.yaml `python_path`: each folder, where its copy is, its files' sha256s and the installed
    modules it shadows."""
    return [
        {
            "source": folder,
            "copy": f"{PYTHON_PATH_COPIES}/{python_path_copy(index, folder)}",
            "files": copy_python_tree(
                Path(folder), configs / PYTHON_PATH_COPIES / python_path_copy(index, folder)
            ),
            "overrides": [
                m for m in shadowed if (Path(folder) / m).exists() or (Path(folder) / f"{m}.py").exists()
            ],
        }
        for index, folder in enumerate(folders)
    ]


def keep_overrides(files: Mapping[str, str], configs: Path) -> Dict[str, Dict[str, str]]:
    """metadata.yaml `override_modules`: module -> the file given, its copy and its sha256."""
    kept = {}
    for module, file in files.items():
        copy = configs / override_copy(module)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, copy)
        kept[module] = {"source": str(file), "copy": override_copy(module), "sha256": file_sha256(Path(file))}
    return kept


def frozen_user_code(evaluator: Dict[str, Any], configs: Path) -> None:
    """The snapshot's evaluator settings pointed at the run's copies (where they all exist)."""
    folders = evaluator.get("python_path") or []
    copies = [configs / PYTHON_PATH_COPIES / python_path_copy(i, f) for i, f in enumerate(folders)]
    if folders and all(copy.is_dir() for copy in copies):
        evaluator["python_path"] = [str(copy) for copy in copies]
    overrides = evaluator.get("override_modules") or {}
    if isinstance(overrides, dict) and all((configs / override_copy(m)).is_file() for m in overrides):
        evaluator["override_modules"] = {m: str(configs / override_copy(m)) for m in overrides}
