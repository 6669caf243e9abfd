"""`bench-app datasets check|list|fetch [OVERRIDES]`: the data files of the datasets a run with these
overrides would evaluate (the same composition as the run), before the first GPU hour.

    check   each dataset's data path, present or missing, files, bytes, content sha256; the hash of the first
            check is remembered (.cache/datasets/checked.json) and a later change is reported; data that
            `fetch` unpacked is checked again against the md5/sha256 its table pins now. Exit 1 when any is
            missing, incomplete, changed or no longer matches a pinned value.
    list    each dataset's data path and the hosts `fetch` gets it from, with what each pins.
    fetch   the missing ones: download (resumed; the next host when one fails), verify md5/sha256/size, unpack
            atomically into the datasets root; --from DIR takes archives copied there by hand; --pin writes
            what was fetched into the --sources table (created from bench_app's when missing).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_app.cli.parsing import Parser
from bench_app.common.errors import UserError
from bench_app.common.files import atomic_write
from bench_app.config.components import instantiate_component
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.evaluators import Evaluator
from bench_app.evaluators.aisbench import datafiles, fetch
from bench_app.evaluators.aisbench.task import evaluator_python
from bench_app.evaluators.data import measure_path
from bench_app.run.planning.plan import evaluator_settings

CHECKED = PROJECT_ROOT / ".cache" / "datasets" / "checked.json"
FETCHED = PROJECT_ROOT / ".cache" / "datasets" / "fetched.json"  # data path -> the archive it came from


def datasets_args(parser: Parser) -> None:
    parser.add_argument("action", choices=["check", "list", "fetch"], help="what to do")
    parser.add_argument(
        "overrides", nargs="*", help="the run's overrides, e.g. model=qwen3_30b 'dataset=[ceval,gsm8k]'"
    )
    parser.add_argument("--from", dest="from_dir", help="fetch: a folder holding archives copied by hand")
    parser.add_argument("--sources", help="fetch/list: a sources table of your own (e.g. an internal mirror)")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="fetch: write the fetched archive's size, md5 and sha256 into the --sources table",
    )


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


def _read_json(path: Path) -> Dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def datasets(args: argparse.Namespace) -> int:
    if args.pin and not (args.action == "fetch" and args.sources):
        raise UserError(
            "--pin writes what `fetch` got into your sources table: give it with --sources FILE (created "
            f"from bench_app's table, {fetch.SOURCES}, when it does not exist yet)"
        )
    config = compose(list(args.overrides))
    evaluator = instantiate_component(config.evaluator, Evaluator, "evaluator")
    table = Path(args.sources) if args.sources else None
    # --pin into a table not written yet starts from bench_app's; any other table named must exist
    sources = fetch.load_sources(table if table is not None and (table.exists() or not args.pin) else None)
    remembered, fetched_before, bad = _read_json(CHECKED), _read_json(FETCHED), 0
    for short, dataset in config.datasets.items():
        name = dataset.name or Path(dataset.config_file or short).stem
        found = evaluator.data_files(name, evaluator_settings(config, dataset))
        if found is None:
            print(f"{short}: {name} reads no data files bench_app can check (its config names no path)")
            continue
        source = fetch.source_for(found.declared, sources) if not found.declared.startswith("/") else None
        if args.action == "list":
            _list(short, name, found, source)
            continue
        if args.action == "fetch" and not found.complete:
            found = _fetch(short, found, source, evaluator, args, fetched_before)
        bad += _report(short, found, remembered)
        bad += _provenance(found, fetched_before, source)
    if args.action != "list":
        CHECKED.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(CHECKED, json.dumps(remembered, indent=1))
        atomic_write(FETCHED, json.dumps(fetched_before, indent=1))
    return 1 if bad else 0


def _list(short, name, found, source) -> None:
    print(f"{short}: {name}\n  reads {found.path}")
    if source is None:
        print("  from  no known source (copy it by hand)")
    elif source.manual:
        print(f"  from  by hand: {source.manual}")
    for archive in source.archives if source else []:
        pinned = ", ".join(f"{k} {v}" for k, v in archive.pinned().items()) or "no pinned checksum"
        unconfirmed = [k for k in archive.unconfirmed if k != "source"]
        if unconfirmed:
            pinned += f"; unconfirmed {', '.join(unconfirmed)}"
        print(f"  from  {archive.url} ({pinned})")


def _fetch(short, found, source, evaluator, args, fetched_before):
    if source is None:
        raise UserError(
            f"{short}: no source is known for {found.declared} (bench_app's table: {fetch.SOURCES}). Copy "
            f"the data by hand so that {found.path} exists, or give a table of your own with --sources FILE."
        )
    env = Path(evaluator_python(evaluator.command)).parent.parent
    base = datafiles.datasets_base(getattr(evaluator, "datasets_root", None), env)
    print(f"{short}: fetching {source.url or source.key} into {base / source.key}")
    progress = _progress_bar(source.archives[0].name if source.archives else source.key)
    try:
        got = fetch.fetch(
            source,
            base,
            Path(args.from_dir) if args.from_dir else None,
            on_progress=progress,
            on_host_failed=lambda message: print(f"  {message}"),
        )
    finally:
        progress(None, None)
    print(f"  {got.archive.name}: md5 {got.md5}, sha256 {got.sha256}, {got.size:,} bytes ({got.summary()})")
    now = measure_path(Path(found.path), found.declared, found.source)  # what is there now
    fetched_before[now.path] = {
        "url": got.archive.url,
        "size": got.size,
        "md5": got.md5,
        "sha256": got.sha256,
        "checked": got.checked,
        "warnings": got.warnings,
        "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if args.pin:
        changed = fetch.pin(Path(args.sources), got, source.key)
        print(f"  pinned in {args.sources}: {', '.join(changed) or 'already pinned'}")
    return now


def _provenance(found, fetched_before: Dict[str, Any], source) -> int:
    """The archive the data was unpacked from, against what the table pins now (1: no longer matches)."""
    got = fetched_before.get(found.path)
    if not got or found.problem():
        return 0
    archive = next((a for a in (source.archives if source else []) if a.url == got["url"]), None)
    differ, matched = fetch.against_pins(archive, got) if archive else ([], [])
    said = f"  fetched from {got['url']}: md5 {got['md5']}"
    if differ:
        print(
            said
            + "; DOES NOT MATCH the table: "
            + "; ".join(f"{k} {a}, pinned now {v}" for k, a, v in differ)
        )
        return 1
    print(
        said + (f" ({' and '.join(matched)} match the pinned value)" if matched else " (no pinned checksum)")
    )
    return 0


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
