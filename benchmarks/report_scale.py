"""report.html at scale: 50 datasets and 20,000 samples; prints the file size and the time to write it.

    .venv/bin/python benchmarks/report_scale.py [DATASETS] [SAMPLES] [--open]
Builds a run folder from a real run's files (the newest outputs/*/ with samples.jsonl, or RUN_DIR in the
environment): its per_dataset/results entries and sample records are repeated under new dataset names
until there are DATASETS datasets and SAMPLES records, then bench_app.reports.html writes the report.
--open also loads it in headless Chromium and prints the time until the page is drawn and usable.
"""

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.reports.html import write_run_report


def source_run() -> Path:
    if os.environ.get("RUN_DIR"):
        return Path(os.environ["RUN_DIR"])
    runs = [p.parent.parent for p in (PROJECT_ROOT / "outputs").glob("*/*/samples.jsonl")]
    if not runs:
        sys.exit("no run with samples.jsonl under outputs/: run `make run` first (or set RUN_DIR)")
    return max(runs, key=lambda p: p.stat().st_mtime)


def build(source: Path, target: Path, datasets: int, samples: int) -> None:
    results = yaml.safe_load((source / "results.yaml").read_text())
    shorts = [s for s in results["datasets"] if (source / s / "samples.jsonl").exists()]
    records = {s: [json.loads(line) for line in (source / s / "samples.jsonl").open()] for s in shorts}
    (target / "configs" / "per_dataset").mkdir(parents=True)
    shutil.copy(source / "configs" / "metadata.yaml", target / "configs" / "metadata.yaml")
    entries, per = {}, samples // datasets
    for n in range(datasets):
        base = shorts[n % len(shorts)]
        short = f"{base}_{n:02d}"
        entries[short] = dict(results["datasets"][base], samples=per)
        shutil.copy(
            source / "configs/per_dataset" / f"{base}.yaml", target / "configs/per_dataset" / f"{short}.yaml"
        )
        (target / short).mkdir()
        pool = records[base]
        with open(target / short / "samples.jsonl", "w") as out:
            for i in range(per):
                out.write(json.dumps(dict(pool[i % len(pool)], id=i), ensure_ascii=False) + "\n")
    results["datasets"] = entries
    (target / "results.yaml").write_text(yaml.safe_dump(results))


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    datasets, samples = (int(args[0]) if args else 50), (int(args[1]) if len(args) > 1 else 20000)
    source = source_run()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "scale"
        build(source, run_dir, datasets, samples)
        started = time.perf_counter()
        report = write_run_report(run_dir)
        written = time.perf_counter() - started
        size = report.stat().st_size
        print(
            f"{datasets} datasets, {samples} samples (records of {source.name}): report.html "
            f"{size / 1e6:.1f} MB written in {written:.2f} s"
        )
        if "--open" in sys.argv:
            sys.path.insert(0, str(PROJECT_ROOT / "tests"))
            from conftest import Browser

            browser = Browser()
            started = time.perf_counter()
            errors = browser.open(report)
            print(
                f"opened in headless Chromium in {time.perf_counter() - started:.2f} s, "
                f"console errors: {len(errors)}"
            )
            started = time.perf_counter()
            browser.js(
                "const s = document.getElementById('filter-verdict'); s.value = 'wrong';"
                "s.dispatchEvent(new Event('change'));"
            )
            shown = browser.js("return document.getElementById('sample-count').textContent")
            print(f"filter 'wrong' applied in {time.perf_counter() - started:.2f} s: {shown}")
            browser.close()


if __name__ == "__main__":
    main()
