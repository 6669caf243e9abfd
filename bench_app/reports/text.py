"""Reports: the dry-run plan, results.yaml, summary.md and the table printed at the end."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

from rich.table import Table
from rich.text import Text

from bench_app.records.documents import (
    Benchmark,
    DatasetEntry,
    Decided,
    LoadSweep,
    ProbeSummary,
    ReasoningSummary,
    RepeatSummary,
    RunResults,
    StageLook,
)
from bench_app.records.folder import RunFolder
from bench_app.reports.load import load_sweep
from bench_app.reports.load import summary_lines as load_summary_lines
from bench_app.run.outcome import RunOutcome
from bench_app.run.planning.load_levels import split_short
from bench_app.run.progress import styled
from bench_app.rundir.index import model_identity

if TYPE_CHECKING:  # the sweep summary uses this module without planning anything
    from bench_app.run.planning.plan import RunPlan


def print_plan(console, plan: RunPlan, run_dir: Path) -> None:
    started = "server start(s)" if plan.engine.starts_server else f"{plan.engine.label}, nothing started"
    groups = f"{len(plan.groups)} engine group(s) = {started}"
    console.print(f"Plan for {run_dir} — {len(plan.datasets)} dataset(s), {groups}")
    print_load_levels(console, plan)

    for group in plan.groups:
        console.print(
            styled(f"\nengine group {group.index}", "bold", f"  datasets: {', '.join(group.datasets)}")
        )
        console.print(f"  engine:    {shlex.join(group.argv)}")
        if group.replicas > 1:
            console.print(
                f"  replicas:  {group.replicas} servers of this engine configuration, each on its own "
                "devices (or CPU slot) and a free port, behind one endpoint (execution.replicas)"
            )
        for problem in group.problems:
            console.print(styled("  warning:", "bold yellow", f" {problem} (a real run refuses to start)"))
        for short in group.datasets:
            dataset = plan.dataset(short)
            preview = plan.evaluator.command_preview(short, dataset.evaluator)
            console.print(f"  evaluator: {short}: {' '.join(preview)}")
    for problem in plan.data_problems:
        console.print(styled("\nrefused:", "bold yellow", f" {problem} (a real run refuses to start)"))
    if plan.evaluator.python_path:
        console.print(f"\nevaluator.python_path: {', '.join(plan.evaluator.python_path)}")
    for module in plan.shadowed:
        file = plan.evaluator.override_modules[module]
        said = f" {module} <- {file} (evaluator.override_modules)"
        console.print(styled("  overrides:", "bold yellow", said))
    console.print(f"\nsnapshot written to {RunFolder(run_dir).configs}; dry run, nothing started.")


def print_sandbox(console, plan: RunPlan) -> None:
    """Where the model's code runs, for the datasets scored by running it (evaluator.sandbox=auto)."""
    if plan.sandbox and plan.sandbox["mode"] == "auto":
        limits = ", ".join(f"{k} {v}" for k, v in plan.sandbox["limits"].items())
        said = f" {', '.join(plan.sandbox['datasets'])}: the model's code runs in {plan.sandbox['version']}"
        console.print(styled("sandbox:", "bold", f"{said} (no network, an unprivileged user; {limits})"))


def print_load_levels(console, plan: RunPlan) -> None:
    """execution.load_levels: the levels and each dataset's (shuffled) order, before anything starts."""
    orders: Dict[str, list] = {}
    for dataset in plan.datasets:
        if dataset.load_level is not None:
            orders.setdefault(split_short(dataset.short)[0], []).append(dataset.load_level)
    if orders:
        levels = sorted({level for order in orders.values() for level in order})
        console.print(
            f"load levels {levels} (requests in flight = the evaluator's batch_size; reference {levels[0]}), "
            "in this order on each dataset's server: "
            + "; ".join(f"{base} {' -> '.join(map(str, order))}" for base, order in orders.items())
        )


def print_budget(console, lines) -> None:
    """The context budget table (prompt tokens after the chat template, against max_model_len)."""
    if lines:
        console.print(
            "\ncontext budget (prompt tokens with the chat template applied; budget = max_model_len):"
        )
        for line in lines:
            console.print(f"  {line}")


def metric_text(metrics: Dict[str, Any]) -> str:
    parts = [
        f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in (metrics or {}).items()
        if not isinstance(v, dict)
    ]
    return ", ".join(parts) or "-"


def reasoning_text(summary: ReasoningSummary) -> str:
    """A reasoning model's answers in one line (bench_app.evaluators.samples.reasoning_summary)."""
    return (
        f"{summary.cut_in_thinking} of {summary.answers} cut in thinking; score all "
        f"{summary.score_all}, finished {summary.score_finished}; reasoning tokens median "
        f"{summary.reasoning_tokens_median}, p95 {summary.reasoning_tokens_p95}"
    )


def thinks(result: DatasetEntry) -> bool:
    """A model that thinks: its answers carry reasoning tokens."""
    return bool(result.reasoning and result.reasoning.reasoning_tokens_median)


def markdown_cell(text: Any) -> str:
    """A value that cannot break a markdown table row."""
    return str(text).replace("|", "/").replace("\n", " ")


def results_document(config, outcome: RunOutcome) -> RunResults:
    return RunResults(
        benchmark=Benchmark(name=config.benchmark.name, timestamp=config.benchmark.timestamp),
        model=model_identity(config.vllm),  # what `bench-app runs` lists without the snapshot
        status=outcome.status,
        wall_time_s=round(outcome.wall_s, 1),
        server_starts=outcome.server_starts,
        datasets=dict(outcome.results),
        servers=list(outcome.servers),
    )


def summary_markdown(config, plan: RunPlan, outcome: RunOutcome) -> str:
    lines = [
        f"# {config.benchmark.name}",
        "",
        f"status: **{outcome.status}** · wall time {outcome.wall_s:.1f} s · server starts: "
        f"{outcome.server_starts}",
        "",
        "| dataset | AISBench config | status | metrics | group | server started | eval s | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for short, r in outcome.results.items():
        reason = markdown_cell(r.reason or "")
        eval_s = f"{r.evaluation_s:.1f}" if r.evaluation_s is not None else "-"
        lines.append(
            f"| {short} | {r.name} | {r.status} | {metric_text(r.metrics)} | {r.group} | "
            f"{r.server_started_at or '-'} | {eval_s} | {reason} |"
        )
    results = outcome.results.items()
    staged = {s: r.decided for s, r in results if r.decided}
    if staged:
        lines += ["", "| dataset | decided (execution.decide) |", "|---|---|"]
        lines += [f"| {s} | {markdown_cell(decided_text(decided))} |" for s, decided in staged.items()]
    repeated = {s: r.repeats for s, r in results if r.repeats}
    if repeated:
        lines += ["", "| dataset | repeats |", "|---|---|"]
        lines += [f"| {s} | {markdown_cell(repeats_text(summary))} |" for s, summary in repeated.items()]
    thinking = {s: r.reasoning for s, r in results if thinks(r)}
    if thinking:
        lines += ["", "| dataset | reasoning |", "|---|---|"]
        lines += [f"| {s} | {markdown_cell(reasoning_text(summary))} |" for s, summary in thinking.items()]
    lines += [
        "",
        f"| group | max_model_len (read back) | port | devices | ready after s | {plan.engine.label} |",
        "|---|---|---|---|---|---|",
    ]
    for s in outcome.servers:
        ready = f"{s.ready_after_s:.1f}" if s.ready_after_s is not None else "-"
        devices = (
            f"{s.visible_devices_env}={','.join(s.devices)}"
            if s.devices
            else (f"CPU slot {s.cpu_slot}" if s.cpu_slot is not None else "-")
        )
        lines.append(
            f"| {s.group} | {s.max_model_len or '-'} | {s.port} | {devices} | {ready} | {s.version or '-'} |"
        )
    return "\n".join(lines) + "\n"


def plan_has_levels(plan: RunPlan) -> bool:
    return any(dataset.load_level is not None for dataset in plan.datasets)


def probe_text(probe: ProbeSummary) -> str:
    interval = probe.ci95
    shown = f"accuracy 95% interval {interval[0]}-{interval[1]}" if interval else "no accuracy to bound"
    return f"a seeded sample of {probe.size} prompts (seed {probe.seed}), not a full run: {shown}"


def repeats_text(repeats: RepeatSummary) -> str:
    """Repeats in one run in one line (bench_app.evaluators.samples.repeat_summary)."""
    said = f"mean of {repeats.k} repeats over {repeats.questions} questions {repeats.mean:g}"
    if repeats.ci95:
        low, high = repeats.ci95
        said += f" (standard error {repeats.std_error:g}, 95% interval {low:g}..{high:g})"
    said += f"; each repeat: {', '.join(f'{x:g}' for x in repeats.scores)}"
    said += f"; seeds {', '.join(str(x) for x in repeats.seeds)}" if repeats.seeds else ""
    counted = {f"pass@{repeats.k}": repeats.pass_at_k, f"maj@{repeats.k}": repeats.maj_at_k}
    return said + "".join(f"; {k} {v:g}" for k, v in counted.items() if v is not None)


def decided_text(decided: Decided) -> str:
    """A staged dataset (execution.decide) in one line: where it was decided, on what; never a full score."""
    verdict = decided.verdict or "not decided (a stage failed)"
    said = (
        f"{verdict} at stage {decided.stage} of {decided.stages} ({decided.questions} of "
        f"{decided.total} questions, {decided.requests_saved} requests saved)"
    )
    look = decided.looks[-1] if decided.looks else StageLook()
    if look.interval:
        low, high = look.interval
        what = "run - baseline" if decided.decision == "gate" else "run - reference"
        bound = f"-{look.max_drop:g}" if look.max_drop is not None else f"+-{look.tolerance or 0:g}"
        shown = "-inf" if low is None else f"{low:+.2f}", "+inf" if high is None else f"{high:+.2f}"
        confidence = f"{1 - 2 * (0.025 if look.alpha is None else look.alpha):.1%}"
        said += (
            f"; {what} {look.estimate:+.2f} points, repeated {confidence} interval "
            f"{shown[0]}..{shown[1]} against {bound} (boundary z {look.boundary})"
        )
    return said + ("; not a full score" if decided.partial else "")


def write_reports(run_dir: Path, config, plan: RunPlan, outcome: RunOutcome) -> None:
    folder = RunFolder(run_dir)
    document = results_document(config, outcome)
    folder.write_results(document)  # first: reading every level's samples below can take a while
    summary = summary_markdown(config, plan, outcome)
    try:  # execution.load_levels: each level from its own samples and requests
        sweep = load_sweep(run_dir, dict(document.datasets))
    except Exception as error:  # noqa: BLE001 - the results stand without it; the table says why
        sweep = LoadSweep(error=f"{type(error).__name__}: {error}") if plan_has_levels(plan) else None
    if sweep is not None:
        document.load_sweep = sweep
        folder.write_results(document)
        summary += "\n".join(load_summary_lines(sweep)) + "\n"
    folder.write_summary(summary)


def write_html_report(run_dir: Path, console=None) -> Optional[Path]:
    """report.html of the run (bench_app.reports.html); a failure to write it is said, never raised, so
    it cannot hide the run's own outcome."""
    from bench_app.reports.html import write_run_report

    try:
        return write_run_report(run_dir)
    except Exception as error:  # noqa: BLE001 - the run's results are written already
        if console is not None:
            console.print(
                styled("warning:", "yellow", f" report.html not written: {type(error).__name__}: {error}")
            )
        return None


def print_summary(
    console, run_dir: Path, plan: RunPlan, outcome: RunOutcome, html: Optional[Path] = None
) -> None:
    table = Table(
        title=f"{run_dir.name}: {outcome.status} in {outcome.wall_s:.0f} s, "
        f"{outcome.server_starts} server start(s)"
    )
    for column in ("dataset", "status", "metrics", "group", "eval s", "reason"):
        table.add_column(column)
    for short, r in outcome.results.items():
        style = {"ok": "green", "failed": "red"}.get(r.status, "yellow")
        eval_s = f"{r.evaluation_s:.1f}" if r.evaluation_s is not None else "-"
        table.add_row(
            short,
            Text(r.status, style=style),
            metric_text(r.metrics),
            str(r.group),
            eval_s,
            (r.reason or "")[:120],
        )
    console.print(table)
    for short, r in outcome.results.items():
        if r.probe:  # a seeded sample: the score with its interval, so that it is not read as a full run
            console.print(f"probe {short}: {probe_text(r.probe)}")
        if r.decided:  # stopped when decided: where, so that a partial score is not read as a full one
            console.print(f"decided {short}: {decided_text(r.decided)}")
        if r.repeats:  # samples per question: their spread, so that one figure is not read alone
            console.print(f"repeats {short}: {repeats_text(r.repeats)}")
        if thinks(r):  # a model that thinks: its answers at a glance
            console.print(f"reasoning {short}: {reasoning_text(r.reasoning)}")
        if r.answers and r.answers.reused:
            console.print(
                f"answers {short}: {r.answers.reused} reused from the request cache, "
                f"{r.answers.generated} generated"
            )
    folder = RunFolder(run_dir)
    sweep = folder.read_results().load_sweep if folder.results_file.exists() else None
    for base, data in (sweep.datasets if sweep else {}).items():
        levels = ", ".join(
            f"{row.level}: {row.score} ({row.output_tokens_per_s or '-'} tok/s"
            + (f", {row.changed_predictions} changed" if row.changed_predictions is not None else "")
            + ")"
            for row in data.levels
        )
        console.print(f"load {base}: {levels}; knee {data.knee.level} ({data.knee.reason})")
    console.print(
        f"results: {folder.results_file} · summary: {folder.summary_file} · configs: {folder.configs}"
    )
    if html is not None:
        console.print(f"report: {html}")
