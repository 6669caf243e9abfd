"""Frozen replay: `bench-app replay <run>/configs/config_snapshot.yaml [overrides...]`.

Runs the experiment from the snapshot alone (conf/ may have changed or gone): the snapshot is turned
back into a primary config in the schema's shape, with the Hydra settings a run needs, and Hydra
composes it as usual, so extra overrides and the schema's checks apply exactly as in a normal run.
reproduce.sh --frozen calls this.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import List

from bench_app.common.files import dump_yaml
from bench_app.rundir.documents import CONFIG_COPIES, load_snapshot_config
from bench_app.rundir.user_code import frozen_user_code

# What conf/config.yaml sets for Hydra, carried here so a replay does not depend on conf/.
HYDRA_SETTINGS = {
    "run": {"dir": "outputs/${benchmark.name}"},
    "sweep": {"dir": "outputs/sweeps/${now:%Y%m%d_%H%M%S}", "subdir": "${hydra.job.num}"},
    "job": {"chdir": False},
    "callbacks": {"snapshot": {"_target_": "bench_app.cli.callbacks.SnapshotCallback"}},
}
DEFAULTS = [
    "bench_app_schema",
    "_self_",
    {"override hydra/job_logging": "none"},
    {"override hydra/hydra_logging": "none"},
]


def frozen_primary_config(snapshot_file: Path) -> dict:
    config = load_snapshot_config(snapshot_file)
    # A dataset's own AISBench config replays from the run's copy, not from where it was.
    for short, dataset in config["datasets"].items():
        if dataset.get("config_file"):
            kept = snapshot_file.parent / CONFIG_COPIES / short / Path(dataset["config_file"]).name
            dataset["config_file"] = str(kept) if kept.is_file() else dataset["config_file"]
    # So does the user's own evaluator code (evaluator.python_path, evaluator.override_modules).
    frozen_user_code(config.setdefault("evaluator", {}), snapshot_file.parent)
    config["benchmark"]["timestamp"] = "${now:%Y-%m-%dT%H:%M:%S}"
    config["frozen_from"] = str(snapshot_file)
    config["resume"] = False
    return {"defaults": DEFAULTS, **config, "hydra": HYDRA_SETTINGS}


def replay(snapshot_file: Path, overrides: List[str]) -> None:
    """Compose from the snapshot alone (a temporary primary config) and run as `bench-app` would."""
    snapshot_file = snapshot_file.resolve()
    with tempfile.TemporaryDirectory(prefix="bench_app_frozen_") as config_dir:
        (Path(config_dir) / "frozen.yaml").write_text(dump_yaml(frozen_primary_config(snapshot_file)))
        from bench_app.cli.main import run_hydra

        run_hydra(["--config-path", config_dir, "--config-name", "frozen", *overrides])
