"""`bench-app datasets check|list|fetch [OVERRIDES]`: the data files of the datasets a run with these
overrides would evaluate (the same composition as the run), before the first GPU hour.

    check   each dataset's data path, present or missing, files, bytes, content sha256; the hash of the first
            check is remembered (.cache/datasets/checked.json) and a later change is reported. Exit 1 when
            any is missing, incomplete or changed.
    list    each dataset's data path and where `fetch` gets it.
    fetch   the missing ones: download (resumed), verify, unpack atomically into the datasets root;
            --from DIR takes archives copied there by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List, Optional

from bench_app.cli.parsing import Parser
from bench_app.common.errors import UserError
from bench_app.common.files import atomic_write
from bench_app.config.components import instantiate_component
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.evaluators import Evaluator
from bench_app.evaluators.aisbench import datafiles, fetch
from bench_app.evaluators.aisbench.task import evaluator_python
from bench_app.evaluators.data import measure_path
from bench_app.run.plan import evaluator_settings

CHECKED = PROJECT_ROOT / ".cache" / "datasets" / "checked.json"


def datasets_args(parser: Parser) -> None:
    parser.add_argument("action", choices=["check", "list", "fetch"], help="what to do")
    parser.add_argument(
        "overrides", nargs="*", help="the run's overrides, e.g. model=qwen3_30b 'dataset=[ceval,gsm8k]'"
    )
    parser.add_argument("--from", dest="from_dir", help="fetch: a folder holding archives copied by hand")
    parser.add_argument("--sources", help="fetch/list: a sources table of your own (e.g. an internal mirror)")


def compose(overrides: List[str]):
    """The run's configuration for these overrides, as `bench-app OVERRIDES` would compose it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from bench_app.cli.main import CONF_DIR
    from bench_app.config.resolve import resolve_with_document
    from bench_app.evaluators.aisbench import catalog

    catalog.register_for(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
            # the hydra node once, for ${hydra:...} (the run's name uses the model's choice)
            HydraConfig.instance().set_config(hydra_compose("config", overrides, return_hydra_config=True))
            return resolve_with_document(hydra_compose("config", overrides=overrides))[0]
    except (HydraException, OmegaConfBaseException) as error:
        raise UserError(
            f"cannot compose the run for {' '.join(overrides) or 'the defaults'}: {error}"
        ) from None


def _remembered() -> Dict[str, str]:
    try:
        return json.loads(CHECKED.read_text())
    except (OSError, ValueError):
        return {}


def datasets(args: argparse.Namespace) -> int:
    config = compose(list(args.overrides))
    evaluator = instantiate_component(config.evaluator, Evaluator, "evaluator")
    sources = fetch.load_sources(Path(args.sources) if args.sources else None)
    remembered, bad = _remembered(), 0
    for short, dataset in config.datasets.items():
        name = dataset.name or Path(dataset.config_file or short).stem
        found = evaluator.data_files(name, evaluator_settings(config, dataset))
        if found is None:
            print(f"{short}: {name} reads no data files bench_app can check (its config names no path)")
            continue
        source = fetch.source_for(found.declared, sources) if not found.declared.startswith("/") else None
        if args.action == "list":
            where = "no known source (copy it by hand)"
            if source is not None:
                where = source.url or f"by hand: {source.manual}"
            print(f"{short}: {name}\n  reads {found.path}\n  from  {where}")
            continue
        if args.action == "fetch" and not found.complete:
            found = _fetch(short, found, source, evaluator, args)
        bad += _report(short, found, remembered)
    if args.action != "list":
        CHECKED.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(CHECKED, json.dumps(remembered, indent=1))
    return 1 if bad else 0


def _fetch(short, found, source, evaluator, args):
    if source is None:
        raise UserError(
            f"{short}: no source is known for {found.declared} (bench_app's table: {fetch.SOURCES}). Copy "
            f"the data by hand so that {found.path} exists, or give a table of your own with --sources FILE."
        )
    env = Path(evaluator_python(evaluator.command)).parent.parent
    base = datafiles.datasets_base(getattr(evaluator, "datasets_root", None), env)
    print(f"{short}: fetching {source.url or source.key} into {base / source.key}")
    progress = _progress_bar(source.archive_name)
    try:
        digest = fetch.fetch(
            source, base, Path(args.from_dir) if args.from_dir else None, on_progress=progress
        )
    finally:
        progress(None, None)
    pinned = "checked against the table" if source.sha256 else "not in the table: pin it in sources.yaml"
    print(f"  archive sha256 {digest} ({pinned})")
    return measure_path(Path(found.path), found.declared, found.source)  # what is there now


def _report(short: str, found, remembered: Dict[str, str]) -> int:
    problem = found.problem()
    if problem:
        print(f"{short}: MISSING {problem}\n  get it: bench-app datasets fetch dataset={short}")
        return 1
    first = remembered.setdefault(found.path, found.sha256)
    changed = first != found.sha256
    size = f"{found.files} file(s), {found.bytes:,} bytes"
    print(f"{short}: ok {found.path} ({size}) sha256 {found.sha256[:16]}")
    if changed:
        print(
            f"  CHANGED since it was first checked (sha256 {first[:16]} then); re-run what used the old data"
        )
    return 1 if changed else 0


def _progress_bar(label: str):
    """A rich progress bar for a download; called with (None, None) at the end."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar: Optional[Progress] = None
    task = None

    def update(done, total):
        nonlocal bar, task
        if done is None:
            if bar is not None:
                bar.stop()
            return
        if bar is None:
            bar = Progress("  " + label, BarColumn(), DownloadColumn(), TransferSpeedColumn())
            bar.start()
            task = bar.add_task("download", total=total)
        bar.update(task, completed=done, total=total)

    return update
