"""`bench-app envcheck <run>/configs/metadata.yaml`: how this environment differs from a run's.

Prints every difference in versions (engine and evaluator environments), installed packages, the datasets'
data files (their content hash), and git state. Exit 0 when nothing differs, 1 otherwise (reproduce.sh
prints and continues).
"""

from __future__ import annotations

from pathlib import Path
from typing import List

from bench_app.common.errors import UserError
from bench_app.config.components import instantiate_component
from bench_app.engines import Engine
from bench_app.evaluators import Evaluator
from bench_app.evaluators.data import measure_path
from bench_app.records.documents import GitState
from bench_app.records.folder import RunFolder
from bench_app.rundir import metadata as meta
from bench_app.rundir.documents import snapshot_to_config


def differences(metadata_file: Path) -> List[str]:
    folder = RunFolder(metadata_file.parent.parent)
    recorded = folder.read_metadata()
    try:
        config = snapshot_to_config(folder.read_snapshot())
        engine = instantiate_component(config["engine"], Engine, "engine")
        evaluator = instantiate_component(config["evaluator"], Evaluator, "evaluator")
    except UserError as error:
        return [f"cannot rebuild the recorded engine/evaluator: {error}"]
    envs = meta.environment_versions(engine.command, evaluator.command)
    found: List[str] = []
    current_versions = meta.summary_versions(envs, engine.version_packages, evaluator.version_packages)
    for key, value in recorded.versions.items():
        if key in current_versions and current_versions[key] != value:
            found.append(f"version {key}: recorded {value}, now {current_versions[key]}")
    for role in ("engine", "evaluator"):
        before = folder.read_packages(role)
        now = envs[role]
        for name in sorted(set(before) | set(now)):
            if before.get(name) != now.get(name):
                found.append(
                    f"{role} package {name}: recorded {before.get(name, 'absent')}, now "
                    f"{now.get(name, 'absent')}"
                )
    for short, data in sorted(recorded.data.items()):  # the datasets' files, as the run read them
        if not data.sha256:
            continue
        now = measure_path(Path(data.path))
        if now.sha256 != data.sha256:
            state = f"sha256 {now.sha256[:16]}, {now.files} file(s)" if now.present else "missing"
            found.append(
                f"dataset {short} data {data.path}: recorded sha256 {data.sha256[:16]}, "
                f"{data.files} file(s); now {state}"
            )
    git_now, git_then = GitState.from_dict(meta.git_state()), recorded.git
    for key in ("commit", "dirty"):
        if getattr(git_then, key) != getattr(git_now, key):
            found.append(f"git {key}: recorded {getattr(git_then, key)}, now {getattr(git_now, key)}")
    return found
