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
from typing import Dict, Optional, Sequence, Tuple

from pydantic import ValidationError

from bench_app.common.errors import UserError
from bench_app.common.files import read_yaml
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.records.reference import ParityReference

REFERENCE_DIR = PROJECT_ROOT / "conf" / "reference"


def reference_files(extra: Sequence[Path] = ()) -> Dict[str, Path]:
    found: Dict[str, Path] = {}
    for folder in [REFERENCE_DIR, *extra]:
        for path in sorted(Path(folder).glob("*.yaml")):
            found[path.stem] = path
    return found


def _read(path: Path) -> ParityReference:
    try:
        return ParityReference.from_dict(read_yaml(path))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UserError(f"reference {path}: {where}: {first['msg']} (got {first.get('input')!r})") from None


def load_reference(
    name: Optional[str], model_names: Sequence[Optional[str]], extra: Sequence[Path] = ()
) -> Tuple[str, ParityReference]:
    files = reference_files(extra)
    if name:
        if name not in files:
            raise UserError(f"no reference {name!r}; known: {', '.join(sorted(files)) or 'none'}")
        return name, _read(files[name])
    best: Tuple[int, str, ParityReference] = (0, "", ParityReference())
    for stem, path in files.items():
        reference = _read(path)
        length = reference.match_length(model_names)
        if length > best[0]:
            best = (length, stem, reference)
    if best[0]:
        return best[1], best[2]
    raise UserError(
        f"no reference matches the run's model ({', '.join(str(m) for m in model_names if m)}); name one "
        f"with --reference ({', '.join(sorted(files)) or 'none known'}), or save one with --save-reference"
    )
