"""The run folder, outputs/<run>/: every path under it, and its documents as typed records.

    configs/config_original.yaml   what the user asked for
    configs/config_snapshot.yaml   the resolved config (replayable)
    configs/metadata.yaml          runtime, versions, git, environment, status
    configs/reproduce.sh           re-runs the experiment into a new run folder
    configs/packages_<env>.txt, configs/git_diff.patch   the environments and uncommitted changes
    configs/per_dataset/<short>.yaml   effective per-dataset config, engine argv, server, result
    requests.sqlite                the run's request cache: every answer, what resume=true answers from
    results.yaml                   every dataset's status and metrics (RunResults, schema_version)
    summary.md, report.html        the same for people
    logs/                          engine and evaluator logs per engine group
    <short>/                       the evaluator's work folder; <short>/samples.jsonl per-sample records,
                                   <short>/requests.jsonl every answer as the server gave it
    .hydra/                        Hydra's own copies of the command line and config

Every other module asks this one for a path and reads the documents through it, so the layout is
written down once. results.yaml carries `schema_version`: a folder written by an older bench_app
(no version) still reads; one written by a newer bench_app is refused with a clear message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

from bench_app.common.errors import UserError
from bench_app.common.files import atomic_write, dump_yaml, read_yaml, read_yaml_if_exists, yaml_loads
from bench_app.common.redact import redact_mapping
from bench_app.records import names
from bench_app.records.answers import RequestLine, reasoning_of
from bench_app.records.cache import RequestCache
from bench_app.records.documents import (
    RESULTS_SCHEMA_VERSION,
    DatasetEntry,
    JobRecord,
    PerDataset,
    RunMetadata,
    RunResults,
    SampleRecord,
    SweepResults,
)


def headline(metrics: Dict[str, Any]) -> Optional[Tuple[str, float]]:
    """A dataset's main metric in results.yaml: accuracy when it has one, else its first number."""
    numbers = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
    if not numbers:
        return None
    name = "accuracy" if "accuracy" in numbers else next(iter(numbers))
    return name, numbers[name]


@dataclass(frozen=True)
class RunFolder:
    """outputs/<run>/ of one run (or one job of a sweep)."""

    root: Path

    # ------------------------------------------------------------------ paths, as the tree above
    configs = property(lambda self: self.root / names.CONFIGS_DIR)
    metadata_file = property(lambda self: self.configs / names.METADATA_FILE)
    snapshot_file = property(lambda self: self.configs / names.SNAPSHOT_FILE)
    original_file = property(lambda self: self.configs / names.ORIGINAL_FILE)
    reproduce_file = property(lambda self: self.configs / names.REPRODUCE_FILE)
    git_diff_file = property(lambda self: self.configs / names.GIT_DIFF_FILE)
    per_dataset_dir = property(lambda self: self.configs / names.PER_DATASET_DIR)
    results_file = property(lambda self: self.root / names.RESULTS_FILE)
    summary_file = property(lambda self: self.root / names.SUMMARY_FILE)
    report_file = property(lambda self: self.root / names.REPORT_FILE)
    error_file = property(lambda self: self.root / names.ERROR_FILE)  # why a sweep job could not start
    logs = property(lambda self: self.root / names.LOGS_DIR)
    hydra_dir = property(lambda self: self.root / ".hydra")
    cache_file = property(lambda self: self.root / names.CACHE_FILE)  # the run's own request cache
    job_file = property(lambda self: self.root / names.JOB_FILE)  # a sweep job's own record

    def packages_file(self, role: str) -> Path:
        """pip freeze of one environment (engine, evaluator)."""
        return self.configs / f"packages_{role}.txt"

    def per_dataset_file(self, short: str) -> Path:
        return self.per_dataset_dir / f"{short}.yaml"

    def engine_log(self, group: int, replica: Optional[int] = None) -> Path:
        """The server's output; one per replica with execution.replicas > 1."""
        return self.logs / (
            f"engine_group{group}.log" if replica is None else f"engine_group{group}_r{replica}.log"
        )

    def evaluator_log(self, group: int) -> Path:
        return self.logs / f"evaluator_group{group}.log"

    def dataset_dir(self, short: str) -> Path:
        """The evaluator's work folder of one dataset."""
        return self.root / short

    def samples_file(self, short: str) -> Path:
        return self.dataset_dir(short) / names.SAMPLES_FILE

    def requests_file(self, short: str) -> Path:
        """Every answer the server gave, recorded as it arrived (bench_app.run.relay.proxy)."""
        return self.dataset_dir(short) / names.REQUESTS_FILE

    # ------------------------------------------------------------------ what it holds
    def holds_run(self) -> bool:
        """A snapshot was written here: the folder is a run and is never overwritten."""
        return self.configs.exists()

    def is_run_folder(self) -> bool:
        return self.snapshot_file.is_file()

    # ------------------------------------------------------------------ documents
    def read_results(self, cut: Optional[Callable[[str], str]] = None) -> RunResults:
        """results.yaml (empty when the run wrote none); refuses a schema newer than this bench_app reads.
        `cut` keeps only the lines a reader needs (the run index: a big folder's results parse in less);
        a text it cannot cut into a mapping is read whole."""
        try:
            text = self.results_file.read_text(encoding="utf-8")
        except FileNotFoundError:
            return RunResults()
        document = None
        if cut is not None:
            try:
                document = yaml_loads(cut(text))
            except Exception:  # noqa: BLE001 - not the layout the cut expects: read it whole
                document = None
        if not isinstance(document, dict):
            document = yaml_loads(text) or {}
        self.check_schema_version(document)
        return RunResults.from_dict(document)

    def check_schema_version(self, document: Dict[str, Any]) -> None:
        version = document.get("schema_version", 1)
        if not isinstance(version, int) or version > RESULTS_SCHEMA_VERSION:
            raise UserError(
                f"{self.results_file} has schema_version {version!r}, written by a newer bench_app; this "
                f"one reads up to version {RESULTS_SCHEMA_VERSION}. Read it with the bench_app that wrote it "
                "(configs/metadata.yaml names its git commit), or update this checkout."
            )

    def write_results(self, document: Union[RunResults, Dict[str, Any]]) -> None:
        data = document.to_dict() if isinstance(document, RunResults) else dict(document)
        data.pop("schema_version", None)
        atomic_write(self.results_file, dump_yaml({"schema_version": RESULTS_SCHEMA_VERSION, **data}))

    def read_metadata(self) -> RunMetadata:
        return RunMetadata.from_dict(read_yaml_if_exists(self.metadata_file, {}) or {})

    def read_metadata_if_running(self) -> Optional[RunMetadata]:
        """metadata.yaml of a run that says it is running, else None; every run under outputs/ is checked
        at each start (bench_app.rundir.abandoned), so only those that may still run are parsed."""
        try:
            text = self.metadata_file.read_text()
            if "status: running" not in text:
                return None
            return RunMetadata.from_dict(yaml_loads(text))
        except (OSError, ValueError):
            return None

    def read_snapshot(self) -> Dict[str, Any]:
        """configs/config_snapshot.yaml, the resolved config (typed by config.schema); {} when absent."""
        return read_yaml_if_exists(self.snapshot_file, {}) or {}

    def read_packages(self, role: str) -> Dict[str, str]:
        """configs/packages_<role>.txt: each package's version as the run recorded it ({} when absent)."""
        path = self.packages_file(role)
        lines = path.read_text().splitlines() if path.exists() else []
        return dict(line.strip().split("==", 1) for line in lines if "==" in line)

    def write_error(self, error: str) -> None:
        """error.txt: why a sweep's job could not run (the sweep summary reports it)."""
        atomic_write(self.error_file, f"{error}\n")

    def read_summary(self) -> Optional[str]:
        return self.summary_file.read_text() if self.summary_file.exists() else None

    def write_summary(self, markdown: str) -> None:
        atomic_write(self.summary_file, markdown)

    def read_error(self) -> Optional[str]:
        """error.txt: why a sweep's job could not run (None when it has none)."""
        return self.error_file.read_text().strip() if self.error_file.exists() else None

    def read_job(self) -> Optional[JobRecord]:
        """job.yaml of a sweep's job (None: the job has not ended, or this is no sweep job)."""
        return JobRecord.from_dict(read_yaml(self.job_file)) if self.job_file.exists() else None

    def write_job(self, job: JobRecord, error: Optional[str] = None) -> None:
        """A sweep job's end: job.yaml, and error.txt when it could not run."""
        if error:
            self.write_error(error)
        atomic_write(self.job_file, dump_yaml(job.to_dict()))

    def read_per_dataset_file(self, short: str) -> PerDataset:
        """configs/per_dataset/<short>.yaml (empty when there is none yet)."""
        return PerDataset.from_dict(read_yaml_if_exists(self.per_dataset_file(short), {}) or {})

    def read_per_dataset(self) -> Dict[str, PerDataset]:
        """configs/per_dataset/<short>.yaml of every dataset, by short name."""
        return {
            p.stem: PerDataset.from_dict(read_yaml(p)) for p in sorted(self.per_dataset_dir.glob("*.yaml"))
        }

    def dataset_results(self) -> Dict[str, DatasetEntry]:
        """Each dataset's result: from results.yaml, or, when the runner died before writing it, from
        the per_dataset files each finished dataset left."""
        if self.results_file.exists():
            return dict(self.read_results().datasets)
        per_dataset = self.read_per_dataset().items()
        return {short: document.result or DatasetEntry() for short, document in per_dataset}

    # ------------------------------------------------------------------ configs/, as the snapshot writes it
    def _write_yaml(self, path: Path, document: Any, secrets: Sequence[str]) -> None:
        """A YAML document of configs/: secrets' values and secret-named keys never reach the file."""
        atomic_write(path, dump_yaml(redact_mapping(document)), secrets)

    def write_original(self, document: Dict[str, Any], secrets: Sequence[str] = ()) -> None:
        self._write_yaml(self.original_file, document, secrets)

    def write_snapshot(self, document: Dict[str, Any], secrets: Sequence[str] = ()) -> None:
        self._write_yaml(self.snapshot_file, document, secrets)

    def write_metadata(self, metadata: RunMetadata, secrets: Sequence[str] = ()) -> None:
        self._write_yaml(self.metadata_file, metadata.to_dict(), secrets)

    def write_per_dataset(self, short: str, document: PerDataset, secrets: Sequence[str] = ()) -> None:
        self._write_yaml(self.per_dataset_file(short), document.to_dict(), secrets)

    def write_packages(self, role: str, packages: Dict[str, str]) -> None:
        atomic_write(self.packages_file(role), "".join(f"{n}=={v}\n" for n, v in packages.items()))

    def write_git_diff(self, diff: str, secrets: Sequence[str] = ()) -> None:
        atomic_write(self.git_diff_file, diff, secrets)

    def write_reproduce_script(self, script: str, secrets: Sequence[str] = ()) -> None:
        atomic_write(self.reproduce_file, script, secrets, mode=0o755)

    def read_samples(
        self, short: str, texts: bool = False, shorten: Callable[[str], str] = lambda text: text
    ) -> Optional[List[SampleRecord]]:
        """A dataset's per-sample records in file order; None when the run has none for it. texts: with
        the reasoning and the output put back from the relay's records (each answer is stored once, in
        requests.jsonl), each through shorten (the report keeps only a head and a tail)."""
        path = self.samples_file(short)
        if not path.is_file():
            return None
        with open(path, encoding="utf-8") as handle:
            records = [SampleRecord.from_dict(json.loads(line)) for line in handle if line.strip()]
        if texts:
            wanted = {r.request_line for r in records if isinstance(r.request_line, int)}
            recorded = self._request_texts(short, wanted)
            for record in records:
                answer, reasoning = recorded.get(record.request_line, (record.answer or "", ""))
                record.reasoning = shorten(reasoning)
                if record.output_from:
                    assembled = record.output_from.replace("{reasoning}", reasoning)
                    record.output = shorten(assembled.replace("{answer}", answer))
                elif isinstance(record.output, str):
                    record.output = shorten(record.output)
        return records

    def read_requests(self, short: str, lines: Optional[Set[int]] = None) -> Dict[int, RequestLine]:
        """The lines of <short>/requests.jsonl (every one, or those numbered in `lines`, from 0) by number, in
        the order the answers arrived; empty when there are none."""
        path = self.requests_file(short)
        if not path.is_file():
            return {}
        with open(path, encoding="utf-8") as handle:
            return {
                number: RequestLine.from_dict(json.loads(line))
                for number, line in enumerate(handle)
                if (lines is None or number in lines) and line.strip()
            }

    def _request_texts(self, short: str, lines: Set[int]) -> Dict[int, Tuple[str, str]]:
        """(answer, reasoning) of the relay's records on those lines of <short>/requests.jsonl; a reasoning
        the record left in the run's own request cache (cache_key) is read from there."""
        found: Dict[int, Tuple[str, str]] = {}
        if not lines:
            return found
        cache = None
        try:
            for number, record in self.read_requests(short, lines).items():
                reasoning = record.reasoning or ""
                if record.cache_key and record.reasoning is None:
                    if cache is None and self.cache_file.is_file():
                        cache = RequestCache(self.cache_file)
                    stored = cache.lookup(record.cache_key) if cache is not None else None
                    reasoning = reasoning_of(stored) if stored else "[not found in the run's request cache]"
                found[number] = (record.answer or "", reasoning)
        finally:
            if cache is not None:
                cache.close()
        return found


@dataclass(frozen=True)
class SweepFolder:
    """A sweep's folder (outputs/sweeps/<time>/): its summary documents; each job is a RunFolder below it."""

    root: Path

    results_file = property(lambda self: self.root / names.RESULTS_FILE)
    summary_file = property(lambda self: self.root / names.SUMMARY_FILE)
    report_file = property(lambda self: self.root / names.REPORT_FILE)
    slurm_jobs_file = property(lambda self: self.root / names.SLURM_JOBS_FILE)

    def read_results(self) -> SweepResults:
        return SweepResults.from_dict(read_yaml_if_exists(self.results_file, {}) or {})

    def write_summary(self, results: SweepResults, markdown: str) -> None:
        atomic_write(self.results_file, dump_yaml(results.to_dict()))
        atomic_write(self.summary_file, markdown)
