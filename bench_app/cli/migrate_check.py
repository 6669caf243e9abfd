"""A migration proves itself: every carried dataset config is loaded in the evaluator's environment, with
the carried code on its path and the mirrored modules in place, as planning loads it. An import that
broke because the installed AISBench keeps the module or name elsewhere is rewritten in the carried copy
(never in the source), said line by line; what cannot be mended is named with its file, line and error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from bench_app.common.errors import EvaluationError
from bench_app.common.files import atomic_write

# Each round mends the first broken import of each file; a file rarely has more than a few.
ROUNDS = 8


@dataclass
class Proof:
    loaded: List[str] = field(default_factory=list)  # configs that load as they are now
    mended: List[str] = field(default_factory=list)  # "file line N: old -> new (why)"
    broken: List[Tuple[str, str]] = field(default_factory=list)  # (config, file:line: error; what to do)
    not_checked: Optional[str] = None  # why nothing could be loaded


def evaluator_for(python_path: Sequence[str], override_modules: Dict[str, str]):
    """The project's AISBench evaluator (conf/evaluator/aisbench.yaml) with the carried code."""
    from omegaconf import OmegaConf

    from bench_app.config.resolvers import PROJECT_ROOT, register_resolvers
    from bench_app.evaluators.aisbench import AisbenchEvaluator

    register_resolvers()
    conf_file = PROJECT_ROOT / "conf" / "evaluator" / "aisbench.yaml"
    conf = OmegaConf.to_container(OmegaConf.load(conf_file), resolve=True)
    return AisbenchEvaluator(
        command=list(conf["command"]), python_path=list(python_path), override_modules=dict(override_modules)
    )


def prove(
    configs: Sequence[Path], carried_root: Path, python_path: Sequence[str], overrides: Dict[str, str]
) -> Proof:
    from bench_app.evaluators.aisbench.relocate import mend_for, package_root

    proof = Proof()
    if not configs:
        return proof
    evaluator = evaluator_for(python_path, overrides)
    root = package_root(evaluator.command)
    paths = [str(c) for c in configs]
    found: Dict[str, dict] = {}
    for _ in range(ROUNDS):
        try:
            found = evaluator.load_config_files(paths)
        except EvaluationError as error:
            proof.not_checked = f"{error.reason} {error.log_tail[-300:]}".strip()
            return proof
        mended_now = 0
        for path in [p for p in paths if "error" in found[p]]:
            failure = found[path]
            file = Path(failure.get("file") or path)
            mend = None
            if root is not None and failure.get("line") and _inside(file, carried_root):
                mend = mend_for(failure["error"], file, int(failure["line"]), root)
            if mend is not None and mend.applies:
                lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
                ending = lines[mend.line - 1][len(mend.old) :]
                lines[mend.line - 1] = mend.new + ending
                atomic_write(file, "".join(lines))
                change = f"{mend.old.strip()} -> {mend.new.strip()}"
                proof.mended.append(f"{file} line {mend.line}: {change} ({mend.why})")
                mended_now += 1
            else:
                at = f"{file}, line {failure['line']}" if failure.get("line") else str(file)
                todo = f"; write: {mend.new.strip()} ({mend.why})" if mend is not None else ""
                proof.broken.append((path, f"{at}: {failure['error']}{todo}"))
        if not mended_now:
            break
        proof.broken.clear()
    proof.loaded = [p for p in paths if "variables" in found.get(p, {})]
    return proof


def _inside(file: Path, folder: Path) -> bool:
    try:
        file.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False
