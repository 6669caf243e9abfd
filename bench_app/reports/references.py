"""Reference results: published (or saved) scores of a model, one YAML file each (conf/reference/<name>.yaml
and any folder given with --reference-dir), and how a run finds the one for its model.

A reference names the model it is for (`matches`, strings of the model path or served name; the longest such
pattern wins, so a base model takes its own reference rather than its chat model's, and `excludes` rules a
model out), its `source`, whether its figures were checked there (`verified`, for the file or per figure),
and per dataset and mode (`thinking`, `non_thinking`, or `any` for a model without modes) the figure with its
settings and `where` the source gives it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

from bench_app.common.errors import UserError
from bench_app.common.files import read_yaml
from bench_app.config.resolvers import PROJECT_ROOT

REFERENCE_DIR = PROJECT_ROOT / "conf" / "reference"


def reference_files(extra: Sequence[Path] = ()) -> Dict[str, Path]:
    found: Dict[str, Path] = {}
    for folder in [REFERENCE_DIR, *extra]:
        for path in sorted(Path(folder).glob("*.yaml")):
            found[path.stem] = path
    return found


def _match_length(document: Dict, model_names: Sequence[str]) -> int:
    """How specifically a reference matches the run's model: its longest pattern found (0: none), so that
    Qwen3-30B-A3B-Base takes the base model's reference, not the chat model's it also contains."""
    names = [str(model).lower() for model in model_names if model]
    if any(str(x).lower() in name for x in document.get("excludes") or [] for name in names):
        return 0
    return max(
        (
            len(p)
            for p in (str(m).lower() for m in document.get("matches") or [])
            if any(p in name for name in names)
        ),
        default=0,
    )


def load_reference(
    name: Optional[str], model_names: Sequence[str], extra: Sequence[Path] = ()
) -> Tuple[str, Dict]:
    files = reference_files(extra)
    if name:
        if name not in files:
            raise UserError(f"no reference {name!r}; known: {', '.join(sorted(files)) or 'none'}")
        return name, read_yaml(files[name]) or {}
    best: Tuple[int, str, Dict] = (0, "", {})
    for stem, path in files.items():
        document = read_yaml(path) or {}
        length = _match_length(document, model_names)
        if length > best[0]:
            best = (length, stem, document)
    if best[0]:
        return best[1], best[2]
    raise UserError(
        f"no reference matches the run's model ({', '.join(str(m) for m in model_names if m)}); name one "
        f"with --reference ({', '.join(sorted(files)) or 'none known'}), or save one with --save-reference"
    )


def published_figure(document: Dict, dataset: str, mode: str) -> Optional[Dict]:
    """The reference's figure for a dataset in a mode (`any`: a model without modes, e.g. a base model)."""
    figures = (document.get("datasets") or {}).get(dataset) or {}
    return figures.get(mode) or figures.get("any")


def figure_verified(document: Dict, published: Dict) -> bool:
    """A figure is checked against its source when it says so, else when its whole reference does."""
    return bool(published.get("verified", document.get("verified")))


def reference_samples(published: Dict[str, Any]) -> Optional[int]:
    """Answers the published figure averages (questions x repeats), where the reference says."""
    questions = published.get("questions")
    return int(questions) * int(published.get("repeats") or 1) if questions else None
