"""End to end with the real vLLM (CPU build) and the real AISBench on the sample datasets (~4 min)."""

import json
import re
from pathlib import Path

import pytest
from conftest import assert_documents_typed, load, run_cli

pytestmark = pytest.mark.e2e

SAMPLE_FIELDS = {
    "id",
    "subset",
    "prompt",
    "output",
    "prediction",
    "gold",
    "correct",
    "prompt_tokens",
    "output_tokens",
    "finish_reason",
    "error",
    # as the server gave it (bench_app's relay): its finish_reason, the answer and reasoning apart
    "finish_reason_from",
    "request_line",  # the relay's record of the answer, in requests.jsonl
    "answer",
    "reasoning_chars",  # the reasoning's text stays in requests.jsonl: each answer is stored once
    "answer_tokens",
    "reasoning_tokens",
    "cut_in_thinking",
    "cached",
}


def processes_with(text: str):
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


def test_embedded_default_end_to_end(workdir, browser):
    done = run_cli(["benchmark.name=e2e", "aisbench.num_prompts=1"], workdir, timeout=1500)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    # Group 1 finds group 0's answers of this very run in the cache: no news, nothing said about them.
    assert "not reused" not in output, output[-5000:]
    run_dir = workdir / "outputs/e2e"
    checked = assert_documents_typed(run_dir)  # every document, read strictly
    kinds = ("per_dataset/", "samples.jsonl", "requests.jsonl")
    assert "results.yaml" in checked and [sum(kind in c for c in checked) for kind in kinds] == [4, 4, 4], (
        checked
    )
    results = load(run_dir / "results.yaml")
    assert results["status"] == "completed" and results["server_starts"] == 2
    for short in ("sample_ceval", "sample_mmlu", "sample_gsm8k", "sample_longbenchv2"):
        entry = results["datasets"][short]
        assert entry["status"] == "ok", entry
        assert (
            isinstance(entry["metrics"]["accuracy"], float) and 0.0 <= entry["metrics"]["accuracy"] <= 100.0
        )
        assert list((run_dir / short).glob("*/results/bench_app/*.json")), short
    # Read back from the servers, not assumed: base context and the YaRN long context.
    base, long = results["servers"]
    assert base["max_model_len"] == 2048 and long["max_model_len"] == 4096
    assert base["version"] == "0.32.0" and base["port"] != 0
    assert "--hf-overrides" in long["argv"] and "--hf-overrides" not in base["argv"]
    per_long = load(run_dir / "configs/per_dataset/sample_longbenchv2.yaml")
    assert per_long["server"]["max_model_len"] == 4096 and per_long["result"]["status"] == "ok"
    assert per_long["vllm_config_override_applied"]["rope_scaling"]["factor"] == 2.0
    metadata = load(run_dir / "configs/metadata.yaml")
    assert metadata["run"]["status"] == "completed"
    assert (
        metadata["versions"]["vllm"] == "0.32.0"
        and metadata["versions"]["vllm_server"]["group_0"] == "0.32.0"
    )
    assert "| sample_longbenchv2 |" in (run_dir / "summary.md").read_text()
    for server in results["servers"]:
        assert not processes_with(f"--port {server['port']} "), "a server process survived"

    # Per-sample records: one per prompt, scored, counted; they agree with the server's own counts.
    for short, prompts in (
        ("sample_ceval", 2),
        ("sample_mmlu", 2),
        ("sample_gsm8k", 1),
        ("sample_longbenchv2", 1),
    ):
        entry = results["datasets"][short]
        lines = (run_dir / short / "samples.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert len(records) == prompts == entry["samples"], (short, records)
        for record in records:
            # an output that is the answer is not stored twice: output_from says how to put it together
            assert set(record) - {"output_from"} == SAMPLE_FIELDS and record["error"] is None
            assert record.get("output_from") == "{answer}" or record["output"]
            assert record["finish_reason_from"] == "server" and record["cut_in_thinking"] is False
            assert record["cached"] is False  # a first run: every answer generated
            assert isinstance(record["correct"], bool) and record["prediction"] is not None
            assert record["prompt"].startswith("<|im_start|>system") and record["prompt_tokens"] > 0
        budget = load(run_dir / f"configs/per_dataset/{short}.yaml")["context_budget"]
        # The records' token counts are the budget's (both: the chat template, the model's tokenizer).
        assert budget["prompts"] == len(records) and entry["prompts"] == {"done": prompts, "total": prompts}
        assert max(r["prompt_tokens"] for r in records) == budget["longest_prompt_tokens"]
        inferred = {}
        for record in records:
            inferred[record["finish_reason"]] = inferred.get(record["finish_reason"], 0) + 1
        assert inferred == entry["finished_requests"], (short, inferred, entry["finished_requests"])
        # The records' correct flags give back AISBench's own scores, per subset.
        by_subset = {}
        for record in records:
            by_subset.setdefault(record["subset"], []).append(record["correct"])
        reported = entry["metrics"].get("subsets") or {next(iter(by_subset)): entry["metrics"]}
        for subset, flags in by_subset.items():
            assert abs(100.0 * sum(flags) / len(flags) - reported[subset]["accuracy"]) < 1e-6, (short, subset)
    # The report, as a person opens it: from disk, no console errors, charts drawn, the browser filters.
    report = run_dir / "report.html"
    assert f"report: {report}" in done.stdout.replace("\n", "")
    html = report.read_text()
    # Nothing to fetch: every script and style is inline.
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import", html.split('id="report-data"')[0])
    assert browser.open(report) == []
    assert browser.js("return document.querySelectorAll('.js-plotly-plot').length") >= 3
    assert browser.js("return document.querySelectorAll('#chart-scores .bars .point').length") == 4
    assert browser.js("return document.querySelectorAll('#chart-timeline .bars .point').length") >= 6
    assert browser.js("return document.querySelectorAll('tr.changed').length") >= 2  # longbenchv2's override
    assert browser.js("return document.querySelectorAll('#sample-list .sample').length") == 6
    browser.screenshot(run_dir / "report_top.png", height=2400)
    browser.js(
        "const s = document.getElementById('filter-dataset'); s.value = 'sample_ceval';"
        "s.dispatchEvent(new Event('change'));"
    )
    assert browser.js("return document.querySelectorAll('#sample-list .sample').length") == 2
    assert browser.js("return location.hash") == "#samples?dataset=sample_ceval"
    # A link with a filter opens the browser filtered.
    assert browser.open(report, "#samples?dataset=sample_longbenchv2") == []
    shown = browser.js(
        "return [...document.querySelectorAll('#sample-list .sample .meta')].map(e => e.textContent)"
    )
    assert len(shown) == 1 and "sample_longbenchv2" in shown[0]
    browser.screenshot(run_dir / "report_samples.png", height=1400)
    wrong = sum(
        1
        for short in results["datasets"]
        for line in (run_dir / short / "samples.jsonl").open()
        if json.loads(line)["correct"] is False
    )
    browser.js("location.hash = '#samples?verdict=wrong'")  # editing the address filters too
    browser.js_until("return document.querySelectorAll('#sample-list .sample').length", wrong)
