"""Migrate the original system's task and suite files into a bench_app user config folder.

    bench-app migrate SOURCE [--out FOLDER] [--into-conf]
SOURCE holds the original configs: task files (`task:`, `vllm:`, `aisbench:` blocks) and suite files
(`suite:` with `tasks:`, a list of task file paths), e.g. its configs/tasks/ and configs/suites/.
For each suite it writes, into FOLDER (default ./migrated_conf; the project's conf/ only with --into-conf):
  model/<suite>.yaml       the engine arguments the suite's tasks share (its first task's vllm block)
  dataset/<suite>__<dataset>.yaml  one per task: the AISBench config name, max_out_len, and whatever
                           engine argument the task sets differently (vllm_config_override, e.g. 128k YaRN)
  experiment/<suite>.yaml  the suite: model, datasets and the run-wide AISBench settings
  aisbench/...             every .py file under SOURCE (its patch folder: AISBench dataset configs and code
                           that users copied into the installed AISBench), at the same relative place
A task naming an AISBench config that one of those files defines gets `config_file:` pointing at it. A
file that mirrors a module of AISBench's own package (same path under ais_bench/benchmark/, e.g.
patch/datasets/livecodebench.py) replaces that module (evaluator.override_modules); the folders of the
other .py files (loaders, evaluators) go on evaluator.python_path. Then every carried config is loaded in
the evaluator's environment as planning loads it: an import of a module or name the installed AISBench
keeps elsewhere is rewritten in the copy (said as `mended`); any other failure is reported BROKEN with
file, line and error. A task naming a config that neither AISBench nor the carried files define is
reported UNMAPPED, with the stock configs that read the same data and the line to edit.
Run it with `python -m bench_app --config-dir FOLDER +experiment=<suite>`. Every field that has no
equivalent is reported with the reason, never dropped silently; existing files are never overwritten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bench_app.cli.migrate_check import Proof, prove
from bench_app.common.errors import UserError
from bench_app.common.files import atomic_write, dump_yaml, read_yaml
from bench_app.config.schema import AisbenchConf, VllmArgs

VLLM_FIELDS = {f.name for f in fields(VllmArgs)} - {"extra_args"}
# aisbench fields that are one value per run (the experiment's `aisbench:` block)
RUN_WIDE = ("model", "mode", "max_num_workers", "batch_size", "dump_eval_details")
# Fields with a home elsewhere, and why.
INFORMATIONAL = {
    "task.name": "a task's name: bench_app names datasets by their file",
    "task.model": "recorded as a comment; the model is the vllm block",
    "task.precision": "recorded as a comment; precision is vllm.quantization / dtype",
    "task.dataset": "used as the dataset file's name",
}


CARRIED = "aisbench"  # FOLDER/aisbench/: the source's own AISBench configs and code


@dataclass
class Carried:
    """The source's .py files, copied into FOLDER/aisbench/ at the same relative place."""

    files: Dict[str, Path] = field(default_factory=dict)  # relative path -> the copy
    configs_used: List[Path] = field(default_factory=list)  # copies tasks name as their dataset config
    overrides: Dict[str, Path] = field(default_factory=dict)  # AISBench module -> the copy mirroring it

    def config(self, name: str) -> Optional[Path]:
        return next((copy for copy in self.files.values() if copy.stem == name), None)

    def code_folders(self) -> List[Path]:
        """Folders of carried files that are not the dataset configs tasks use: the python_path."""
        used = {copy.parent for copy in self.configs_used}
        code = set(self.files.values()) - set(self.overrides.values())
        return sorted({copy.parent for copy in code} - used)


@dataclass
class Report:
    written: List[Path] = field(default_factory=list)
    unmapped: List[Tuple[str, str, str]] = field(default_factory=list)  # (file, field, why)
    mapped: List[Tuple[str, str, str]] = field(default_factory=list)  # (file, field, where to)
    proof: Proof = field(default_factory=Proof)  # the carried configs loaded in the evaluator's environment

    def skip(self, source: Path, key: str, why: str) -> None:
        self.unmapped.append((source.name, key, why))


def _load(path: Path) -> Dict[str, Any]:
    try:
        document = read_yaml(path)
    except Exception as error:  # noqa: BLE001 - a user file: say which and why
        raise UserError(f"{path}: not readable YAML ({type(error).__name__}: {error})") from None
    return document if isinstance(document, dict) else {}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(text)).strip("_").lower() or "unnamed"


def _find_task(source: Path, suite_file: Path, entry: str) -> Path:
    for base in (suite_file.parent, source, source.parent, source.parent.parent):
        candidate = (base / entry).resolve()
        if candidate.is_file():
            return candidate
    raise UserError(
        f"{suite_file}: task file {entry!r} not found (looked beside the suite and under {source})"
    )


def _vllm_block(task: Dict[str, Any], path: Path, report: Report) -> Dict[str, Any]:
    args: Dict[str, Any] = {}
    for key, value in (task.get("vllm") or {}).items():
        if key == "timeout":
            report.mapped.append((path.name, "vllm.timeout", "execution.server_start_timeout_s"))
        elif key in VLLM_FIELDS:
            args[key] = value
        else:
            args.setdefault("extra_args", {})[key] = value
            report.mapped.append((path.name, f"vllm.{key}", f"vllm.extra_args.{key} (passed to vllm serve)"))
    return args


def _carry(source: Path, out: Path, report: Report) -> Carried:
    from bench_app.cli.migrate_check import evaluator_for
    from bench_app.evaluators.aisbench.relocate import mirrored_module, package_root

    root = package_root(evaluator_for([], {}).command)
    carried = Carried()
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        relative = path.relative_to(source)
        copy = out / CARRIED / relative
        _write(copy, path.read_text(encoding="utf-8"), report)
        carried.files[str(relative)] = copy
        module = mirrored_module(relative, root) if root is not None else None
        if module is not None:
            carried.overrides[module] = copy
            where = f"evaluator.override_modules: {module} (replaces AISBench's own)"
            report.mapped.append((str(relative), "patch module", where))
    return carried


def _line_of(path: Path, text: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next((number for number, line in enumerate(lines, 1) if text in line), 1)


def _dataset_config(
    name: str, short: str, path: Path, out: Path, carried: Carried, report: Report
) -> Dict[str, Any]:
    """`name:` of a stock AISBench config, or `config_file:` of a carried one; UNMAPPED when neither."""
    from bench_app.evaluators.aisbench import catalog

    own = carried.config(name)
    if own is not None:
        carried.configs_used.append(own)
        relative = own.relative_to(out)
        report.mapped.append((path.name, "aisbench.dataset", f"config_file: {relative} (carried)"))
        return {"config_file": str(relative)}
    stock = catalog.stock_configs()
    if stock and name not in stock:
        from bench_app.evaluators.aisbench.relocate import same_data_configs

        same = same_data_configs(name, stock)
        report.skip(
            path,
            "aisbench.dataset",
            f"{name!r}: neither the installed AISBench nor the carried files define it"
            + (f"; stock configs that read the same data: {', '.join(same[:6])}" if same else "")
            + f". Edit `name:` in {out / 'dataset' / (short + '.yaml')} (from line {_line_of(path, name)} "
            f"of {path})",
        )
    return {"name": name}


def migrate_suite(
    source: Path, suite_file: Path, out: Path, report: Report, carried: Optional[Carried] = None
) -> Optional[str]:
    carried = carried or Carried()
    suite_doc = _load(suite_file)
    suite = suite_doc.get("suite") or {}
    name = _slug(suite.get("name") or suite_file.stem)
    task_files = [_find_task(source, suite_file, str(entry)) for entry in suite_doc.get("tasks") or []]
    if not task_files:
        report.skip(suite_file, "tasks", "the suite lists no task files")
        return None
    for key in ("description", "type"):
        if key in suite:
            report.mapped.append((suite_file.name, f"suite.{key}", "a comment in the experiment file"))
    if suite.get("repeat") not in (None, 1):
        report.skip(
            suite_file,
            "suite.repeat",
            f"samples per question: add benchmark.repeats={suite['repeat']} (every repeat in one run)",
        )
    if (suite_doc.get("output") or {}).get("work_dir"):
        report.skip(
            suite_file,
            "output.work_dir",
            "bench_app writes outputs/<benchmark.name>/ (hydra.run.dir moves it)",
        )
    for key in set(suite_doc) - {"suite", "tasks", "output"}:
        report.skip(suite_file, key, "no bench_app equivalent")

    tasks = [(path, _load(path)) for path in task_files]
    model = _vllm_block(tasks[0][1], tasks[0][0], report)
    run_wide = {k: v for k, v in (tasks[0][1].get("aisbench") or {}).items() if k in RUN_WIDE}
    timeout = (tasks[0][1].get("vllm") or {}).get("timeout")
    extra_aisbench: Dict[str, Any] = {}
    datasets: List[str] = []
    for path, task in tasks:
        for key in task.get("task") or {}:
            if f"task.{key}" not in INFORMATIONAL:
                report.skip(path, f"task.{key}", "no bench_app equivalent")
        for key in set(task) - {"task", "vllm", "aisbench"}:
            report.skip(path, key, "no bench_app equivalent")
        aisbench = dict(task.get("aisbench") or {})
        config_name = aisbench.pop("dataset", None)
        if not config_name:
            report.skip(
                path, "aisbench.dataset", "missing: the task names no AISBench dataset config; task skipped"
            )
            continue
        short = f"{name}__{_slug((task.get('task') or {}).get('dataset') or config_name)}"
        engine = _vllm_block(task, path, report)
        override = {k: v for k, v in engine.items() if model.get(k) != v}
        override.update({k: None for k in model if k not in engine and k != "extra_args"})
        document: Dict[str, Any] = {
            **_dataset_config(config_name, short, path, out, carried, report),
            "description": f"migrated from {path.name}",
            "model_config": {"max_out_len": aisbench.pop("max_out_len", 512)},
            "vllm_config_override": override,
        }
        for key, value in aisbench.items():
            if key in RUN_WIDE:
                if run_wide.get(key) != value:
                    first = run_wide.get(key)
                    why = f"{value!r} differs from the first task's {first!r}; one value per run: kept it"
                    report.skip(path, f"aisbench.{key}", why)
            elif key == "merge_ds":
                extra_aisbench["merge_ds"] = value
            elif key in {f.name for f in fields(AisbenchConf)}:
                report.skip(path, f"aisbench.{key}", "run-wide in bench_app; not carried per task")
            else:
                report.skip(path, f"aisbench.{key}", "no bench_app equivalent")
        info = task.get("task") or {}
        header = (
            f"# @package datasets.{short}\n"
            f"# {path.name}: model {info.get('model')}, precision {info.get('precision')}\n"
        )
        _write(out / "dataset" / f"{short}.yaml", header + dump_yaml(document), report)
        datasets.append(short)
    if not datasets:
        return None
    if extra_aisbench:
        run_wide["extra_args"] = extra_aisbench
        report.mapped.append(
            (suite_file.name, "aisbench.merge_ds", "aisbench.extra_args.merge_ds (--merge-ds)")
        )
    _write(
        out / "model" / f"{name}.yaml",
        f"# @package vllm\n# migrated from {tasks[0][0].name}\n" + dump_yaml(model),
        report,
    )
    experiment: Dict[str, Any] = {
        "defaults": [
            {"override /model": name},
            {"override /engine": "vllm"},
            {"override /dataset": datasets},
            "_self_",
        ],
        "benchmark": {"name": f"${{free_run_name:{name}_${{now:%Y%m%d_%H%M%S}}}}"},
        "aisbench": run_wide,
    }
    if timeout is not None:
        experiment["execution"] = {"server_start_timeout_s": float(timeout)}
    code = [str(folder.resolve()) for folder in carried.code_folders()]
    if code:  # the carried loaders and evaluators, importable by the carried configs
        experiment["evaluator"] = {"python_path": code}
        report.mapped.append((suite_file.name, "patch code", f"evaluator.python_path: {', '.join(code)}"))
    if carried.overrides:  # the carried fixes of AISBench's own modules, loaded in their place
        files = {module: str(copy.resolve()) for module, copy in carried.overrides.items()}
        experiment.setdefault("evaluator", {})["override_modules"] = files
    comment = "".join(f"# {k}: {suite[k]}\n" for k in ("description", "type") if k in suite)
    _write(
        out / "experiment" / f"{name}.yaml",
        f"# @package _global_\n# migrated from {suite_file.name}\n{comment}" + dump_yaml(experiment),
        report,
    )
    return name


def _write(path: Path, text: str, report: Report) -> None:
    if path.exists():
        raise UserError(f"{path} already exists; it is never overwritten. Choose another --out folder.")
    atomic_write(path, text)
    report.written.append(path)


def migrate(source: Path, out: Path) -> Tuple[List[str], Report]:
    if not source.is_dir():
        raise UserError(f"source folder {source} does not exist (the original system's configs/ folder)")
    suites = [p for p in sorted(source.rglob("*.yaml")) if {"suite", "tasks"} <= set(_load(p))]
    if not suites:
        raise UserError(
            f"no suite file in {source}: a suite file has `suite:` and `tasks:` (a list of task files)"
        )
    report = Report()
    carried = _carry(source, out, report)
    names = [n for n in (migrate_suite(source, suite, out, report, carried) for suite in suites) if n]
    code = [str(folder.resolve()) for folder in carried.code_folders()]
    overrides = {module: str(copy.resolve()) for module, copy in carried.overrides.items()}
    report.proof = prove(sorted(set(carried.configs_used)), out / CARRIED, code, overrides)
    return names, report
