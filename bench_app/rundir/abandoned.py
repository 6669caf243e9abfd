"""Runs whose runner died without finalising (SIGKILL, OOM, power): found at the next start and marked
`abandoned`, so that no run folder says `running` forever."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import List

from bench_app.common.files import now_iso
from bench_app.common.processes import process_alive
from bench_app.records.folder import RunFolder


def mark_abandoned(folder: RunFolder) -> bool:
    """Mark a run folder whose runner died `abandoned`, with the time found. Only runs of this host are
    judged; True when the folder was changed."""
    metadata = folder.read_metadata_if_running()
    if metadata is None:
        return False
    run = metadata.run
    if run.status != "running" or run.host != socket.gethostname() or not run.pid:
        return False
    if process_alive(int(run.pid), run.pid_start):
        return False
    run.status, run.abandoned_found = "abandoned", now_iso()
    folder.write_metadata(metadata)
    return True


def mark_abandoned_runs(outputs_dir: Path) -> List[Path]:
    """Check every run folder under outputs/ (single runs and sweep jobs); return those just marked."""
    patterns = ("*/configs/metadata.yaml", "sweeps/*/*/configs/metadata.yaml")
    files = [f for pattern in patterns for f in outputs_dir.glob(pattern)] if outputs_dir.is_dir() else []
    folders = [RunFolder(f.parent.parent) for f in files]
    return [folder.root for folder in folders if mark_abandoned(folder)]
