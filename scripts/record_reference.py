"""The run folder's record types as markdown tables (docs/run-folder.md, between its `records` markers):
each field, its type and the comment beside it in bench_app/records/ (documents.py, answers.py).

    .venv/bin/python scripts/record_reference.py          print the tables
    .venv/bin/python scripts/record_reference.py --write  put them into docs/run-folder.md
tests/test_docs.py fails when the page and the types differ.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "bench_app" / "records" / name for name in ("documents.py", "answers.py", "reference.py")]
PAGE = ROOT / "docs" / "run-folder.md"
BEGIN, END = "<!-- records:begin (scripts/record_reference.py --write) -->", "<!-- records:end -->"
DOCUMENTS = [
    ("RunResults", "results.yaml"),
    ("Benchmark", "results.yaml `benchmark`"),
    ("ServedModel", "results.yaml `model`"),
    ("DatasetEntry", "results.yaml `datasets.<dataset>` (and `per_dataset/<dataset>.yaml` `result`)"),
    ("PromptCount", "results.yaml `datasets.<dataset>.prompts`"),
    ("AnswerSources", "results.yaml `datasets.<dataset>.answers`"),
    ("ReasoningSummary", "results.yaml `datasets.<dataset>.reasoning`"),
    ("ProbeSummary", "results.yaml `datasets.<dataset>.probe`"),
    ("RepeatSummary", "results.yaml `datasets.<dataset>.repeats`"),
    ("Decided", "results.yaml `datasets.<dataset>.decided`"),
    ("StageLook", "results.yaml `datasets.<dataset>.decided.looks[]`"),
    ("ReplicaShare", "results.yaml `datasets.<dataset>.replicas[]`"),
    ("ServerEntry", "results.yaml `servers[]` (and `per_dataset/<dataset>.yaml` `server`)"),
    ("ServerRestart", "results.yaml `servers[].restarts[]` (and `servers[].replicas[].restarts[]`)"),
    ("ReplicaEntry", "results.yaml `servers[].replicas[]`"),
    ("LoadSweep", "results.yaml `load_sweep`"),
    ("LoadDataset", "results.yaml `load_sweep.datasets.<dataset>`"),
    ("LoadLevel", "results.yaml `load_sweep.datasets.<dataset>.levels[]`"),
    ("Knee", "results.yaml `load_sweep.datasets.<dataset>.knee`"),
    ("PerDataset", "configs/per_dataset/<dataset>.yaml"),
    ("DatasetName", "configs/per_dataset/<dataset>.yaml `dataset`"),
    ("ConfigFileCopy", "configs/per_dataset/<dataset>.yaml `config_file`"),
    ("EngineLaunch", "configs/per_dataset/<dataset>.yaml `engine`"),
    ("ContextBudget", "configs/per_dataset/<dataset>.yaml `context_budget`"),
    ("DataRecord", "configs/per_dataset/<dataset>.yaml `data` (and metadata.yaml `data.<dataset>`)"),
    ("RunMetadata", "configs/metadata.yaml"),
    ("RunState", "configs/metadata.yaml `run`"),
    ("Runtime", "configs/metadata.yaml `runtime`"),
    ("GitState", "configs/metadata.yaml `git`"),
    ("Rescoring", "configs/metadata.yaml `rescored[]`"),
    ("SampleRecord", "`<dataset>/samples.jsonl`, one per line"),
    ("RequestLine", "`<dataset>/requests.jsonl`, one per line"),
    ("TokenUsage", "`<dataset>/requests.jsonl` `usage`"),
    ("SweepResults", "a sweep's results.yaml"),
    ("SweepState", "a sweep's results.yaml `sweep`"),
    ("SweepJob", "a sweep's results.yaml `jobs[]`"),
    ("JobRecord", "a sweep job's `job.yaml`"),
    ("ParityReference", "a parity reference, conf/reference/<name>.yaml"),
    ("PublishedFigure", "a parity reference's `datasets.<dataset>.<mode>`"),
]


def _comments(lines, node, previous_end):
    """The comment lines just above a field and the one at its end."""
    above = []
    for number in range(node.lineno - 2, previous_end - 1, -1):
        text = lines[number].strip()
        if not text.startswith("#"):
            break
        above.insert(0, text.lstrip("# ").strip())
    line = lines[node.lineno - 1]
    trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
    return " ".join([*above, trailing]).strip()


def _alias(item: ast.AnnAssign):
    """The document's key of a field declared under another name (Field(alias=...))."""
    if isinstance(item.value, ast.Call):
        for keyword in item.value.keywords:
            if keyword.arg == "alias" and isinstance(keyword.value, ast.Constant):
                return keyword.value.value
    return None


def _names(node: ast.ClassDef):
    return [base for base in node.bases if isinstance(base, ast.Name)]


def tables() -> str:
    classes = {}
    for path in SOURCES:
        source = path.read_text(encoding="utf-8")
        for node in ast.parse(source).body:
            if isinstance(node, ast.ClassDef):
                classes[node.name] = (node, source.splitlines())
    records = {name for name, (node, _) in classes.items() if any(b.id == "Record" for b in _names(node))}
    unlisted = sorted(records - {name for name, _ in DOCUMENTS})
    if unlisted:
        raise SystemExit(f"record types missing from DOCUMENTS (say where each is written): {unlisted}")
    out = []
    for name, where in DOCUMENTS:
        node, lines = classes[name]
        out += [f"**{where}** (`{name}`)", "", "| field | type | what it holds |", "|---|---|---|"]
        previous_end = node.body[0].end_lineno if isinstance(node.body[0], ast.Expr) else node.lineno
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                field_name = _alias(item) or item.target.id
                if field_name.isupper():  # class settings (KEEP_NULL), not fields
                    previous_end = item.end_lineno
                    continue
                kind = ast.unparse(item.annotation).replace("|", "/")
                said = _comments(lines, item, previous_end).replace("|", "/")
                out.append(f"| `{field_name}` | `{kind}` | {said} |")
            previous_end = getattr(item, "end_lineno", previous_end)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def page_with_tables(page: str) -> str:
    head, _, rest = page.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{tables()}{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        PAGE.write_text(page_with_tables(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(tables(), end="")
