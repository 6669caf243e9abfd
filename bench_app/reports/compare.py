"""`bench-app compare <runA> <runB>`: what differs between two runs, grouped and readable.

Sections: config snapshot, per-dataset effective configs, environment (versions, git, accelerator),
scores (with deltas), and, for datasets whose answers flipped, the paired comparison of their samples
(bench_app.reports.paired: flips each way and the exact McNemar test).
Two per_dataset/*.yaml files can be compared the same way.
Exit 0 when identical, 1 when different, 2 on bad input. Names and timestamps are not differences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Tuple

from bench_app.common.errors import UserError
from bench_app.common.files import read_yaml
from bench_app.records.documents import PerDataset, RunMetadata, RunResults
from bench_app.records.folder import RunFolder
from bench_app.reports.paired import pair_runs

_IGNORED = {"benchmark.name", "benchmark.timestamp", "frozen_from"}
_UNSET = object()


class BadInput(Exception):
    pass


def flatten(data: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(data, dict):
        flat: Dict[str, Any] = {}
        for key, value in data.items():
            flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat or {prefix: {}}
    return {prefix: data}


def diff_mappings(a: Dict[str, Any], b: Dict[str, Any], ignored=frozenset()) -> List[Tuple[str, Any, Any]]:
    fa, fb = flatten(a), flatten(b)
    return [
        (k, fa.get(k, _UNSET), fb.get(k, _UNSET))
        for k in sorted(set(fa) | set(fb))
        if k not in ignored and fa.get(k, _UNSET) != fb.get(k, _UNSET)
    ]


def show_value(value: Any) -> str:
    return "(absent)" if value is _UNSET else repr(value)


def _load_run(path: Path) -> Dict[str, Any]:
    folder = RunFolder(path)
    if not folder.is_run_folder():
        raise BadInput(f"{path} is not a bench_app run folder (no configs/config_snapshot.yaml)")
    try:
        results = folder.read_results()
    except UserError as error:
        raise BadInput(str(error)) from None
    return {
        "snapshot": folder.read_snapshot(),
        "per_dataset": folder.read_per_dataset(),
        "metadata": folder.read_metadata(),
        "results": results,
    }


def _effective(document: PerDataset) -> Dict[str, Any]:
    """The configuration part of a per_dataset file (without what happened at run time)."""
    return {k: v for k, v in document.to_dict().items() if k not in ("server", "result")}


def _environment(metadata: RunMetadata) -> Dict[str, Any]:
    return {
        "versions": metadata.versions,
        "git": {k: v for k, v in metadata.git.to_dict().items() if k != "diff_file"},
        "accelerator": metadata.accelerator,
    }


def _scores(results: RunResults) -> Dict[str, Dict[str, Any]]:
    scores = {}
    for short, entry in results.datasets.items():
        metrics = {k: v for k, v in entry.metrics.items() if isinstance(v, (int, float))}
        scores[short] = {"status": entry.status, **metrics}
    return scores


def compare_runs(a: Path, b: Path) -> List[str]:
    run_a, run_b = _load_run(a), _load_run(b)
    lines: List[str] = []

    def section(title: str, rows: List[Tuple[str, Any, Any]]) -> None:
        if rows:
            lines.append(f"== {title} ({len(rows)})")
            lines.extend(f"  {key}: {show_value(x)} -> {show_value(y)}" for key, x, y in rows)

    section("config snapshot", diff_mappings(run_a["snapshot"], run_b["snapshot"], _IGNORED))
    for short in sorted(set(run_a["per_dataset"]) | set(run_b["per_dataset"])):
        x, y = run_a["per_dataset"].get(short), run_b["per_dataset"].get(short)
        if x is None or y is None:
            lines.append(f"== per_dataset/{short}.yaml only in {'B' if x is None else 'A'}")
            continue
        section(f"per_dataset/{short}.yaml", diff_mappings(_effective(x), _effective(y)))
    section("environment", diff_mappings(_environment(run_a["metadata"]), _environment(run_b["metadata"])))
    scores_a, scores_b = _scores(run_a["results"]), _scores(run_b["results"])
    score_rows = []
    for short in sorted(set(scores_a) | set(scores_b)):
        x, y = scores_a.get(short, {}), scores_b.get(short, {})
        for metric in sorted(set(x) | set(y)):
            va, vb = x.get(metric, _UNSET), y.get(metric, _UNSET)
            if va != vb:
                delta = (
                    f"  (delta {vb - va:+.2f})" if all(isinstance(v, (int, float)) for v in (va, vb)) else ""
                )
                score_rows.append(f"  {short}.{metric}: {show_value(va)} -> {show_value(vb)}{delta}")
    if score_rows:
        lines.append(f"== scores ({len(score_rows)})")
        lines.extend(score_rows)
    shared = sorted(set(run_a["per_dataset"]) & set(run_b["per_dataset"]))
    flipped = {short: p for short, p in pair_runs(a, b, shared).items() if p.flips}
    if flipped:
        lines.append(f"== paired samples ({len(flipped)} dataset(s) with flipped answers)")
        for short, paired in flipped.items():
            lines.append(f"  {short}: {paired.summary()}")
            for label, keys in (
                ("right->wrong", paired.right_to_wrong),
                ("wrong->right", paired.wrong_to_right),
            ):
                if keys:
                    shown = ", ".join(f"{subset}#{sample_id}" for subset, sample_id in keys[:20])
                    lines.append(f"    {label}: {shown}{' ...' if len(keys) > 20 else ''}")
    return lines


def compare_files(a: Path, b: Path) -> List[str]:
    x, y = read_yaml(a), read_yaml(b)
    if not isinstance(x, dict) or not isinstance(y, dict):
        raise BadInput("both files must hold YAML mappings (per_dataset/*.yaml)")
    rows = diff_mappings(_effective(PerDataset.from_dict(x)), _effective(PerDataset.from_dict(y)))
    return (
        [f"== {a.name} vs {b.name} ({len(rows)})"]
        + [f"  {k}: {show_value(p)} -> {show_value(q)}" for k, p, q in rows]
        if rows
        else []
    )


def write_html(a: Path, b: Path, lines: List[str], out: Path) -> Path:
    """The comparison page of two run folders (the text of compare_runs, scores, flipped samples)."""
    from bench_app.reports.html import write_compare_report

    shared = sorted(set(_load_run(a)["per_dataset"]) & set(_load_run(b)["per_dataset"]))
    return write_compare_report(a, b, lines, pair_runs(a, b, shared), out)
