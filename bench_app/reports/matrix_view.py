"""The matrix of bench_app.reports.matrix for people: a console table, and a self-contained HTML page.

The page is plain HTML and CSS (no script, no network): a heat-map of the paired deltas (red where a run
is significantly worse, green where significantly better, pale where the difference is noise), the full
matrix with intervals and p-values, and links to each run's own report.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import List, Optional

from bench_app.common.files import atomic_write
from bench_app.records.folder import RunFolder
from bench_app.reports.matrix import Cell, Matrix
from bench_app.reports.paired import SIGNIFICANCE

LEGEND = (
    f"delta: run - baseline in points on the questions both answered; * significant after Holm's correction "
    f"(p < {SIGNIFICANCE}); test: exact McNemar (one run each side) or paired bootstrap (pooled repeats); "
    "cfg!: the dataset's config differs from the baseline's; (< X unseen): not significant, and a difference "
    "below X points could not have been seen here (80% power); PASS / FAIL / INCONCLUSIVE: the gate's verdict"
)


def _number(value: Optional[float], signed: bool = False) -> str:
    return "-" if value is None else (f"{value:+.2f}" if signed else f"{value:.2f}")


def cell_text(cell: Cell) -> str:
    if cell.missing and cell.score is None:
        return f"n/a ({cell.missing})"
    text = _number(cell.score)
    if cell.stopped:  # execution.decide stopped it: a partial score, said where it stands
        text += f" (decided at {cell.stopped})"
    if cell.diff is not None:
        mark = "*" if cell.significant else ""
        text += f"  {_number(cell.diff, True)}{mark}  p={cell.p_holm:.2g}"
        if cell.decision is not None:
            text += f"  {cell.decision.verdict}"
        elif not cell.significant and cell.mde is not None:
            text += f"  (< {cell.mde:.1f} unseen)"
    elif cell.missing:
        text += f"  ({cell.missing})"
    if cell.config_differs:
        text += "  cfg!"
    return text


def console_table(matrix: Matrix):
    """A rich Table: datasets x (baseline, runs), then the mean over datasets."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"baseline: {matrix.base.label}")
    table.add_column("dataset", style="bold")
    table.add_column(matrix.base.label, justify="right")
    for column in matrix.columns:
        table.add_column(column.side.label, justify="right")
    for short in matrix.datasets:
        base = next(
            (c.cells[short].base_score for c in matrix.columns if c.cells[short].base_score is not None), None
        )
        row = [short, _number(base)]
        for column in matrix.columns:
            cell = column.cells[short]
            style = (
                "red"
                if cell.worse
                else "green"
                if cell.significant
                else "yellow"
                if cell.config_differs
                else ""
            )
            row.append(Text(cell_text(cell), style=style))
        table.add_row(*row)
    means = ["mean", _number(matrix.columns[0].aggregate.get("base_score")) if matrix.columns else "-"]
    for column in matrix.columns:
        agg = column.aggregate
        if not agg.get("datasets"):
            means.append("-")
            continue
        low, high = agg["ci95"]
        means.append(f"{agg['score']:.2f}  {agg['paired_delta']:+.2f} [{low:+.2f}, {high:+.2f}]")
    table.add_row(*means, style="bold")
    return table


def print_matrix(matrix: Matrix) -> None:
    from rich.console import Console

    console = Console(width=max(110, 28 + 34 * (len(matrix.columns) + 1)))
    console.print(console_table(matrix))
    console.print(LEGEND, style="dim", highlight=False)


# ------------------------------------------------------------------------------------------- html
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d2330}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #d5d9e0;padding:5px 9px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f2f4f7}
td.heat{min-width:90px;font-weight:600}.flag{color:#9a6700;font-weight:600}.na{color:#8a8f98}
.legend{color:#555;max-width:960px}small{color:#555}
"""


def _heat_color(cell: Cell, scale: float) -> str:
    """Diverging: red (worse) .. white .. green (better), full strength only when significant."""
    if cell.diff is None:
        return "#eceef1"
    strength = min(1.0, abs(cell.diff) / scale) * (1.0 if cell.significant else 0.35)
    red, green = (214, 39, 40), (44, 160, 44)
    target = green if cell.diff > 0 else red
    mix = [round(255 + (t - 255) * strength) for t in target]
    return f"rgb({mix[0]},{mix[1]},{mix[2]})"


def _link(run: Path, out: Path) -> str:
    report = RunFolder(run).report_file
    name = html.escape(run.name)
    if not report.is_file():
        return name
    href = html.escape(os.path.relpath(report.resolve(), out.resolve().parent))
    return f'<a href="{href}">{name}</a>'


def render_html(matrix: Matrix, out: Path) -> str:
    e = html.escape
    scale = max(
        [abs(c.diff) for col in matrix.columns for c in col.cells.values() if c.diff is not None] + [1.0]
    )
    heads = "".join(f"<th>{e(c.side.label)}</th>" for c in matrix.columns)
    heat_rows, rows = [], []
    for short in matrix.datasets:
        cells = [c.cells[short] for c in matrix.columns]
        heat = "".join(
            f'<td class="heat" style="background:{_heat_color(c, scale)}" title="{e(cell_text(c))}">'
            f"{_number(c.diff, True)}{'*' if c.significant else ''}{' cfg!' if c.config_differs else ''}</td>"
            for c in cells
        )
        heat_rows.append(f"<tr><td>{e(short)}</td>{heat}</tr>")
        for column, c in zip(matrix.columns, cells, strict=True):
            ci = "-" if c.ci is None else f"{c.ci[0]:+.2f} .. {c.ci[1]:+.2f}"
            flag = f'<span class="flag">{e(", ".join(c.config_differs))}</span>' if c.config_differs else ""
            note = f'<span class="na">{e(c.missing or "")}</span>'
            rows.append(
                f"<tr><td>{e(short)}</td><td>{e(column.side.label)}</td><td>{_number(c.base_score)}</td>"
                f"<td>{_number(c.score)}</td><td>{_number(c.delta, True)}</td><td>{c.paired}</td>"
                f"<td>{_number(c.diff, True)}</td><td>{ci}</td><td>{e(c.test or '-')}</td>"
                f"<td>{'-' if c.p_value is None else f'{c.p_value:.3g}'}</td>"
                f"<td>{'-' if c.p_holm is None else f'{c.p_holm:.3g}'}{' *' if c.significant else ''}</td>"
                f"<td>{c.right_to_wrong} / {c.wrong_to_right}</td><td>{flag}{note}</td></tr>"
            )
    mean = "".join(
        "<td>-</td>"
        if not c.aggregate.get("datasets")
        else f"<td>{c.aggregate['paired_delta']:+.2f}<br><small>[{c.aggregate['ci95'][0]:+.2f}, "
        f"{c.aggregate['ci95'][1]:+.2f}]</small></td>"
        for c in matrix.columns
    )
    runs = "".join(
        f"<li><b>{e(side.label)}</b>{' (baseline)' if side is matrix.base else ''}: "
        f"{', '.join(_link(r, out) for r in side.runs)}</li>"
        for side in [matrix.base, *[c.side for c in matrix.columns]]
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>bench_app compare: {e(matrix.base.label)} vs {len(matrix.columns)} run(s)</title>
<style>{_CSS}</style></head>
<body data-report-ready="1">
<h1>{e(", ".join(c.side.label for c in matrix.columns))} against {e(matrix.base.label)}</h1>
<p class="legend">{e(LEGEND)}</p>
<h2>Paired delta (points)</h2><table id="heatmap"><tr><th>dataset</th>{heads}</tr>{"".join(heat_rows)}
<tr><th>mean [95% CI]</th>{mean}</tr></table>
<h2>Matrix</h2><table id="matrix"><tr><th>dataset</th><th>run</th><th>baseline</th><th>score</th>
<th>delta</th><th>paired</th><th>paired delta</th><th>95% CI</th><th>test</th><th>p</th><th>Holm p</th>
<th>right&rarr;wrong / wrong&rarr;right</th><th>notes</th></tr>{"".join(rows)}</table>
<h2>Runs</h2><ul>{runs}</ul></body></html>
"""


def write_html(matrix: Matrix, out: Path) -> Path:
    atomic_write(out, render_html(matrix, out), mode=0o644)
    return out


def gate_lines(outcome, gate_text: str, inconclusive: str = "fail") -> List[str]:
    """The gate's verdict: FAIL, INCONCLUSIVE (which fails unless --inconclusive=pass) or PASS, and why."""
    if outcome.failures:
        failed, open_ = len(outcome.failures), len(outcome.inconclusive)
        head = f"gate {gate_text}: FAIL ({failed} failed, {open_} inconclusive)"
    elif outcome.inconclusive:
        counted = (
            "counted as a failure" if inconclusive == "fail" else "counted as a pass (--inconclusive=pass)"
        )
        head = f"gate {gate_text}: INCONCLUSIVE ({len(outcome.inconclusive)}; {counted})"
    else:
        head = f"gate {gate_text}: PASS (every dataset shown no worse than the margin)"
    lines = outcome.failures + outcome.inconclusive + outcome.passed
    return [head, *(f"  - {line}" for line in lines)]
