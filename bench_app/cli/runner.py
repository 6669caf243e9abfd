"""The path of one run: resolve -> plan -> snapshot -> execute -> report.

Each stage lives in its own module; this file only wires them together and owns the exit code.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Dict

from omegaconf import DictConfig

from bench_app.common.errors import UserError
from bench_app.config.resolve import resolve_with_document
from bench_app.exports.mlflow import check_trackers, export_finished
from bench_app.records.documents import DatasetEntry
from bench_app.records.folder import RunFolder
from bench_app.reports import text as report
from bench_app.run import staging
from bench_app.run.planning import sampling, slurm
from bench_app.run.planning.budget import budget_lines, check_context
from bench_app.run.planning.plan import RunPlan, build_plan, config_fingerprint
from bench_app.run.progress import make_console, styled
from bench_app.rundir.abandoned import mark_abandoned_runs
from bench_app.rundir.index import record_run
from bench_app.rundir.snapshot import Snapshot
from bench_app.rundir.sources import HydraInfo, chosen_files, hydra_info_from_config


def _discard_new_run_dir(run_dir: Path) -> None:
    """Remove the folder Hydra created for a config that did not validate (never an existing run)."""
    if run_dir.is_dir() and not RunFolder(run_dir).holds_run():
        leftovers = {p.name for p in run_dir.iterdir()}
        if leftovers <= {".hydra"}:
            shutil.rmtree(run_dir)


def _previous_results(
    run_dir: Path, plan: RunPlan, resume: bool, sweep_job: bool = False
) -> Dict[str, DatasetEntry]:
    """Refuse to overwrite an existing run; with resume=true return its datasets that are already ok."""
    folder = RunFolder(run_dir)
    if not folder.metadata_file.exists():
        if resume and not sweep_job:  # a resumed sweep's job that never started simply runs
            raise UserError(f"resume=true, but {run_dir} holds no run to resume (no configs/metadata.yaml).")
        return {}
    if not resume:
        raise UserError(
            f"run folder {run_dir} already holds a run; it is never overwritten. "
            "Choose another benchmark.name, or add resume=true to re-run its datasets that are not ok."
        )
    recorded = folder.read_metadata().fingerprint
    current = config_fingerprint(plan)
    differing = sorted(k for k in set(recorded) | set(current) if recorded.get(k) != current.get(k))
    if differing:
        raise UserError(
            f"resume refused: the effective configuration of dataset(s) {differing} differs from the "
            f"run in {run_dir}. "
            "Compare with `bench-app compare`, or start a new run with another benchmark.name."
        )
    previous = folder.dataset_results()  # from per_dataset/ when the runner died before its reports
    return {short: entry for short, entry in previous.items() if entry.status == "ok"}


def anchor_config_files(config, resolved: Dict[str, Any], info: HydraInfo) -> None:
    """A dataset's own config_file, relative to the config folder its dataset file came from, and the
    evaluator's python_path and override_modules files, relative to the run's directory, made absolute
    (in the config and in the document the snapshot records)."""
    folders_given = list(config.evaluator.get("python_path") or [])
    if folders_given:  # relative to where the run starts
        absolute = [str(Path(os.path.expanduser(f)).resolve()) for f in folders_given]
        config.evaluator["python_path"] = resolved["evaluator"]["python_path"] = absolute
    overrides = config.evaluator.get("override_modules")
    if overrides and hasattr(overrides, "items"):  # files relative to where the run starts, too
        files = {m: str(Path(os.path.expanduser(str(f))).resolve()) for m, f in overrides.items()}
        config.evaluator["override_modules"] = resolved["evaluator"]["override_modules"] = files
    given = {short: d.config_file for short, d in config.datasets.items() if d.config_file}
    if not given:
        return
    files = chosen_files(info, list(config.datasets))
    for short, text in given.items():
        path = Path(os.path.expanduser(text))
        if not path.is_absolute():
            origin = Path(files["datasets"].get(short, ""))
            if origin.suffix != ".yaml" or not origin.is_file():
                raise UserError(
                    f"dataset {short}: config_file {text!r} is relative, but the dataset comes from no "
                    "config folder to take it relative to; give an absolute path."
                )
            path = origin.parent.parent / path  # <config folder>/dataset/<short>.yaml -> <config folder>/
        if not path.is_file():
            raise UserError(f"dataset {short}: config_file {text!r} not found (looked for {path}).")
        config.datasets[short].config_file = resolved["datasets"][short]["config_file"] = str(path.resolve())


def run(cfg: DictConfig, stop_requested: Callable[[], bool] = lambda: False) -> int:
    """One run (or one job of a sweep); returns the exit code. stop_requested: the sweep asks to stop."""
    console = make_console()
    info = hydra_info_from_config()
    run_dir = Path(info.output_dir)
    # A single run's folder sits in outputs/ (sweeps are under outputs/sweeps/, checked from there too).
    for abandoned in mark_abandoned_runs(run_dir.parent) if not info.in_sweep else []:
        console.print(
            f"note: {abandoned} was left running by a runner that died; marked abandoned "
            "(resume=true continues it)"
        )
    try:
        config, resolved = resolve_with_document(cfg)
        anchor_config_files(config, resolved, info)
        plan = build_plan(config)
        deciding = staging.active(config.execution.decide)
        if deciding:
            staging.check(config.execution.decide, plan)
            if config.execution.decide.baseline:  # the snapshot names it wherever it is replayed from
                baseline = str(Path(config.execution.decide.baseline).resolve())
                config.execution.decide.baseline = resolved["execution"]["decide"]["baseline"] = baseline
        check_trackers(config.execution.export)
        if (plan.problems or plan.data_problems) and not config.execution.dry_run:
            raise UserError("refusing to start: " + " ".join(plan.problems + plan.data_problems))
        # A SLURM job requeued after its time limit or a preemption continues its run from its answers.
        resume = config.resume or slurm.requeued(os.environ) and RunFolder(run_dir).holds_run()
        already_ok = _previous_results(run_dir, plan, resume, info.in_sweep)  # cheap first
        for warning in plan.warnings:
            console.print(styled("warning:", "yellow", f" {warning}"))
        report.print_sandbox(console, plan)
        budgets = check_context(plan, config.execution.context_check)
        sampling.apply(plan, budgets)  # seeded probes (sample_size), drawn from the subsets just counted
        if deciding:  # the stages, from the same counts; the baseline or reference checked now
            from bench_app.reports.decide import Decider  # SciPy: only for runs that decide

            staging.apply(plan, budgets, config.execution.decide)
            names = [config.vllm.model_path, config.vllm.served_model_name]
            plan.decider = Decider(config.execution.decide, plan, run_dir, names)
    except UserError as error:
        console.print(styled("bench_app: error:", "bold red", f" {error}"))
        if not info.in_sweep:
            _discard_new_run_dir(run_dir)
        else:  # a sweep job keeps its folder: the sweep summary reports why it did not run
            RunFolder(run_dir).write_error(str(error))
        return error.exit_code

    snapshot = Snapshot(run_dir, resolved, plan, info, sys.argv)
    if config.execution.dry_run:
        snapshot.write_initial(status="dry_run")
        report.print_plan(console, plan, run_dir)
        report.print_budget(console, budget_lines(budgets) if budgets else [])
        snapshot.finalize("dry_run")
        return 0
    report.print_budget(console, budget_lines(budgets) if budgets else [])
    report.print_load_levels(console, plan)

    from bench_app.run.execute import execute  # the engine/evaluator code is only needed for real runs

    snapshot.write_initial(status="running")
    outcome = None
    try:
        label = f"[job {info.job_num}]" if info.in_sweep else ""  # sweep jobs share a terminal
        outcome = execute(config, plan, run_dir, snapshot, console, already_ok, stop_requested, label)
    finally:  # finalised whatever happens, an unexpected error included
        if outcome is None:
            snapshot.finalize("failed")
        else:
            snapshot.finalize(outcome.status, outcome.server_versions)
            report.write_reports(run_dir, config, plan, outcome)
        html = report.write_html_report(run_dir, console)  # also after a crash: what the folder holds
    report.print_summary(console, run_dir, plan, outcome, html)
    _after_run(config, run_dir, console, sweep_job=info.in_sweep)
    return outcome.exit_code


def _after_run(config, run_dir: Path, console, sweep_job: bool) -> None:
    """The run history learns of the run; a run (not a sweep's job: the sweep exports as a whole) goes
    to the trackers of execution.export. Neither can fail the run."""
    problem = record_run(run_dir)
    if problem:
        console.print(styled("warning:", "yellow", f" {problem}"))
    if config.execution.export and not sweep_job:
        for line in export_finished(run_dir, config.execution.export, config.execution.mlflow_tracking_uri):
            console.print(line, highlight=False)
