"""Run folders -> MLflow runs: `bench-app export mlflow RUN...`, and `execution.export: [mlflow]`.

What one run becomes: params flattened from configs/config_snapshot.yaml; metrics per dataset and
subset (`sample_gsm8k/accuracy`, `sample_ceval/ceval-computer_network/accuracy`); tags for the model,
its precision, the git commit, the run's status and bench_app's run id; artifacts configs/,
report.html, results.yaml and each dataset's samples.jsonl (under samples/). When a reference
(bench_app.reports.references) matches the run's model, its parity decision per dataset the reference has
a figure for: the tag `parity.<dataset>.verdict` and the metrics `parity.<dataset>.difference` (run -
reference, points), `.difference_low` / `.difference_high` (its 95% interval), `.mde` (the minimum
detectable effect) and `.questions_needed` (an inconclusive verdict's), with the tags `parity.reference`
and `parity.tolerance`. A parity that cannot be computed is a note and the tag `parity.error`, never a
failed export.

Exporting a run again updates the MLflow run found by its `bench_app.run_id` tag instead of making a
second one. A sweep becomes a parent run (its results.yaml and summary) with one child per job.
The tracking URI: --tracking-uri, else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the current
directory (MLflow's own default: its SQLite store; its file store is deprecated). Credentials belong in
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, never in a URI that a snapshot would record.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from bench_app.common.errors import UserError
from bench_app.records.documents import RunResults, ServedModel
from bench_app.records.folder import RunFolder, SweepFolder
from bench_app.reports.compare import flatten
from bench_app.rundir.index import read_row
from bench_app.sweeps.jobs import collect_jobs, is_sweep_folder

RUN_ID_TAG = "bench_app.run_id"
EXPERIMENT = "bench_app"
_PARAM_VALUE_LIMIT = 6000  # MLflow's limit on a param's value
_BATCH = 100  # MLflow's log_batch takes at most 100 params per call
PARITY_ERROR_TAG = "parity.error"


def tracking_uri(given: Optional[str]) -> str:
    """--tracking-uri / execution.mlflow_tracking_uri, else MLFLOW_TRACKING_URI, else MLflow's own default:
    sqlite:///mlflow.db in the current directory (where `mlflow ui` looks)."""
    uri = given or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"
    if re.match(r"^[a-z+]+://[^/@]*:[^/@]*@", uri):
        raise UserError(
            "the MLflow tracking URI holds a password; give it in MLFLOW_TRACKING_USERNAME and "
            "MLFLOW_TRACKING_PASSWORD instead (bench_app never writes secrets into its outputs)"
        )
    return uri


def run_id_of(run_dir: Path) -> str:
    """bench_app's own id of a run: its name (sweep/job for a sweep's job), host and start time."""
    run = RunFolder(run_dir).read_metadata().run
    name = f"{run_dir.parent.name}/{run_dir.name}" if run_dir.name.isdigit() else run_dir.name
    return f"{name}@{run.host or '?'}:{run.started or '?'}"


def _epoch_ms(stamp: Any) -> Optional[int]:
    """A time as metadata.yaml writes it (ISO, local time) in ms since the epoch; None if not one."""
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(str(stamp)).timestamp() * 1000) if stamp else None
    except ValueError:
        return None


def _metric_key(*parts: str) -> str:
    return "/".join(re.sub(r"[^\w\-. /]", "_", str(p)) for p in parts)


def run_metrics(results: RunResults) -> Dict[str, float]:
    metrics: Dict[str, float] = {}
    for short, entry in results.datasets.items():
        for name, value in entry.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[_metric_key(short, name)] = float(value)
            elif name == "subsets" and isinstance(value, dict):
                for subset, values in value.items():
                    for metric, number in (values or {}).items():
                        if isinstance(number, (int, float)) and not isinstance(number, bool):
                            metrics[_metric_key(short, subset, metric)] = float(number)
        if entry.evaluation_s is not None:
            metrics[_metric_key(short, "evaluation_s")] = float(entry.evaluation_s)
    if results.wall_time_s is not None:
        metrics["wall_time_s"] = float(results.wall_time_s)
    return metrics


def run_parity(run_dir: Path, model: ServedModel) -> Tuple[Dict[str, str], Dict[str, float]]:
    """The run's parity against the reference matching its model, as (tags, metrics): per dataset the
    reference has a figure for, the verdict and, where decided on an interval, run - reference with its 95%
    interval, the minimum detectable effect and the questions that would decide an open verdict (points,
    as `bench-app parity` says them). No reference for the model: nothing. Raises if parity fails."""
    from bench_app.reports.parity import DEFAULT_TOLERANCE, parity  # scipy, statsmodels: only when exporting
    from bench_app.reports.references import load_reference

    names = [model.path, model.name]  # as parity() matches
    try:
        chosen, _ = load_reference(None, names)
    except UserError:  # no reference matches the model: the run exports as it always did
        return {}, {}
    report = parity(run_dir, reference=chosen, tolerance=DEFAULT_TOLERANCE)
    tags = {"parity.reference": chosen, "parity.tolerance": f"{report.tolerance:g}"}
    metrics: Dict[str, float] = {}
    for row in report.rows:
        if row.reference is None:  # no figure for this dataset (or its mode): nothing to export
            continue
        key = _metric_key("parity." + row.dataset)
        tags[f"{key}.verdict"] = row.verdict
        if row.difference is not None:
            metrics[f"{key}.difference"] = float(row.difference)
        if row.decision is None:
            continue
        decision = row.decision.to_dict()  # rounded as `bench-app parity` says them
        low, high = decision["interval"]
        metrics[f"{key}.difference_low"], metrics[f"{key}.difference_high"] = float(low), float(high)
        for name, value in (("mde", decision["mde"]), ("questions_needed", decision["needed"])):
            if value is not None:
                metrics[f"{key}.{name}"] = float(value)
    return tags, metrics


def run_params(snapshot: Dict[str, Any]) -> Dict[str, str]:
    params = {}
    for key, value in flatten(snapshot).items():
        text = "" if value is None else str(value)
        params[key[:250]] = text[:_PARAM_VALUE_LIMIT]
    return params


class Exporter:
    """One MLflow tracking store and experiment."""

    def __init__(self, uri: str, experiment: str = EXPERIMENT):
        try:
            from mlflow import MlflowClient
        except ImportError:
            raise UserError(
                "MLflow is not installed in this environment: `make setup` installs it "
                "(or pip install 'bench_app[mlflow]')"
            ) from None
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its schema-migration chatter on first use
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.uri = uri
        self.notes: List[str] = []  # what an export left out (a parity that could not be computed)
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name(experiment)
        if found is not None:
            self.experiment_id = found.experiment_id
        else:
            location = None
            if uri.startswith("sqlite:///"):  # artifacts beside the database, not in the cwd
                location = Path(uri[len("sqlite:///") :]).parent.joinpath("mlartifacts").resolve().as_uri()
            self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)

    def _find_or_create(
        self, run_id: str, name: str, parent: Optional[str], start_ms: Optional[int] = None
    ) -> Tuple[str, bool]:
        found = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1
        )
        if found:
            return found[0].info.run_id, False
        tags = {RUN_ID_TAG: run_id, "mlflow.runName": name}
        if parent:
            tags["mlflow.parentRunId"] = parent
        created = self.client.create_run(self.experiment_id, start_time=start_ms, tags=tags, run_name=name)
        return created.info.run_id, True

    def _log(self, mlflow_run: str, params: Dict[str, str], metrics: Dict[str, float], tags: Dict[str, str]):
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        existing = self.client.get_run(mlflow_run).data.params
        fresh = [Param(k, v) for k, v in params.items() if existing.get(k) != v]
        changed = [p.key for p in fresh if p.key in existing]  # MLflow's params are write-once
        fresh = [p for p in fresh if p.key not in existing]
        metric_list = [Metric(k, v, now, 0) for k, v in metrics.items()]
        tag_list = [RunTag(k, v) for k, v in tags.items()]
        for start in range(0, max(len(fresh), len(metric_list), 1), _BATCH):
            self.client.log_batch(
                mlflow_run,
                metrics=metric_list[start : start + _BATCH],
                params=fresh[start : start + _BATCH],
                tags=tag_list if start == 0 else [],
            )
        return changed

    def export_run(self, run_dir: Path, parent: Optional[str] = None) -> Tuple[str, bool, List[str]]:
        """One run folder -> (MLflow run id, created, params that differ from an earlier export)."""
        folder = RunFolder(run_dir)
        if not folder.is_run_folder():
            raise UserError(f"{run_dir} is not a bench_app run folder (no configs/config_snapshot.yaml)")
        results = folder.read_results()
        row = read_row(run_dir, run_dir.parent)
        metadata = folder.read_metadata()
        times = metadata.run  # the run's own times, not the export's
        start_ms, end_ms = _epoch_ms(times.started), _epoch_ms(times.ended)
        mlflow_run, created = self._find_or_create(run_id_of(run_dir), row.name, parent, start_ms)
        tags = {
            "model": row.model,
            "precision": row.precision,
            "git_commit": str(metadata.git.commit or ""),
            "status": row.status,
            "bench_app.run_folder": str(run_dir.resolve()),
        }
        metrics = run_metrics(results)
        for short, entry in results.datasets.items():  # execution.decide: where it was decided
            decided = entry.decided
            if decided:
                tags[f"decided.{short}"] = (
                    f"{decided.verdict or 'not decided'} at stage {decided.stage} of {decided.stages}"
                    + ("; not a full score" if decided.partial else "")
                )
                metrics[_metric_key(short, "decided", "questions")] = float(decided.questions or 0)
                metrics[_metric_key(short, "decided", "requests_saved")] = float(decided.requests_saved or 0)
        try:
            parity_tags, parity_metrics = run_parity(run_dir, results.model)
        except Exception as error:  # noqa: BLE001 - parity is an extra: the run still exports without it
            problem = f"{type(error).__name__}: {error}"
            self.notes.append(f"parity of {run_dir} not exported ({problem}); see bench-app parity {run_dir}")
            tags[PARITY_ERROR_TAG] = problem[:_PARAM_VALUE_LIMIT]
        else:
            tags.update(parity_tags)
            metrics.update(parity_metrics)
            if PARITY_ERROR_TAG in self.client.get_run(mlflow_run).data.tags:  # an earlier export's
                self.client.delete_tag(mlflow_run, PARITY_ERROR_TAG)
        changed = self._log(mlflow_run, run_params(folder.read_snapshot()), metrics, tags)
        self.client.log_artifacts(mlflow_run, str(folder.configs), "configs")
        for document in (folder.report_file, folder.results_file):
            if document.is_file():
                self.client.log_artifact(mlflow_run, str(document))
        for short in results.datasets:
            if folder.samples_file(short).is_file():
                self.client.log_artifact(mlflow_run, str(folder.samples_file(short)), f"samples/{short}")
        status = "FINISHED" if row.status == "completed" else "FAILED" if row.status != "running" else None
        if status:
            self.client.set_terminated(mlflow_run, status, end_time=end_ms)
        return mlflow_run, created, changed

    def export_sweep(self, sweep_dir: Path) -> List[Tuple[str, str, bool, List[str]]]:
        """A sweep -> a parent run and its jobs as children: [(what, MLflow run id, created, changed)]."""
        sweep_id = f"sweep:{sweep_dir.resolve()}"
        parent, created = self._find_or_create(sweep_id, sweep_dir.name, None)
        sweep = SweepFolder(sweep_dir)
        summary = sweep.read_results()
        status = str(summary.sweep.status or "unknown")
        self.client.set_tag(parent, "status", status)
        for path in (sweep.results_file, sweep.summary_file, sweep.report_file):
            if path.is_file():
                self.client.log_artifact(parent, str(path))
        exported = [(str(sweep_dir), parent, created, [])]
        for job in collect_jobs(sweep_dir):
            if RunFolder(Path(job.dir)).is_run_folder():
                exported.append((job.dir, *self.export_run(Path(job.dir), parent=parent)))
        self.client.set_terminated(parent, "FINISHED" if status == "completed" else "FAILED")
        return exported

    def export(self, path: Path) -> List[Tuple[str, str, bool, List[str]]]:
        if is_sweep_folder(path):
            return self.export_sweep(path)
        return [(str(path), *self.export_run(path))]


# ------------------------------------------------------------------ execution.export: at the end of a run
TRACKERS = ("mlflow",)


def check_trackers(names) -> None:
    """execution.export names only trackers bench_app knows (checked before anything starts)."""
    unknown = [n for n in names or [] if n not in TRACKERS]
    if unknown:
        raise UserError(
            f"execution.export: {', '.join(map(repr, unknown))} unknown. Valid: {', '.join(TRACKERS)}."
        )


def export_finished(path: Path, trackers, uri_setting: Optional[str]) -> List[str]:
    """Export a run or sweep that just ended; lines to print. Never raises: a failed export is reported
    and the run keeps its own exit code (the run folder holds everything; export again later)."""
    lines = []
    for tracker in trackers or []:
        try:
            exporter = Exporter(tracking_uri(uri_setting))
            exported = exporter.export(path)
            lines.append(f"exported to MLflow ({exporter.uri}): {len(exported)} run(s)")
            lines.extend(f"warning: {note}" for note in exporter.notes)
        except Exception as error:  # noqa: BLE001 - whatever the tracker raised, the run is not failed by it
            lines.append(
                f"warning: export to {tracker} failed ({type(error).__name__}: {error}); the run is "
                f"unchanged; export it later with: bench-app export {tracker} {path}"
            )
    return lines
