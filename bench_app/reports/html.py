"""One self-contained HTML report per run: `outputs/<run>/report.html`.

Built only from what the run folder holds (results.yaml, configs/, <dataset>/samples.jsonl), so it is
written at the end of every run and again on demand (`bench-app report <run>`). Charts are
Plotly's (its JavaScript inlined: the file opens from disk with no network); the page's own script
(assets/report.js) draws them and the sample browser from the run's data, embedded as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from bench_app.common.errors import UserError
from bench_app.common.files import atomic_write
from bench_app.records.base import Record
from bench_app.records.documents import DatasetEntry, PerDataset, ServerEntry
from bench_app.records.folder import RunFolder

ASSETS = Path(__file__).with_name("assets")
# Longer texts (long-context prompts, reasoning) are cut in the page, head and tail kept; the run folder has
# them whole. The page embeds every sample, so the limit shrinks with their number: all texts together stay
# near TEXT_BUDGET characters and a 14,000-sample run opens as fast as a small one.
TEXT_LIMIT = 4000
TEXT_FLOOR = 300
TEXT_BUDGET = 6_000_000


def text_limit(samples: int) -> int:
    """Characters kept of each text (a prompt and an output per sample) for a page of that many samples."""
    return max(TEXT_FLOOR, min(TEXT_LIMIT, TEXT_BUDGET // max(1, 2 * samples)))


def clip(text: Any, limit: int = TEXT_LIMIT) -> Any:
    if not isinstance(text, str) or len(text) <= limit:
        return text
    half = limit // 2
    left_out = f"[... {len(text) - limit} characters left out: see samples.jsonl / requests.jsonl ...]"
    return f"{text[:half]}\n{left_out}\n{text[-half:]}"


def numbers(metrics: Dict[str, Any]) -> Dict[str, float]:
    return {
        k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _samples(run_dir: Path, short: str, limit: int = TEXT_LIMIT) -> List[Dict[str, Any]]:
    def shorten(text: Any) -> Any:
        return clip(text, limit)

    return [
        {
            "d": short,
            "s": r.subset,
            "i": r.id,
            "p": shorten(r.prompt),
            "o": r.output,  # already shortened as it was put together
            "x": shorten(r.prediction),
            "g": shorten(r.gold),
            "c": r.correct,
            "pt": r.prompt_tokens,
            "ot": r.output_tokens,
            "f": r.finish_reason,
            "e": r.error,
            # a reasoning model's answer (recorded as the server gave it): thinking tokens, cut in it
            "rt": r.reasoning_tokens,
            "cut": r.cut_in_thinking,
            # perf mode: the request's own timing (ms)
            **{
                k: v
                for k, v in (("ttft_ms", r.ttft_ms), ("tpot_ms", r.tpot_ms), ("e2el_ms", r.e2el_ms))
                if v is not None
            },
        }
        for r in RunFolder(run_dir).read_samples(short, texts=True, shorten=shorten) or []
    ]


def _engine_table(per_dataset: PerDataset) -> Dict[str, Any]:
    """The effective engine arguments of a dataset, flat, and which of them its override set."""
    engine = {k: v for k, v in per_dataset.vllm.items() if v not in (None, {}, [])}
    override = per_dataset.vllm_config_override_applied or {}
    return {
        "args": {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in engine.items()},
        "override": sorted(override),
    }


def _plain(summary: Optional[Record]) -> Dict[str, Any]:
    """A result's summary as the page's script reads it ({}: none)."""
    return summary.to_dict() if summary is not None else {}


def report_data(run_dir: Path) -> Dict[str, Any]:
    folder = RunFolder(run_dir)
    results = folder.read_results()
    metadata = folder.read_metadata()
    per_dataset = folder.read_per_dataset()
    by_group = {s.group: s for s in results.servers}
    datasets, samples = [], []
    # a run that wrote no results.yaml yet: its planned datasets
    entries = results.datasets or {short: DatasetEntry() for short in per_dataset}
    limit = text_limit(sum(int(e.samples or 0) for e in entries.values()))
    for short, entry in entries.items():
        document = per_dataset.get(short, PerDataset())
        subsets = {
            name: next(iter(numbers(values).values()), None)
            for name, values in (entry.metrics.get("subsets") or {}).items()
        }
        group = entry.group if entry.group is not None else document.engine.group
        server = by_group.get(group, ServerEntry())
        shown = ("port", "max_model_len", "version", "served_model", "ready_after_s", "error")
        datasets.append(
            {
                "short": short,
                "name": entry.name or document.dataset.name,
                "status": entry.status or "not run",
                "group": group,
                "metrics": numbers(entry.metrics),
                "subsets": subsets,
                "reason": entry.reason,
                "log_tail": clip(entry.log_tail),
                "evaluation_started_at": entry.evaluation_started_at,
                "evaluation_s": entry.evaluation_s,
                "samples": entry.samples,
                "prompts": _plain(entry.prompts),
                "samples_error": entry.samples_error,
                "reasoning": _plain(entry.reasoning),
                "answers": _plain(entry.answers),
                "cut_in_thinking_policy": document.aisbench.cut_in_thinking or "no_answer",
                "finished_requests": entry.finished_requests,
                "replicas": [
                    r.to_dict() for r in entry.replicas or []
                ],  # execution.replicas > 1: each replica's share
                "probe": entry.probe.to_dict()
                if entry.probe
                else None,  # a seeded sample: size, seed, interval
                # execution.decide: the stage it stopped at, never a full score
                "decided": _plain(entry.decided),
                "repeats": _plain(entry.repeats),  # repeats in one run: each score, their interval, maj@k
                "engine": _engine_table(document),
                "server": {k: getattr(server, k) for k in shown if getattr(server, k) is not None},
            }
        )
        samples.extend(_samples(run_dir, short, limit))
    timeline = (
        "group",
        "started_at",
        "ready_after_s",
        "stopped_at",
        "error",
        "restarts",
        "external",
        "replicas",
    )
    return {
        "run": {
            "name": run_dir.name,
            "status": results.status or metadata.run.status or "unknown",
            "wall_time_s": results.wall_time_s,
            "started": metadata.runtime.timestamp,
            "host": metadata.runtime.hostname,
            "git": metadata.git.to_dict(),
            "versions": {k: v for k, v in metadata.versions.items() if not isinstance(v, dict)},
        },
        "datasets": datasets,
        "servers": [{k: v for k, v in s.to_dict().items() if k in timeline} for s in results.servers],
        "samples": samples,
        "text_limit": limit,
        "load": results.load_sweep.to_dict() if results.load_sweep else None,  # execution.load_levels
        "parity": _parity(run_dir),  # against the reference matching the model, when one does
    }


def _parity(run_dir: Path) -> Optional[Dict[str, Any]]:
    from bench_app.reports.parity import parity

    try:
        return parity(run_dir).to_dict()
    except (UserError, OSError, ValueError):  # no reference for this model: no section
        return None


def render(data: Dict[str, Any], title: str) -> str:
    from plotly.offline import get_plotlyjs  # the pinned plotly package ships its JavaScript

    # JSON inside <script>: "</" must not close the tag early.
    payload = json.dumps(data, ensure_ascii=False, default=str).replace("</", "<\\/")
    page = (ASSETS / "report.html").read_text(encoding="utf-8")
    replacements = {
        "{{TITLE}}": title.replace("&", "&amp;").replace("<", "&lt;"),
        "{{CSS}}": (ASSETS / "report.css").read_text(encoding="utf-8"),
        "{{PLOTLY}}": get_plotlyjs(),
        "{{DATA}}": payload,
        "{{APP}}": (ASSETS / "report.js").read_text(encoding="utf-8"),
    }
    for marker, text in replacements.items():
        head, _, rest = page.partition(marker)
        page = head + text + rest
    return page


def compare_report_data(a: Path, b: Path, lines: List[str], paired: Dict[str, Any]) -> Dict[str, Any]:
    """Two runs: what `bench-app compare` printed, score deltas, and the flipped samples side by side."""
    scores = []
    results_a, results_b = (report_data(a)["datasets"], report_data(b)["datasets"])
    by_short_b = {d["short"]: d for d in results_b}
    for x in results_a:
        y = by_short_b.get(x["short"])
        if y is None:
            continue
        for metric in sorted(set(x["metrics"]) | set(y["metrics"])):
            va, vb = x["metrics"].get(metric), y["metrics"].get(metric)
            delta = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
            scores.append({"dataset": x["short"], "metric": metric, "a": va, "b": vb, "delta": delta})
    flips = []
    for short, result in paired.items():
        samples_a = {(r["s"], r["i"]): r for r in _samples(a, short)}
        samples_b = {(r["s"], r["i"]): r for r in _samples(b, short)}
        for direction, keys in (
            ("right->wrong", result.right_to_wrong),
            ("wrong->right", result.wrong_to_right),
        ):
            for key in keys:
                flips.append({"direction": direction, "a": samples_a.get(key), "b": samples_b.get(key)})
    return {
        "kind": "compare",
        "a": str(a),
        "b": str(b),
        "lines": lines,
        "scores": scores,
        "paired": [
            {
                "dataset": short,
                "paired": r.paired,
                "right_to_wrong": len(r.right_to_wrong),
                "wrong_to_right": len(r.wrong_to_right),
                "p_value": r.p_value,
                "verdict": r.verdict(),
            }
            for short, r in paired.items()
        ],
        "flips": flips,
    }


def write_compare_report(a: Path, b: Path, lines: List[str], paired: Dict[str, Any], out: Path) -> Path:
    data = compare_report_data(a, b, lines, paired)
    atomic_write(out, render(data, f"bench_app compare {a.name} vs {b.name}"), mode=0o644)
    return out


def write_run_report(run_dir: Path, out: Optional[Path] = None) -> Path:
    out = out or RunFolder(run_dir).report_file
    atomic_write(out, render(report_data(run_dir), f"bench_app run {run_dir.name}"), mode=0o644)
    return out
