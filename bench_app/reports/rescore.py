"""`bench-app rescore <run> [dataset ...]`: score the stored predictions again, no inference.

For when scoring failed or the metric changed: each dataset's evaluator runs only its evaluation step on
the predictions already in the run folder (AISBench: `--mode eval --reuse <its output folder>`), with
the evaluator settings the run snapshot recorded. The dataset's results (results.yaml, its
per_dataset/<short>.yaml `result`), samples.jsonl and report.html are updated; the earlier results
folder is kept beside the new one, and configs/metadata.yaml lists every re-scoring with the previous
metrics. No server is started. Exit 0 when every dataset scored, 1 when one failed, 2 on bad input.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import List

from bench_app.common.errors import EvaluationError, UserError
from bench_app.common.files import now_iso
from bench_app.common.redact import redact_argv
from bench_app.config.components import instantiate_component
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators import Evaluator
from bench_app.evaluators.sandbox import sandbox_off_warning
from bench_app.records.documents import PerDataset, Rescoring
from bench_app.records.folder import RunFolder

RESCORE_TIMEOUT_S = 3600.0


def settings_of(per_dataset: PerDataset) -> EvaluatorSettings:
    """The dataset's evaluator settings as the snapshot recorded them (aisbench: + model_config:)."""
    names = {f.name for f in dataclasses.fields(EvaluatorSettings)}
    recorded = {**per_dataset.aisbench.to_dict(), **per_dataset.generation.to_dict()}
    return EvaluatorSettings(**{k: v for k, v in recorded.items() if k in names})


def load_run(run_dir: Path):
    folder = RunFolder(run_dir)
    if not folder.is_run_folder() or not folder.results_file.is_file():
        raise UserError(
            f"{run_dir} is not a finished bench_app run folder (needs configs/config_snapshot.yaml and "
            "results.yaml)"
        )
    snapshot = folder.read_snapshot()
    evaluator = instantiate_component(snapshot.get("evaluator") or {}, Evaluator, "evaluator")
    return evaluator, folder.read_results()


def rescore(run_dir: Path, wanted: List[str], say=print) -> int:
    evaluator, results = load_run(run_dir)
    folder = RunFolder(run_dir)
    entries = results.datasets
    unknown = [short for short in wanted if short not in entries]
    if unknown:
        raise UserError(f"no dataset {unknown} in {run_dir}. Datasets of this run: {', '.join(entries)}.")
    shorts = wanted or [s for s in entries if folder.dataset_dir(s).is_dir()]
    previous, failed = {}, []
    # Scoring runs the model's code again for a code dataset: only where the sandbox starts (or is off).
    documents = {short: folder.read_per_dataset_file(short) for short in shorts}
    sandbox = evaluator.plan_sandbox([(s, entries[s].name or "", settings_of(documents[s])) for s in shorts])
    for warning in sandbox_off_warning(sandbox):
        say(f"warning: {warning}")
    log = folder.logs / "rescore.log"
    log.parent.mkdir(exist_ok=True)
    with evaluator.open_session(log) as session:
        for short in shorts:
            per_dataset = documents[short]
            settings = settings_of(per_dataset)
            work_dir = folder.dataset_dir(short)
            entry = entries[short]
            was = {"status": entry.status, "metrics": entry.metrics, "reason": entry.reason}
            previous[short] = {k: v for k, v in was.items() if v}
            say(f"re-scoring {short} from its stored predictions ...")
            try:
                task = evaluator.rescore_task(short, entry.name or "", settings, work_dir)
                task.model_path = str(per_dataset.vllm.get("model_path", ""))  # the engine's own section
                session.run(task, RESCORE_TIMEOUT_S, lambda: None)
                samples = session.write_samples(task, RESCORE_TIMEOUT_S, lambda: None)
                verified = evaluator.verify(task)
                if entry.status != "ok":  # the failure it had is gone (an ok one's notes stay)
                    entry.reason = entry.log_tail = None
                entry.status, entry.metrics, entry.samples = "ok", verified.metrics, samples.count
                entry.samples_error = samples.error or None
            except EvaluationError as error:
                entry.status, entry.reason = "failed", f"re-scoring: {error.reason}"
                entry.log_tail = error.log_tail or None
                failed.append(short)
            entry.rescored_at = now_iso()
            per_dataset.result = entry
            folder.write_per_dataset(short, per_dataset)
            say(f"  {short}: {entry.status} {entry.metrics or entry.reason}")
    if any(e.status != "ok" for e in entries.values()):
        results.status = "failed" if results.status == "completed" else results.status
    elif results.status == "failed":
        results.status = "completed"
    folder.write_results(results)
    summary = folder.read_summary()
    if summary is not None:  # its table is the original run's: say what changed since
        lines = [f"- {s}: {entries[s].status} {entries[s].metrics or entries[s].reason}" for s in shorts]
        note = f"\n## Re-scored {now_iso()} (bench-app rescore; results.yaml is current)\n" + "\n".join(lines)
        folder.write_summary(summary + note + "\n")
    metadata = folder.read_metadata()
    command = redact_argv(sys.argv)  # as the snapshot records commands: no secret in it
    rescoring = Rescoring(at=now_iso(), datasets=shorts, previous=previous, command=command)
    metadata.rescored = [*(metadata.rescored or []), rescoring]
    folder.write_metadata(metadata)
    from bench_app.reports.text import write_html_report

    html = write_html_report(run_dir)
    say(f"results: {folder.results_file}" + (f" · report: {html}" if html else ""))
    return 1 if failed else 0
