"""A real suite's size end to end, against a FAST STAND-IN server (benchmarks/stand_in_server.py): bench_app's
own overhead only, no model. The real AISBench evaluates a GSM8K-format dataset of G prompts and an
MMLU-format one of M prompts (written here) at batch B; every answer carries R characters of reasoning.

    .venv/bin/python benchmarks/suite_scale.py [--gsm8k 5000] [--mmlu 14000] [--batch 256]
                                               [--reasoning-chars 8000] [--delay-ms 200] [--open]

Prints:
  - per dataset: bench_app's evaluation time (results.yaml evaluation_s) against the same AISBench task
    file run straight at the stand-in (`ais_bench` in a process of its own, its start-up included), ratio
    (target <= 1.05x);
  - the run folder's size: AISBench's own files against bench_app's (samples.jsonl, requests.jsonl, the
    request cache, report.html, ...), and the folder against AISBench's output alone (target <= 1.5x);
  - wall time and peak RSS of `bench-app report`, `compare`, `rescore` and `runs` on that run;
  - with --open: report.html loaded in headless Chromium (time, console errors).
Everything lands in a temporary folder, removed at the end (--keep DIR keeps it there).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from resume import write_dataset as write_gsm8k  # beside this script: GSM8K's layout

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
BENCH_APP = str(ROOT / ".venv" / "bin" / "bench-app")
AIS_BENCH = str(ROOT / ".venv" / "bin" / "ais_bench")
MODEL = ROOT / "models" / "SmolLM2-135M-Instruct"
SUBJECTS = ("high_school_geography", "computer_security")
# bench_app's own files in a run folder; everything else under <dataset>/ is AISBench's output.
BENCH_APP_FILES = ("samples.jsonl", "requests.jsonl", "aisbench_task.py")


def write_mmlu(folder: Path, count: int) -> None:
    for split in ("dev", "test"):
        (folder / split).mkdir(parents=True)
    for number, subject in enumerate(SUBJECTS):
        rows = count // len(SUBJECTS) + (1 if number < count % len(SUBJECTS) else 0)
        lines = [f"Question {i} of {subject}: which option is the first one?,first,second,third,fourth,A"
                 for i in range(rows)]  # fmt: skip
        (folder / "test" / f"{subject}_test.csv").write_text("\n".join(lines) + "\n")
        (folder / "dev" / f"{subject}_dev.csv").write_text(lines[0] + "\n")


def measured(command: list, cwd: Path, env=None) -> tuple:
    """(seconds, peak RSS in MB, completed process) of one command in a process of its own."""
    started = time.monotonic()
    with open(cwd / "command.out", "w") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"failed ({code}): {' '.join(command)}\n{(cwd / 'command.out').read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, (cwd / "command.out").read_text()


def size_of(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def split_sizes(run: Path) -> tuple:
    """(AISBench's bytes, bench_app's bytes by file kind) in a run folder."""
    aisbench, own = 0, {}
    for path in run.rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(run)
        in_dataset = len(relative.parts) > 1 and (run / relative.parts[0] / "aisbench_task.py").exists()
        if (
            in_dataset
            and relative.parts[1] not in BENCH_APP_FILES
            and re.fullmatch(r"\d{8}_\d{6}", relative.parts[1])
        ):
            aisbench += path.stat().st_size
        else:
            kind = path.name if in_dataset else str(relative.parts[0])
            own[kind] = own.get(kind, 0) + path.stat().st_size
    return aisbench, own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def straight(run: Path, short: str, work: Path, env: dict) -> tuple:
    """The task file bench_app ran, pointed at the stand-in itself, run by `ais_bench` as a user would."""
    task = (run / short / "aisbench_task.py").read_text()
    port = free_port()
    server = subprocess.Popen(
        [PYTHON, str(ROOT / "benchmarks" / "stand_in_server.py"), str(MODEL), "--port", str(port),
         "--max-model-len", "2048", "--served-model-name", "smollm2-135m-instruct"],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        folder = work / f"straight_{short}"
        folder.mkdir()
        task_file = folder / "aisbench_task.py"
        task_file.write_text(re.sub(r"'host_port': \d+", f"'host_port': {port}", task))
        argv = [AIS_BENCH, str(task_file), "--work-dir", str(folder), "--mode", "all",
                "--max-num-workers", "1",
                "--num-warmups", "0", "--dump-eval-details"]  # fmt: skip
        seconds, rss, _ = measured(argv, folder, env)
        return seconds, size_of(folder) - task_file.stat().st_size
    finally:
        server.terminate()
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gsm8k", type=int, default=5000)
    parser.add_argument("--mmlu", type=int, default=14000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--reasoning-chars", type=int, default=8000)
    parser.add_argument("--delay-ms", type=float, default=200)
    parser.add_argument("--open", action="store_true")
    parser.add_argument("--keep", type=Path)
    options = parser.parse_args()
    env = dict(
        os.environ,
        STAND_IN_DELAY_MS=str(options.delay_ms),
        STAND_IN_REASONING_CHARS=str(options.reasoning_chars),
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench_app_scale_"))
    try:
        write_gsm8k(tmp / "data" / "gsm8k", options.gsm8k)
        write_mmlu(tmp / "data" / "mmlu", options.mmlu)
        argv = [PYTHON, "-m", "bench_app", "benchmark.name=scale",
                f"hydra.searchpath=[file://{ROOT / 'benchmarks' / 'conf'}]", "engine=stand_in",
                "dataset=[sample_gsm8k,sample_mmlu]",
                f"datasets.sample_gsm8k.data_path={tmp / 'data' / 'gsm8k'}",
                f"datasets.sample_mmlu.data_path={tmp / 'data' / 'mmlu'}",
                f"aisbench.batch_size={options.batch}"]  # fmt: skip
        print(
            f"FAST STAND-IN server ({options.delay_ms:g} ms per answer, "
            f"{options.reasoning_chars} characters of "
            f"reasoning each); GSM8K format {options.gsm8k} prompts, MMLU format {options.mmlu}, batch "
            f"{options.batch}",
            flush=True,
        )
        wall, rss, _ = measured(argv, tmp, env)
        run = tmp / "outputs" / "scale"
        results = yaml.safe_load((run / "results.yaml").read_text())
        print(f"bench_app run: {wall:.1f} s wall, peak RSS {rss:.0f} MB (its largest process)")
        for short, entry in results["datasets"].items():
            if entry["status"] != "ok":
                sys.exit(f"{short}: {entry['status']} {entry.get('reason')}")
            straight_s, straight_bytes = straight(run, short, tmp, env)
            evaluation = entry["evaluation_s"]
            print(
                f"  {short}: {entry.get('samples')} samples; evaluation {evaluation:.1f} s "
                "through bench_app, "
                f"{straight_s:.1f} s straight: {evaluation / straight_s:.2f}x (target <= 1.05x); AISBench's "
                f"own output straight {straight_bytes / 1e6:.0f} MB",
                flush=True,
            )
        aisbench, own = split_sizes(run)
        total = aisbench + sum(own.values())
        print(
            f"run folder {total / 1e6:.0f} MB: AISBench's own output {aisbench / 1e6:.0f} MB, bench_app's "
            f"{sum(own.values()) / 1e6:.0f} MB; folder / AISBench's = {total / aisbench:.2f}x "
            "(target <= 1.5x)"
        )
        for kind, size in sorted(own.items(), key=lambda item: -item[1])[:8]:
            print(f"    {kind}: {size / 1e6:.1f} MB")
        copy = tmp / "outputs" / "scale_copy"
        shutil.copytree(run, copy)
        for name, command in (
            ("report", [BENCH_APP, "report", str(run)]),
            ("compare", [BENCH_APP, "compare", str(run), str(copy)]),
            ("rescore", [BENCH_APP, "rescore", str(copy)]),
            ("runs", [BENCH_APP, "runs", "--root", str(tmp / "outputs")]),
        ):
            seconds, peak, _ = measured(command, tmp)
            print(f"  bench-app {name}: {seconds:.1f} s, peak RSS {peak:.0f} MB")
        report = run / "report.html"
        print(f"report.html: {report.stat().st_size / 1e6:.1f} MB")
        if options.open:
            sys.path.insert(0, str(ROOT / "tests"))
            from conftest import Browser

            browser = Browser()
            started = time.perf_counter()
            errors = browser.open(report)
            print(
                f"  opened in headless Chromium in {time.perf_counter() - started:.1f} s, "
                f"{len(errors)} error(s)"
            )
            browser.close()
    finally:
        if options.keep:
            shutil.copytree(tmp, options.keep, dirs_exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
