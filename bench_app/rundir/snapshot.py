"""The configuration snapshot: outputs/<run>/configs/ in the layout of the original document.

    config_original.yaml   what the user asked for (primary config, group choices with paths, CLI overrides)
    config_snapshot.yaml   fully expanded and resolved; replayable by reproduce.sh --frozen
    metadata.yaml          runtime, versions, command, git, accelerator, environment, status
    reproduce.sh           re-runs the experiment into a new run folder
    per_dataset/<short>.yaml  effective per-dataset config (+ engine argv, read-back values, result)

Written before any server starts, by one path for a dry run and a real one, and finalised at the end (also
on failure or Ctrl-C). Every file is written atomically through RunFolder and scrubbed of secrets.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_app.common.files import atomic_write, copy_with_siblings, now_iso
from bench_app.common.processes import process_start_time
from bench_app.common.redact import secret_values
from bench_app.records.documents import DatasetEntry, GitState, RunMetadata, RunState, ServerEntry
from bench_app.records.folder import RunFolder
from bench_app.run.planning import slurm
from bench_app.run.planning.plan import RunPlan, config_fingerprint
from bench_app.rundir import metadata as meta
from bench_app.rundir.documents import CONFIG_COPIES, per_dataset_document, snapshot_document
from bench_app.rundir.reproduce import reproduce_script
from bench_app.rundir.sources import HydraInfo, original_document
from bench_app.rundir.user_code import keep_overrides, keep_python_path


class Snapshot:
    """Writes and finalises outputs/<run>/configs/."""

    def __init__(
        self, run_dir: Path, resolved: Dict[str, Any], plan: RunPlan, info: HydraInfo, argv: List[str]
    ):
        self.run_dir = run_dir
        self.folder = RunFolder(run_dir)
        self.resolved = resolved
        self.plan = plan
        self.info = info
        self.argv = argv
        self.started = resolved["benchmark"]["timestamp"] or now_iso()
        self.secrets = secret_values(os.environ, resolved)
        self.metadata = RunMetadata()

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
            return ["python -m bench_app", *self.info.overrides]
        return self.argv

    def write_initial(self, status: str) -> None:
        """Everything of configs/ before any server starts (status: running, or dry_run)."""
        self.scrub_hydra_output()
        envs = meta.environment_versions(self.plan.engine.command, self.plan.evaluator.command)
        self.metadata = self._metadata(status, envs)
        self.folder.write_original(original_document(self.info, self.resolved), self.secrets)
        self.folder.write_snapshot(snapshot_document(self.resolved, self.plan), self.secrets)
        for dataset in self.plan.datasets:
            if dataset.evaluator.config_file:  # the file and its siblings: what --frozen replays from
                copy_with_siblings(
                    Path(dataset.evaluator.config_file), self.folder.configs / CONFIG_COPIES / dataset.short
                )
            document = per_dataset_document(dataset, self.plan.groups[dataset.group])
            # resume=true: what the earlier run recorded of it stays until this run records anew
            earlier = self.folder.read_per_dataset_file(dataset.short)
            if earlier.server is not None:  # a key is written only once there is something to say
                document.server = earlier.server
            if earlier.result is not None:
                document.result = earlier.result
            self.folder.write_per_dataset(dataset.short, document, self.secrets)
        for role, packages in envs.items():
            self.folder.write_packages(role, packages)
        if self.metadata.git.dirty:
            self.folder.write_git_diff(meta.git_diff(), self.secrets)
        self.folder.write_metadata(self.metadata, self.secrets)
        self.folder.write_reproduce_script(self._reproduce_script(), self.secrets)

    def _metadata(self, status: str, envs: Dict[str, Dict[str, str]]) -> RunMetadata:
        engine, evaluator, plan = self.plan.engine, self.plan.evaluator, self.plan
        git = GitState.from_dict(meta.git_state())
        git.diff_file = "git_diff.patch" if git.dirty else None
        metadata = RunMetadata(
            runtime=meta.runtime_block(self.started),
            versions=meta.summary_versions(envs, engine.version_packages, evaluator.version_packages),
            command=meta.command_block(self._command_line()),
            git=git,
            accelerator=meta.accelerator_info(),
            environment_variables=meta.relevant_environment(),
            package_lists={"engine": "packages_engine.txt", "evaluator": "packages_evaluator.txt"},
            # Who runs it: the next command tells a dead runner's `running` from a live one's.
            run=RunState(
                status=status,
                started=self.started,
                ended=None,
                pid=os.getpid(),
                pid_start=process_start_time(os.getpid()),
                host=socket.gethostname(),
            ),
            fingerprint=config_fingerprint(plan),
            data={d.short: d.data for d in plan.datasets if d.data is not None},  # the files each read
        )
        if evaluator.python_path:  # the user's own evaluator code, kept with the run (--frozen uses it)
            metadata.python_path = keep_python_path(evaluator.python_path, plan.shadowed, self.folder.configs)
        if evaluator.override_modules:
            metadata.override_modules = keep_overrides(evaluator.override_modules, self.folder.configs)
        if plan.sandbox:  # where the model's code ran (tool, version, limits), or that it ran as is
            metadata.sandbox = plan.sandbox
        if not engine.starts_server:  # evaluated as it runs: a replay needs that server up again
            metadata.external_server = {
                "base_url": getattr(engine, "base_url", None),
                "started_by_bench_app": False,
                "note": "reproduce.sh needs this server running, serving the same model",
            }
        if any(g.replicas > 1 for g in plan.groups):  # execution.replicas, per engine group
            metadata.replicas = {str(g.index): g.replicas for g in plan.groups}
        allocation = slurm.allocation(os.environ)
        if allocation:
            metadata.slurm = allocation
        if self.info.in_sweep:
            metadata.sweep = {
                "dir": str(self.run_dir.parent),
                "job_num": self.info.job_num,
                "job_overrides": list(self.info.overrides),
            }
        rescored = self.folder.read_metadata().rescored
        if rescored:  # resume=true keeps the folder's history
            metadata.rescored = rescored
        return metadata

    def _reproduce_script(self) -> str:
        name = self.resolved["benchmark"]["name"]
        if self.info.in_sweep:  # jobs of a sweep share benchmark.name
            name = f"{name}_job{self.info.job_num}"
        external = None if self.plan.engine.starts_server else getattr(self.plan.engine, "base_url", None)
        return reproduce_script(
            name, self.info.overrides, self.started, self.info.user_config_folders, external
        )

    def record_dataset(
        self, short: str, server: Optional[ServerEntry] = None, result: Optional[DatasetEntry] = None
    ) -> None:
        """Add what happened (its server as started, its result) to per_dataset/<short>.yaml."""
        document = self.folder.read_per_dataset_file(short)
        if server is not None:
            document.server = server
        if result is not None:
            document.result = result
        self.folder.write_per_dataset(short, document, self.secrets)

    def finalize(self, status: str, server_versions: Optional[Dict[str, Any]] = None) -> None:
        self.metadata.run.status, self.metadata.run.ended = status, now_iso()
        if server_versions:
            self.metadata.versions[f"{self.plan.engine.name}_server"] = server_versions
        self.folder.write_metadata(self.metadata, self.secrets)
