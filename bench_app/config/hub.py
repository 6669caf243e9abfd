"""Where a model's files are, offline: a local folder, or a hub id in the local Hugging Face cache.
Nothing is ever downloaded here."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional


def hf_hub_cache() -> Path:
    """The local Hugging Face hub cache, as huggingface_hub finds it (HF_HUB_CACHE, HF_HOME, default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    return Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub"


def model_folder(model_path: str) -> Optional[Path]:
    """The folder holding config.json of a local model or of a cached hub id (`org/name`), else None."""
    local = Path(model_path)
    if (local / "config.json").is_file():
        return local
    if model_path.count("/") != 1 or model_path.startswith(("/", ".")):
        return None
    repo = hf_hub_cache() / ("models--" + model_path.replace("/", "--"))
    ref = repo / "refs" / "main"
    revisions = [ref.read_text().strip()] if ref.is_file() else []
    revisions += sorted(p.name for p in (repo / "snapshots").glob("*") if p.name not in revisions)
    folders = (repo / "snapshots" / revision for revision in revisions)
    return next((folder for folder in folders if (folder / "config.json").is_file()), None)
