"""Where a run's configuration came from: what Hydra composed it of (HydraInfo), the file behind each group
choice, and config_original.yaml, which records both."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_app.common.files import first_config_file
from bench_app.evaluators.aisbench import catalog


@dataclass(frozen=True)
class HydraInfo:
    """What the user asked for, from Hydra's runtime config (the content of .hydra/)."""

    output_dir: str  # the run folder
    config_name: Optional[str] = None  # the primary config
    config_dir: Optional[str] = None  # the folder it came from
    # Every folder Hydra read configs from, in its search order (conf/, hydra.searchpath, --config-dir).
    config_folders: List[str] = field(default_factory=list)
    choices: Dict[str, Any] = field(default_factory=dict)  # group -> option (Hydra's own groups left out)
    overrides: List[str] = field(default_factory=list)  # the command line's
    job_num: Optional[int] = None  # a job of a multirun: its number in the sweep (<sweep dir>/<num>)

    @property
    def in_sweep(self) -> bool:
        return self.job_num is not None

    @property
    def folders(self) -> List[Path]:
        """The config folders, in search order (the primary config's alone when Hydra listed none)."""
        listed = self.config_folders or ([self.config_dir] if self.config_dir else [])
        return [Path(f) for f in listed]

    @property
    def user_config_folders(self) -> List[str]:
        """The folders beyond the project's conf/ (what reproduce.sh must pass on as hydra.searchpath)."""
        return [f for f in self.config_folders if f != self.config_dir]


def hydra_info_from_config() -> HydraInfo:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    sources = hydra_cfg.runtime.config_sources
    config_dir = next((s.path for s in sources if s.provider == "main" and s.schema == "file"), None)
    choices = OmegaConf.to_container(hydra_cfg.runtime.choices)
    return HydraInfo(
        output_dir=hydra_cfg.runtime.output_dir,
        config_name=hydra_cfg.job.config_name,
        config_dir=config_dir,
        config_folders=[s.path for s in sources if s.schema == "file" and s.path],
        choices={k: v for k, v in choices.items() if not k.startswith("hydra/")},
        overrides=list(hydra_cfg.overrides.task),
        job_num=hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None,
    )


def _package_of(path: Path) -> Optional[str]:
    """The `# @package ...` header of a config file (Hydra reads it from the first lines)."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("# @package"):
                    return line.split("@package", 1)[1].strip()
                if line.strip() and not line.startswith("#"):
                    return None
    except OSError:
        return None
    return None


def chosen_files(info: HydraInfo, datasets: List[str]) -> Dict[str, Any]:
    """The file behind each group choice, as Hydra found it (first of the folders in search order).
    A dataset is known by the package its file writes (`datasets.<short>`): Hydra keeps no choice
    for a list-valued group; where several files write it, the one the command line named wins."""
    folders, choices = info.folders, info.choices

    def first(group: str, option: str) -> str:
        found = first_config_file(group, option, folders)
        return str(found) if found else f"{group}/{option}"

    files: Dict[str, Any] = {
        group: first(group, str(choices[group]))
        for group in ("model", "engine", "evaluator", "experiment")
        if isinstance(choices.get(group), str)
    }
    named = {word for o in info.overrides if o.lstrip("+~").startswith("dataset=") for word in _words(o)}
    files["datasets"] = {}
    for short in datasets:
        candidates = [
            p
            for d in folders
            for p in sorted((d / "dataset").glob("*.yaml"))
            if _package_of(p) == f"datasets.{short}"
        ]
        pick = next((p for p in candidates if p.stem in named), None) or next(
            (p for p in candidates if p.stem == short), candidates[0] if candidates else None
        )
        stock = catalog.stock_configs().get(short) if pick is None else None
        files["datasets"][short] = str(pick or stock or f"dataset/{short}")  # stock: AISBench's own .py
    # Engine-override bundles that dataset files pull in (`override@<package>: <option>` choices).
    bundles = {
        key.split("@", 1)[1]: first("override", option)
        for key, option in choices.items()
        if key.startswith("override@") and isinstance(option, str)
    }
    if bundles:
        files["overrides"] = bundles
    return files


def _words(override: str) -> List[str]:
    return [w for w in re.split(r"[^A-Za-z0-9_./-]+", override.split("=", 1)[1]) if w]


def original_document(info: HydraInfo, resolved: Dict[str, Any]) -> Dict[str, Any]:
    """config_original.yaml: the primary config, each group choice with its file, the command line's
    overrides."""
    files = chosen_files(info, list(resolved["datasets"]))
    conf_dir = Path(info.config_dir) if info.config_dir else None
    return {
        "benchmark": {"name": resolved["benchmark"]["name"]},
        "primary_config": str(conf_dir / f"{info.config_name}.yaml") if conf_dir else info.config_name,
        "model_config": files.get("model"),
        "datasets": list(files["datasets"].values()),
        "files": files,
        "config_folders": [str(f) for f in info.folders],
        "choices": {**info.choices, "dataset": list(resolved["datasets"])},
        "overrides": list(info.overrides),
        "frozen_from": resolved.get("frozen_from"),
    }
