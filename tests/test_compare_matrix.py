"""`bench-app compare BASE RUN [RUN ...]`: the datasets x runs matrix (exact McNemar or a paired bootstrap,
Holm's correction, the aggregate), config mismatches flagged per cell, pooled repeats, the release gate,
--json and the HTML page in Chromium. On synthetic run folders whose answers are known."""

import json
import sys
from pathlib import Path

import pytest
from conftest import run_cli
from scipy.stats import binomtest

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from run_folders import write_run, write_sweep  # noqa: E402

from bench_app.common.errors import UserError  # noqa: E402
from bench_app.reports.gate import parse_gate  # noqa: E402
from bench_app.reports.matrix import Side, build, holm  # noqa: E402

RIGHT, WRONG = True, False
BASE = {"d_math": [RIGHT] * 30 + [WRONG] * 10, "d_facts": [RIGHT, WRONG] * 20}


def variant(flips_math: int, flips_facts: int = 0):
    """The baseline's answers with the first N right ones of each dataset turned wrong."""
    math = list(BASE["d_math"])
    facts = list(BASE["d_facts"])
    for i in range(flips_math):
        math[i] = WRONG
    for i in range(0, 2 * flips_facts, 2):
        facts[i] = WRONG
    return {"d_math": math, "d_facts": facts}


@pytest.fixture
def runs(tmp_path):
    return {
        "base": write_run(tmp_path, "bf16", BASE),
        "near": write_run(tmp_path, "w8a8", variant(1), quantization="w8a8"),
        "far": write_run(tmp_path, "w4a4", variant(20, 1), quantization="w4a4"),
    }


def test_holm_matches_the_step_down_definition():
    # sorted p: .01 (x3), .02 (x2 -> .04), .04 (x1): monotone, capped at 1
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])


def test_matrix_pairs_each_dataset_and_corrects_for_many_datasets(runs):
    matrix = build(Side("bf16", [runs["base"]]), [Side("w8a8", [runs["near"]]), Side("w4a4", [runs["far"]])])
    near, far = (column.cells for column in matrix.columns)
    assert matrix.datasets == ["d_math", "d_facts"]
    # one flip: no evidence; twenty flips all one way: significant after Holm over two datasets
    assert near["d_math"].test == "mcnemar" and near["d_math"].right_to_wrong == 1
    assert near["d_math"].p_value == pytest.approx(1.0) and not near["d_math"].significant
    p = binomtest(20, 20, 0.5).pvalue
    assert far["d_math"].p_value == pytest.approx(p)
    assert far["d_math"].p_holm == pytest.approx(min(1.0, 2 * p))
    assert far["d_math"].worse and far["d_math"].diff == pytest.approx(-50.0)
    assert far["d_math"].delta == pytest.approx(25.0 - 75.0)
    low, high = far["d_math"].ci
    assert low < -50.0 < high < 0
    assert not far["d_facts"].significant and far["d_facts"].right_to_wrong == 1
    aggregate = matrix.columns[1].aggregate
    assert aggregate["datasets"] == 2 and aggregate["paired_delta"] == pytest.approx((-50.0 - 2.5) / 2)
    assert aggregate["ci95"][0] < aggregate["paired_delta"] < aggregate["ci95"][1] < 0


def test_json_and_the_gate_name_the_dataset_that_dropped(runs, tmp_path):
    listed = run_cli(["compare", str(runs["base"]), str(runs["near"]), str(runs["far"]), "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    assert [r["label"] for r in document["runs"]] == ["w8a8", "w4a4"] and document["correction"] == "holm"
    assert document["runs"][1]["cells"]["d_math"]["worse"] is True

    failed = run_cli(["compare", str(runs["base"]), str(runs["far"]), "--gate", "max_drop=1.0"], tmp_path)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "gate max_drop=1.0: FAIL (1 failed, 1 inconclusive)" in failed.stdout
    assert "w4a4 d_math: FAIL -50.00 points (97.5% interval" in failed.stdout
    # one flip in 40 questions: neither shown within 1 point nor shown worse
    assert "w4a4 d_facts: INCONCLUSIVE -2.50 points" in failed.stdout
    assert "questions x repeats would decide it" in failed.stdout
    # a margin the drop's interval straddles: inconclusive (exit 3), a pass only when asked for
    straddled = run_cli(["compare", str(runs["base"]), str(runs["far"]), "--gate", "max_drop=60"], tmp_path)
    assert straddled.returncode == 3 and "INCONCLUSIVE (1; counted as a failure)" in straddled.stdout
    lenient = ["--gate", "max_drop=60", "--inconclusive=pass"]
    assert run_cli(["compare", str(runs["base"]), str(runs["far"]), *lenient], tmp_path).returncode == 0
    wide = run_cli(["compare", str(runs["base"]), str(runs["far"]), "--gate", "max_drop=70"], tmp_path)
    assert wide.returncode == 0 and "PASS (every dataset shown no worse" in wide.stdout, wide.stdout
    # a one-answer drop is not evidence of no drop: with no margin it cannot pass
    near = run_cli(
        ["compare", str(runs["base"]), str(runs["near"]), "--gate", "max_drop=0", "--json"], tmp_path
    )
    assert near.returncode == 3, near.stdout
    cell = json.loads(near.stdout)["runs"][0]["cells"]["d_math"]
    assert cell["gate"]["verdict"] == "INCONCLUSIVE" and cell["gate"]["mde"] > 10 and cell["gate"]["needed"]
    plain = run_cli(["compare", str(runs["base"]), str(runs["near"]), "--matrix"], tmp_path)
    assert "unseen)" in plain.stdout  # not significant, and what could not have been seen

    bad = run_cli(["compare", str(runs["base"]), str(runs["far"]), "--gate", "max_dorp=1"], tmp_path)
    assert bad.returncode == 2 and "'max_dorp=1'" in bad.stderr and "max_drop:" in bad.stderr
    with pytest.raises(UserError, match="not a number"):
        parse_gate("max_drop=one")


def test_a_negative_margin_is_refused():
    with pytest.raises(UserError, match=r"needs max_drop=POINTS \(>= 0\)"):
        parse_gate("max_drop=-1")


def test_a_cell_whose_dataset_config_differs_is_flagged_and_fails_the_gate(runs, tmp_path):
    longer = write_run(tmp_path, "longer", BASE, max_out_len=96)
    broken = write_run(tmp_path, "broken", BASE, failed={"d_facts": "server died"})
    matrix = build(Side("bf16", [runs["base"]]), [Side("longer", [longer]), Side("broken", [broken])])
    assert matrix.columns[0].cells["d_math"].config_differs == ["model_config.max_out_len"]
    assert matrix.columns[1].cells["d_facts"].missing == "run failed: server died"
    gated = run_cli(
        ["compare", str(runs["base"]), str(longer), str(broken), "--gate", "max_drop=1"], tmp_path
    )
    assert gated.returncode == 1
    assert (
        "longer d_math: dataset config differs from the baseline's (model_config.max_out_len)" in gated.stdout
    )
    assert "broken d_facts: not compared (run failed: server died)" in gated.stdout
    assert "cfg!" in gated.stdout  # the console matrix marks the cell


def test_repeats_of_a_sweep_pool_into_one_side_tested_by_bootstrap(tmp_path):
    def repeats(answers):
        return [
            {"datasets": answers, "overrides": [f"aisbench.generation_kwargs.seed={s}"]} for s in (1, 2, 3)
        ]

    base = write_sweep(tmp_path, "base_repeats", repeats(BASE))
    worse = write_sweep(tmp_path, "w4a4_repeats", repeats(variant(12)))
    done = run_cli(["compare", str(base), str(worse), "--json", "--gate", "max_drop=1"], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    document = json.loads(done.stdout)
    assert document["baseline"]["label"] == "base_repeats x3" and len(document["baseline"]["runs"]) == 3
    cell = document["runs"][0]["cells"]["d_math"]
    assert cell["test"] == "bootstrap" and cell["paired"] == 40 and cell["worse"]
    assert cell["paired_delta"] == pytest.approx(-30.0)
    assert document["gate"]["passed"] is False and "d_math" in document["gate"]["failures"][0]

    two_configs = write_sweep(
        tmp_path,
        "dtypes",
        [
            {"datasets": BASE, "overrides": ["vllm.dtype=bfloat16"]},
            {"datasets": BASE, "overrides": ["vllm.dtype=float32"], "dtype": "float32"},
        ],
    )
    refused = run_cli(["compare", str(two_configs), str(worse)], tmp_path)
    assert refused.returncode == 2 and "holds 2 configurations" in refused.stderr
    columns = run_cli(["compare", str(base), str(two_configs), "--json"], tmp_path)
    labels = [r["label"] for r in json.loads(columns.stdout)["runs"]]
    assert labels == ["dtypes[vllm.dtype=bfloat16]", "dtypes[vllm.dtype=float32]"]


def test_the_html_page_draws_the_heat_map_and_links_each_run(runs, tmp_path, browser):
    out = tmp_path / "pages" / "compare.html"
    out.parent.mkdir()
    (runs["far"] / "report.html").write_text("<html><body>w4a4 report</body></html>")
    done = run_cli(
        ["compare", str(runs["base"]), str(runs["near"]), str(runs["far"]), "--html", str(out)], tmp_path
    )
    assert done.returncode == 0 and f"comparison report: {out}" in done.stdout, done.stderr
    assert browser.open(out) == []
    assert browser.js("return document.querySelectorAll('#heatmap tr').length") == 1 + 2 + 1
    assert browser.js("return document.querySelectorAll('#matrix tr').length") == 1 + 2 * 2
    worst = browser.js("return document.querySelectorAll('#heatmap tr')[1].children[2].textContent")
    assert worst.startswith("-50.00*")
    assert browser.js("return document.querySelector('a').getAttribute('href')") == "../w4a4/report.html"
    browser.screenshot(tmp_path / "compare_matrix.png")


def test_two_runs_keep_the_pairwise_report_unless_the_matrix_is_asked_for(runs, tmp_path):
    plain = run_cli(["compare", str(runs["base"]), str(runs["far"])], tmp_path)
    assert plain.returncode == 1 and "== scores" in plain.stdout and "Holm" not in plain.stdout
    matrix = run_cli(["compare", str(runs["base"]), str(runs["far"]), "--matrix"], tmp_path)
    assert matrix.returncode == 0 and "Holm" in matrix.stdout and "-50.00*" in matrix.stdout, matrix.stdout
