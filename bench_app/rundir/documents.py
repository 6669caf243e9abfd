"""The configuration documents of configs/ in the layout of the original document: config_snapshot.yaml
(replayable by reproduce.sh --frozen) and per_dataset/<short>.yaml (each dataset's effective config)."""

from __future__ import annotations

import copy
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict

from bench_app.common.files import file_sha256, read_yaml
from bench_app.config.schema import EvaluatorSettings
from bench_app.records.documents import PerDataset
from bench_app.run.planning.plan import DatasetPlan, EngineGroup, RunPlan

SNAPSHOT_FORMAT = 2
# configs/dataset_configs/<short>/: each dataset's own AISBench config file with the .py files beside it.
CONFIG_COPIES = "dataset_configs"
# Format 1 snapshots predate `_target_`: they always ran these components.
_FORMAT_1_TARGETS = {
    "engine": "bench_app.engines.vllm.VllmEngine",
    "evaluator": "bench_app.evaluators.aisbench.AisbenchEvaluator",
}


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


def load_snapshot_config(path: Path) -> Dict[str, Any]:
    return snapshot_to_config(read_yaml(path))


def per_dataset_document(plan: DatasetPlan, group: EngineGroup) -> PerDataset:
    """per_dataset/<short>.yaml as planned: the document's sections, every evaluator setting from the
    schema (the server and the result are added once it ran)."""
    settings = asdict(plan.evaluator)
    model_config = {k: settings.pop(k) for k in EvaluatorSettings.MODEL_CONFIG_FIELDS}
    if model_config.get("thinking") is None:  # the model's default: nothing is sent, nothing to show
        model_config.pop("thinking", None)
    document: Dict[str, Any] = {
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
    return PerDataset.from_dict(document)
