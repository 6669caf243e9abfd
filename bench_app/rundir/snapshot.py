"""The configuration snapshot: outputs/<run>/configs/ in the layout of the original document.

    config_original.yaml   what the user asked for (primary config, group choices with paths, CLI overrides)
    config_snapshot.yaml   fully expanded and resolved; replayable by reproduce.sh --frozen
    metadata.yaml          runtime, versions, command, git, accelerator, environment, status
    reproduce.sh           re-runs the experiment into a new run folder
    per_dataset/<short>.yaml  effective per-dataset config (+ engine argv, read-back values, result)

Written before any server starts and finalised at the end (also on failure or Ctrl-C). Every file is
written atomically and scrubbed of secrets.
"""

from __future__ import annotations

import copy
import os
import re
import socket
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_app.common.files import (
    atomic_write,
    copy_with_siblings,
    dump_yaml,
    file_sha256,
    first_config_file,
    now_iso,
    read_yaml,
    yaml_loads,
)
from bench_app.common.processes import process_alive, process_start_time
from bench_app.common.redact import redact_mapping, secret_values
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators.aisbench import catalog
from bench_app.records.folder import RunFolder
from bench_app.run.planning import slurm
from bench_app.run.planning.plan import DatasetPlan, EngineGroup, RunPlan, config_fingerprint
from bench_app.rundir import metadata as meta
from bench_app.rundir.reproduce import reproduce_script
from bench_app.rundir.user_code import keep_overrides, keep_python_path

SNAPSHOT_FORMAT = 2
# configs/dataset_configs/<short>/: each dataset's own AISBench config file with the .py files beside it.
CONFIG_COPIES = "dataset_configs"
# Format 1 snapshots predate `_target_`: they always ran these components.
_FORMAT_1_TARGETS = {
    "engine": "bench_app.engines.vllm.VllmEngine",
    "evaluator": "bench_app.evaluators.aisbench.AisbenchEvaluator",
}


# ---------------------------------------------------------------- document-shaped sections
def snapshot_document(resolved: Dict[str, Any], plan: RunPlan) -> Dict[str, Any]:
    """config_snapshot.yaml: the document's sections (benchmark, vllm, aisbench, datasets) and what
    a replay needs."""
    names = [d.name for d in plan.datasets]
    planned = {d.short: d.name for d in plan.datasets}  # a dataset's own config file names it by its stem
    datasets = {}
    for short, dataset in resolved["datasets"].items():
        entry = {"short": short, **copy.deepcopy(dataset)}
        for unset in ("vllm_config_override", "config_file"):
            if not entry.get(unset):
                entry.pop(unset, None)
        name = planned.get(short) or dataset["name"]
        key = name if names.count(name) == 1 else f"{name}@{short}"
        datasets[key] = entry
    aisbench = {"datasets": names, **copy.deepcopy(resolved["aisbench"])}
    return {
        "benchmark": resolved["benchmark"],
        "vllm": resolved["vllm"],
        "aisbench": aisbench,
        "datasets": datasets,
        "engine": resolved["engine"],
        "evaluator": resolved["evaluator"],
        "execution": resolved["execution"],
        "snapshot_format": SNAPSHOT_FORMAT,
    }


def snapshot_to_config(document: Dict[str, Any]) -> Dict[str, Any]:
    """Inverse of snapshot_document: a config in the schema's shape (used by the frozen replay)."""
    config = {
        k: copy.deepcopy(document[k])
        for k in ("benchmark", "vllm", "engine", "evaluator", "execution")
        if k in document
    }
    for group, target in _FORMAT_1_TARGETS.items():
        config.get(group, {}).setdefault("_target_", target)
    aisbench = copy.deepcopy(document.get("aisbench", {}))
    aisbench.pop("datasets", None)
    config["aisbench"] = aisbench
    config["datasets"] = {}
    for entry in document.get("datasets", {}).values():
        entry = copy.deepcopy(entry)
        short = entry.pop("short")
        entry.setdefault("vllm_config_override", {})
        config["datasets"][short] = entry
    return config


def per_dataset_document(plan: DatasetPlan, group: EngineGroup) -> Dict[str, Any]:
    """per_dataset/<short>.yaml: the document's sections, every evaluator setting from the schema."""
    settings = asdict(plan.evaluator)
    model_config = {k: settings.pop(k) for k in EvaluatorSettings.MODEL_CONFIG_FIELDS}
    if model_config.get("thinking") is None:  # the model's default: nothing is sent, nothing to show
        model_config.pop("thinking", None)
    document = {
        "dataset": {"name": plan.name, "short": plan.short, "description": plan.description},
        "vllm": plan.engine_args,
        "aisbench": settings,
        "model_config": model_config,
    }
    if plan.override_applied:
        document["vllm_config_override_applied"] = plan.override_applied
    if plan.evaluator.config_file:  # the dataset's own AISBench config, and its copy in configs/
        source = Path(plan.evaluator.config_file)
        document["config_file"] = {
            "source": str(source),
            "copy": f"{CONFIG_COPIES}/{plan.short}/{source.name}",
            "sha256": file_sha256(source),
        }
    if plan.context_budget is not None:
        document["context_budget"] = plan.context_budget
    if plan.data is not None:  # the data files it read: path, files, bytes, sha256
        document["data"] = plan.data
    document["engine"] = {
        "group": group.index,
        "shares_server_with": [s for s in group.datasets if s != plan.short],
        "argv": group.argv,
        # execution.replicas: servers of this configuration behind one endpoint (their argv, devices and
        # ports: the dataset's server.replicas)
        **({"replicas": group.replicas} if group.replicas > 1 else {}),
        **group.launch_details,
        **({"problems": group.problems} if group.problems else {}),
    }
    return document


# ---------------------------------------------------------------- which file each choice came from
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


def chosen_files(
    folders: List[Path], choices: Dict[str, Any], datasets: List[str], overrides: List[str]
) -> Dict[str, Any]:
    """The file behind each group choice, as Hydra found it (first of the folders in search order).
    A dataset is known by the package its file writes (`datasets.<short>`): Hydra keeps no choice
    for a list-valued group; where several files write it, the one the command line named wins."""

    def first(group: str, option: str) -> str:
        found = first_config_file(group, option, folders)
        return str(found) if found else f"{group}/{option}"

    files: Dict[str, Any] = {
        group: first(group, str(choices[group]))
        for group in ("model", "engine", "evaluator", "experiment")
        if isinstance(choices.get(group), str)
    }
    named = {word for o in overrides if o.lstrip("+~").startswith("dataset=") for word in _words(o)}
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


def user_config_folders(folders: List[str], project_conf: Optional[str]) -> List[str]:
    """The folders beyond the project's conf/ (what reproduce.sh must pass on as hydra.searchpath)."""
    return [f for f in folders if f != project_conf]


# ---------------------------------------------------------------- the writer
class Snapshot:
    """Writes and finalises outputs/<run>/configs/."""

    def __init__(
        self,
        run_dir: Path,
        resolved: Dict[str, Any],
        plan: RunPlan,
        hydra_info: Dict[str, Any],
        argv: List[str],
    ):
        self.run_dir = run_dir
        self.folder = RunFolder(run_dir)
        self.resolved = resolved
        self.plan = plan
        self.hydra_info = hydra_info
        self.argv = argv
        self.started = resolved["benchmark"]["timestamp"] or now_iso()
        self.secrets = secret_values(os.environ, resolved)
        self.metadata: Dict[str, Any] = {}

    def _write(self, path: Path, data: Any) -> None:
        atomic_write(path, dump_yaml(redact_mapping(data)), self.secrets)

    def original_document(self) -> Dict[str, Any]:
        info = self.hydra_info
        conf_dir = Path(info["config_dir"]) if info.get("config_dir") else None
        folders = [Path(f) for f in info.get("config_folders") or ([conf_dir] if conf_dir else [])]
        choices = info.get("choices", {})
        files = chosen_files(folders, choices, list(self.resolved["datasets"]), info.get("overrides", []))
        return {
            "benchmark": {"name": self.resolved["benchmark"]["name"]},
            "primary_config": str(conf_dir / f"{info['config_name']}.yaml")
            if conf_dir
            else info.get("config_name"),
            "model_config": files.get("model"),
            "datasets": list(files["datasets"].values()),
            "files": files,
            "config_folders": [str(f) for f in folders],
            "choices": {**choices, "dataset": list(self.resolved["datasets"])},
            "overrides": list(info.get("overrides", [])),
            "frozen_from": self.resolved.get("frozen_from"),
        }

    def scrub_hydra_output(self) -> None:
        """Hydra's own .hydra/ copies hold the raw command line and config: remove secrets there too."""
        for path in self.folder.hydra_dir.glob("*.yaml"):
            text = path.read_text()
            if any(secret in text for secret in self.secrets):
                atomic_write(path, text, self.secrets)

    def _command_line(self) -> List[str]:
        """The command this run was started with. A SLURM job was started by submitit's own script on
        the compute node; its command is the job's bench_app command line (the sweep's is elsewhere)."""
        if slurm.in_job(os.environ) and "submitit" in self.argv[0]:
            return ["python -m bench_app", *self.hydra_info.get("overrides", [])]
        return self.argv

    def write_initial(self, status: str) -> None:
        self.scrub_hydra_output()
        engine, evaluator = self.plan.engine, self.plan.evaluator
        envs = meta.environment_versions(engine.command, evaluator.command)
        git = meta.git_state()
        self.metadata = {
            "runtime": meta.runtime_block(self.started),
            "versions": meta.summary_versions(envs, engine.version_packages, evaluator.version_packages),
            "command": meta.command_block(self._command_line()),
            "git": {**git, "diff_file": "git_diff.patch" if git.get("dirty") else None},
            "accelerator": meta.accelerator_info(),
            "environment_variables": meta.relevant_environment(),
            "package_lists": {"engine": "packages_engine.txt", "evaluator": "packages_evaluator.txt"},
            # Who runs it: the next command tells a dead runner's `running` from a live one's.
            "run": {
                "status": status,
                "started": self.started,
                "ended": None,
                "pid": os.getpid(),
                "pid_start": process_start_time(os.getpid()),
                "host": socket.gethostname(),
            },
            "fingerprint": config_fingerprint(self.plan),
            "data": {d.short: d.data for d in self.plan.datasets if d.data is not None},  # files read
        }
        if evaluator.python_path:  # the user's own evaluator code, kept with the run (--frozen uses it)
            self.metadata["python_path"] = keep_python_path(
                evaluator.python_path, self.plan.shadowed, self.folder.configs
            )
        if evaluator.override_modules:
            kept = keep_overrides(evaluator.override_modules, self.folder.configs)
            self.metadata["override_modules"] = kept
        if self.plan.sandbox:  # where the model's code ran (tool, version, limits), or that it ran as is
            self.metadata["sandbox"] = self.plan.sandbox
        if not engine.starts_server:  # evaluated as it runs: a replay needs that server up again
            self.metadata["external_server"] = {
                "base_url": getattr(engine, "base_url", None),
                "started_by_bench_app": False,
                "note": "reproduce.sh needs this server running, serving the same model",
            }
        if any(g.replicas > 1 for g in self.plan.groups):  # execution.replicas, per engine group
            self.metadata["replicas"] = {str(g.index): g.replicas for g in self.plan.groups}
        allocation = slurm.allocation(os.environ)
        if allocation:
            self.metadata["slurm"] = allocation
        if self.hydra_info.get("job_num") is not None:
            self.metadata["sweep"] = {
                "dir": str(self.run_dir.parent),
                "job_num": self.hydra_info["job_num"],
                "job_overrides": list(self.hydra_info.get("overrides", [])),
            }
        self._write(self.folder.original_file, self.original_document())
        self._write(self.folder.snapshot_file, snapshot_document(self.resolved, self.plan))
        for dataset in self.plan.datasets:
            if dataset.evaluator.config_file:  # the file and its siblings: what --frozen replays from
                copy_with_siblings(
                    Path(dataset.evaluator.config_file), self.folder.configs / CONFIG_COPIES / dataset.short
                )
            document = per_dataset_document(dataset, self.plan.groups[dataset.group])
            # resume=true: what the earlier run recorded of it stays until this run records anew
            earlier = self.folder.read_per_dataset_file(dataset.short)
            document.update({k: earlier[k] for k in ("server", "result") if k in earlier})
            self._write(self.folder.per_dataset_file(dataset.short), document)
        for role, packages in envs.items():
            atomic_write(self.folder.packages_file(role), "".join(f"{n}=={v}\n" for n, v in packages.items()))
        if git.get("dirty"):
            atomic_write(self.folder.git_diff_file, meta.git_diff(), self.secrets)
        earlier = read_yaml(self.folder.metadata_file) if self.folder.metadata_file.is_file() else {}
        if (earlier or {}).get("rescored"):  # resume=true keeps the folder's history
            self.metadata["rescored"] = earlier["rescored"]
        self._write(self.folder.metadata_file, self.metadata)
        name = self.resolved["benchmark"]["name"]
        if self.hydra_info.get("job_num") is not None:  # jobs of a sweep share benchmark.name
            name = f"{name}_job{self.hydra_info['job_num']}"
        search_path = user_config_folders(
            self.hydra_info.get("config_folders") or [], self.hydra_info.get("config_dir")
        )
        external = None if self.plan.engine.starts_server else getattr(self.plan.engine, "base_url", None)
        script = reproduce_script(
            name, self.hydra_info.get("overrides", []), self.started, search_path, external
        )
        atomic_write(self.folder.reproduce_file, script, self.secrets, mode=0o755)

    def record_dataset(self, short: str, extra: Dict[str, Any]) -> None:
        """Add what happened (server read-back, argv actually used, result) to per_dataset/<short>.yaml."""
        document = self.folder.read_per_dataset_file(short)
        document.update(extra)
        self._write(self.folder.per_dataset_file(short), document)

    def finalize(self, status: str, server_versions: Optional[Dict[str, Any]] = None) -> None:
        self.metadata["run"].update(status=status, ended=now_iso())
        if server_versions:
            self.metadata["versions"][f"{self.plan.engine.name}_server"] = server_versions
        self._write(self.folder.metadata_file, self.metadata)


def mark_abandoned(metadata_file: Path) -> bool:
    """A run folder whose runner died without finalising (SIGKILL, OOM, power): mark it `abandoned` with
    the time found. Only runs of this host are judged; True when the file was changed."""
    try:
        text = metadata_file.read_text()
        # Every run under outputs/ is checked at each start: parse only those that may still run.
        document = (yaml_loads(text) or {}) if "status: running" in text else {}
    except (OSError, ValueError):
        return False
    run = document.get("run") or {}
    if run.get("status") != "running" or run.get("host") != socket.gethostname() or not run.get("pid"):
        return False
    if process_alive(int(run["pid"]), run.get("pid_start")):
        return False
    run.update(status="abandoned", abandoned_found=now_iso())
    atomic_write(metadata_file, dump_yaml(document))
    return True


def mark_abandoned_runs(outputs_dir: Path) -> List[Path]:
    """Check every run folder under outputs/ (single runs and sweep jobs); return those just marked."""
    patterns = ("*/configs/metadata.yaml", "sweeps/*/*/configs/metadata.yaml")
    files = [f for pattern in patterns for f in outputs_dir.glob(pattern)] if outputs_dir.is_dir() else []
    return [f.parent.parent for f in files if mark_abandoned(f)]


def load_snapshot_config(path: Path) -> Dict[str, Any]:
    return snapshot_to_config(read_yaml(path))


def hydra_info_from_config() -> Dict[str, Any]:
    """What the user asked for, from Hydra's runtime config (the content of .hydra/)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    hydra_cfg = HydraConfig.get()
    config_dir = None
    for source in hydra_cfg.runtime.config_sources:
        if source.provider == "main" and source.schema == "file":
            config_dir = source.path
    # Every folder Hydra read configs from, in its search order (conf/, hydra.searchpath, --config-dir).
    folders = [s.path for s in hydra_cfg.runtime.config_sources if s.schema == "file" and s.path]
    choices = {
        k: v
        for k, v in OmegaConf.to_container(hydra_cfg.runtime.choices).items()
        if not k.startswith("hydra/")
    }
    return {
        "config_dir": config_dir,
        "config_folders": folders,
        "config_name": hydra_cfg.job.config_name,
        "choices": choices,
        "overrides": list(hydra_cfg.overrides.task),
        "output_dir": hydra_cfg.runtime.output_dir,
        "project_root": str(PROJECT_ROOT),
        # Set for a job of a multirun: its number in the sweep (<sweep dir>/<num>).
        "job_num": hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None,
    }
