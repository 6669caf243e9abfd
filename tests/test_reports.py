"""Reports of real tiny runs: `bench-app compare` pairs the samples of two runs that differ
(temperature 0 vs 0.7), the comparison report opens in Chromium, `bench-app report` rewrites a report
on demand and refuses what is not a run, `bench-app rescore` scores stored predictions again with no
server."""

import json

import pytest
from conftest import load, run_cli


def test_two_real_runs_that_differ_are_compared_sample_by_sample(workdir, browser, vllm_server):
    common = vllm_server.args("dataset=[sample_gsm8k]", "execution.progress=false")
    for name, temperature in (("t0", 0.0), ("t07", 0.7)):
        done = run_cli(
            [f"benchmark.name={name}", f"++aisbench.generation_kwargs.temperature={temperature}", *common],
            workdir,
            env=vllm_server.env(),
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    a, b = workdir / "outputs/t0", workdir / "outputs/t07"
    records = {
        run: {
            r["id"]: r for r in map(json.loads, (run / "sample_gsm8k/samples.jsonl").read_text().splitlines())
        }
        for run in (a, b)
    }
    assert len(records[a]) == len(records[b]) == 4
    flips = [i for i in records[a] if records[a][i]["correct"] != records[b][i]["correct"]]
    out = workdir / "compare.html"
    compared = run_cli([str(a), str(b), "--html", str(out)], workdir, module="bench_app.compare")
    assert compared.returncode == 1, compared.stdout + compared.stderr  # the temperature differs
    assert "aisbench.generation_kwargs.temperature: 0.0 -> 0.7" in compared.stdout
    if flips:
        assert "== paired samples (1 dataset(s) with flipped answers)" in compared.stdout
        assert "exact McNemar p = " in compared.stdout and "significant at 0.05" in compared.stdout
    else:
        assert "== paired samples" not in compared.stdout
    assert f"comparison report: {out}" in compared.stdout
    assert browser.open(out) == []
    assert browser.js("return document.querySelectorAll('#paired tbody tr').length") == 1
    assert browser.js("return document.querySelectorAll('#flips .sample').length") == len(flips)
    browser.screenshot(workdir / "outputs" / "compare.png", height=1600)

    # On demand: the report is written again from the run folder alone.
    (a / "report.html").unlink()
    again = run_cli([str(a)], workdir, module="bench_app.report")
    assert again.returncode == 0 and (a / "report.html").exists(), again.stderr
    assert browser.open(a / "report.html") == []
    bad = run_cli([str(workdir)], workdir, module="bench_app.report")
    assert bad.returncode == 2 and "is not a bench_app run folder" in bad.stderr

    # Re-score without inference: the scoring of sample_gsm8k is lost (its results files), rescore
    # brings it back from the stored predictions (no server runs now), keeping the old folder and noting
    # it in the snapshot.
    before = load(a / "results.yaml")["datasets"]["sample_gsm8k"]
    (results_dir,) = list((a / "sample_gsm8k").glob("*/results"))
    for path in results_dir.glob("*/*.json"):
        path.unlink()
    (a / "sample_gsm8k/samples.jsonl").unlink()
    rescored = run_cli([str(a), "sample_gsm8k"], workdir, module="bench_app.rescore", timeout=600)
    assert rescored.returncode == 0, rescored.stdout + rescored.stderr
    after = load(a / "results.yaml")["datasets"]["sample_gsm8k"]
    assert after["metrics"] == before["metrics"] and after["status"] == "ok" and after["samples"] == 4
    assert after["finished_requests"] == before["finished_requests"] and "rescored_at" in after
    assert len((a / "sample_gsm8k/samples.jsonl").read_text().splitlines()) == 4
    assert list((a / "sample_gsm8k").glob("*/results_before_rescore_*"))
    note = load(a / "configs/metadata.yaml")["rescored"][-1]
    assert (
        note["datasets"] == ["sample_gsm8k"]
        and note["previous"]["sample_gsm8k"]["metrics"] == before["metrics"]
    )
    assert load(a / "configs/per_dataset/sample_gsm8k.yaml")["result"]["rescored_at"] == after["rescored_at"]
    unknown = run_cli([str(a), "nope"], workdir, module="bench_app.rescore")
    assert unknown.returncode == 2 and "Datasets of this run: sample_gsm8k" in unknown.stderr


@pytest.mark.e2e
def test_perf_run_records_each_requests_timing_and_the_report_draws_their_distributions(workdir, browser):
    done = run_cli(
        [
            "benchmark.name=perf",
            "dataset=[sample_gsm8k]",
            "aisbench.mode=perf",
            "aisbench.num_prompts=3",
            "execution.progress=false",
        ],
        workdir,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run_dir = workdir / "outputs/perf"
    records = [json.loads(line) for line in (run_dir / "sample_gsm8k/samples.jsonl").open()]
    assert len(records) == 3 and all(r["ttft_ms"] > 0 and r["e2el_ms"] > r["ttft_ms"] for r in records)
    # The per-request figures are AISBench's own: its summary's mean TTFT is their mean.
    summary = load(run_dir / "results.yaml")["datasets"]["sample_gsm8k"]["metrics"]
    mean_ttft = sum(r["ttft_ms"] for r in records) / 3
    assert abs(mean_ttft - summary["ttft_ms"]) < 0.1, (mean_ttft, summary)
    assert browser.open(run_dir / "report.html") == []
    assert browser.js("return document.querySelectorAll('#chart-perf .boxlayer .trace').length") == 4
    assert browser.js("return document.querySelectorAll('#chart-scores .bars .point').length") == 0
    browser.screenshot(run_dir / "report_perf.png", height=1800)
