"""Per-sample records of one dataset from AISBench's own output; runs in the evaluator's environment.

    python aisbench_samples.py TOKENIZER_PATH WORK_DIR REQUESTS_FILE OUT_FILE MAX_OUT_LEN [REPEATS]
Reads the newest AISBench output folder under WORK_DIR: `predictions/<model>/<subset>.jsonl` (prompt,
raw output, gold), `<subset>_failed.jsonl` (requests that failed, with AISBench's error) and, when
AISBench dumped its evaluation details (--dump-eval-details), `results/<model>/<subset>.json` (the
extracted prediction, the reference and whether it is correct, in the order of the prediction ids).
Writes OUT_FILE (JSON lines, atomically), one record per prompt:
    id, subset, prompt (chat template applied by the model's tokenizer, as the server does), output,
    prediction, gold, correct, prompt_tokens, output_tokens, finish_reason, error, and, from the
    answers bench_app's relay recorded as the server gave them (REQUESTS_FILE): request_line
    (that record's line, from 0), answer, answer_tokens, reasoning_chars, reasoning_tokens, cut_in_thinking
    (the length limit came before the reasoning ended), cached (answered from the request cache), and the
    server's own finish_reason.
Each answer is stored once: the reasoning's text stays where the relay put it (requests.jsonl, or the run's
own request cache, which the record names by key; request_line says which record), and an output that is
the recorded answer put together (AISBench's prediction of a reasoning model is its thinking, `</think>`,
then the answer) is left out, `output_from` saying how to put it together again
(bench_app.records.folder.RunFolder.read_samples(texts=True) does). Token counts of a recorded answer are the
server's (usage; the reasoning's is the completion's less the answer's unless the server reports it):
tokenizing every long answer again would cost more than the evaluation.
In perf mode the records come from `performances/<model>/<subset>_details.jsonl` and the request time
points AISBench stores beside it (db_data/*.db), and add ttft_ms, tpot_ms and e2el_ms per request, computed
as AISBench's own summary computes them (first chunk - sent; (last - first) / (output tokens - 1); last -
sent).
With REPEATS k > 1 (AISBench's n: each question asked k times, row r is question r // k, its repeat r % k) a
record is one answer: id is the question's, `repeat` which of its k it is, `seed` the seed the relay sent it
with. AISBench's details come in groups of k lists, but not one group per question (see subset_records).
AISBench does not keep the server's finish reason: without a recorded answer it is inferred, "length"
when the output reached MAX_OUT_LEN tokens, else "stop" (finish_reason_from says which).
Prints {"samples": N} or {"error": ...}; exit 0 unless nothing could be written.
"""

import hashlib
import io
import json
import os
import re
import sqlite3
import sys
import warnings
from pathlib import Path

from aisbench_prompts import messages_of

MODEL_ABBR = "bench_app"


def read_jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def newest_output_folder(work_dir: Path) -> Path:
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir() and re.fullmatch(r"\d{8}_\d{6}", p.name))
    if not runs:
        raise FileNotFoundError(f"no AISBench output folder in {work_dir}")
    return runs[-1]


class Tokens:
    """The model's tokenizer, if it loads offline; counts are None without it."""

    def __init__(self, tokenizer_path: str):
        self.tokenizer = None
        try:
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
        except Exception:  # noqa: BLE001 - records without token counts beat no records
            pass

    def prompt(self, messages):
        if self.tokenizer is None or not getattr(self.tokenizer, "chat_template", None):
            return "\n".join(m["content"] for m in messages), None
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        # The chat template already holds the special tokens: do not add them a second time.
        return text, len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def count(self, text):
        if self.tokenizer is None or not isinstance(text, str):
            return None
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def correct_of(detail: dict):
    """Whether AISBench scored the sample right: its details' `correct` (a list for evaluators that
    check several answers: right when all are), or, for evaluators that report none (exact-match
    accuracy: ceval, mmlu), whether the extracted prediction equals the reference, which is how they
    score it. None when AISBench dumped no details."""
    if "correct" in detail:
        value = detail["correct"]
        return all(value) if isinstance(value, list) and value else bool(value)
    if "predictions" in detail and "references" in detail:
        return str(detail["predictions"]) == str(detail["references"])
    return None


def _message_key(messages) -> str:
    return json.dumps([(m.get("role"), m.get("content")) for m in messages or []], ensure_ascii=False)


class Answers:
    """The answers the relay recorded, by the messages they answered, with the line each is on. Without
    repeats: the last one of each, as a retried request's last answer is the one AISBench kept. With
    repeats: the k answers of a question, each given once to the output it is (else the next one left)."""

    def __init__(self, path: Path, repeats: int = 1):
        self.by_messages = {}
        self.repeats = repeats
        if path.exists():
            with open(path, encoding="utf-8") as handle:
                for line_number, line in enumerate(handle):
                    if line.strip():
                        record = json.loads(line)
                        record["line"] = line_number
                        if repeats > 1 and record.get("status") != 200:
                            continue  # a failed try: its repeat was sent again
                        self.by_messages.setdefault(_message_key(record.get("messages")), []).append(record)

    def of(self, messages, output=None):
        found = self.by_messages.get(_message_key(messages)) or []
        if self.repeats == 1 or not found:
            return found[-1] if found else None
        answer = next(
            (
                r
                for r in found
                if isinstance(output, str)
                and any(is_assembled(f, output, r.get("answer") or "", r) for f in OUTPUT_FORMS)
            ),
            found[0],
        )
        found.remove(answer)
        return answer


def repeat_detail(detail: dict, repeat: int, repeats: int) -> dict:
    """One repeat's values of a question's details (AISBench lists each field's k values)."""
    if repeats == 1:
        return detail
    return {
        k: v[repeat] if isinstance(v, list) and len(v) == repeats else v
        for k, v in detail.items()
        if k not in ("example_abbr",) and "@" not in k
    }


# How AISBench's output is put together from a recorded answer, tried in order: the answer alone (no
# reasoning, or a parser's answer), then the thinking with the answer as AISBench's API models join them.
OUTPUT_FORMS = (
    "{answer}",
    "{reasoning}</think>{answer}",
    "<think>{reasoning}</think>{answer}",
    "<think>\n{reasoning}\n</think>\n\n{answer}",
    "{reasoning}{answer}",
)


def is_assembled(form: str, output: str, answer: str, recorded: dict) -> bool:
    """Whether output is the recorded answer put together by form. The reasoning's text may be in the
    run's request cache only: then its length and hash in the record tell."""
    head, found, tail = form.partition("{reasoning}")
    head, tail = head.replace("{answer}", answer), tail.replace("{answer}", answer)
    if not found:
        return head == output
    reasoning = recorded.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        return head + reasoning + tail == output
    chars, digest = recorded.get("reasoning_chars") or 0, recorded.get("reasoning_sha256")
    if not chars or not digest or len(output) != len(head) + chars + len(tail):
        return False
    if not (output.startswith(head) and output.endswith(tail)):
        return False
    return hashlib.sha256(output[len(head) : len(head) + chars].encode()).hexdigest() == digest


def recorded_fields(recorded: dict, output, tokens: "Tokens") -> dict:
    """A sample's fields from the relay's record of its answer: texts by reference, tokens from usage."""
    answer, reasoning = recorded.get("answer") or "", recorded.get("reasoning") or ""
    chars = recorded.get("reasoning_chars", len(reasoning))
    usage = recorded.get("usage") or {}
    answer_tokens = tokens.count(answer)
    completion = usage.get("completion_tokens")
    reasoning_tokens = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens")
    if reasoning_tokens is None and chars:
        reasoning_tokens = (
            max(0, completion - answer_tokens)
            if isinstance(completion, int) and answer_tokens is not None
            else (tokens.count(reasoning) if reasoning else None)
        )
    fields = {
        "request_line": recorded.get("line"),
        "answer": answer,
        "answer_tokens": answer_tokens,
        "reasoning_chars": chars,
        "reasoning_tokens": reasoning_tokens or 0,
        "cut_in_thinking": bool(recorded.get("cut_in_thinking")),
        "cached": bool(recorded.get("cached")),  # from the request cache, not generated now
    }
    if isinstance(output, str):
        form = next((f for f in OUTPUT_FORMS if is_assembled(f, output, answer, recorded)), None)
        if form is not None and (chars or form == "{answer}"):
            fields["output_from"] = form
    return fields


def subset_records(
    folder: Path,
    subset: str,
    tokens: Tokens,
    max_out_len: int,
    answers: "Answers | None" = None,
    repeats: int = 1,
) -> list:
    predictions_dir = folder / "predictions" / MODEL_ABBR
    answered = predictions_dir / f"{subset}.jsonl"
    failed_file = predictions_dir / f"{subset}_failed.jsonl"
    entries = [(item, None) for item in (read_jsonl(answered) if answered.exists() else [])]
    entries += [(None, item) for item in (read_jsonl(failed_file) if failed_file.exists() else [])]
    # AISBench's evaluation sorts answered and failed requests by id: its details follow that order.
    entries.sort(key=lambda entry: (entry[0] or entry[1]).get("id", 0))
    details_file = folder / "results" / MODEL_ABBR / f"{subset}.json"
    details = {}
    if details_file.exists():
        details = json.loads(details_file.read_text(encoding="utf-8")).get("details") or {}
        if isinstance(details, list):  # repeats: one entry per question, in order
            details = {str(i): d for i, d in enumerate(details)}
    records = []
    questions = len(entries) // repeats
    for index, (answer, failure) in enumerate(entries):
        question, repeat = divmod(index, repeats)
        # AISBench (3.1's BaseEvaluator.group) zips its details, which come repeat by repeat (repeat i of
        # question j at i*Q + j), with the test set, which comes question by question: its group g holds the
        # details at g*k .. g*k+k-1. So repeat i of question j is in group (i*Q + j) // k at (i*Q + j) % k.
        group, place = divmod(repeat * questions + question, repeats) if repeats > 1 else (question, 0)
        detail = repeat_detail(details.get(str(group), {}), place, repeats)
        item = answer or failure
        messages = messages_of(item.get("origin_prompt") or item.get("input") or "")
        prompt, prompt_tokens = tokens.prompt(messages)
        output = answer.get("prediction") if answer else None
        recorded = answers.of(messages, output) if answers is not None else None
        reasoning = {}
        if recorded is not None:
            finish_reason, finish_from = recorded.get("finish_reason"), "server"
            output_tokens = (recorded.get("usage") or {}).get("completion_tokens")
            if output_tokens is None:
                output_tokens = tokens.count(output)
            reasoning = recorded_fields(recorded, output, tokens)
        else:
            output_tokens = tokens.count(output)
            finish_reason, finish_from = None, None
            if output_tokens is not None:
                finish_reason = "length" if max_out_len and output_tokens >= max_out_len else "stop"
                finish_from = "inferred"
        if "output_from" in reasoning:
            output = None  # put together again from the recorded answer (see OUTPUT_FORMS)
        seed = ((recorded or {}).get("settings") or {}).get("seed")
        records.append(
            {
                "id": item.get("id") if repeats == 1 else question,
                **({"repeat": repeat, "seed": seed} if repeats > 1 else {}),
                "subset": subset,
                "prompt": prompt,
                "output": output,
                "prediction": detail.get("predictions", detail.get("pred")),
                "gold": detail.get("references", item.get("gold")),
                "correct": False if failure else correct_of(detail),
                "prompt_tokens": prompt_tokens,
                "output_tokens": output_tokens,
                "finish_reason": finish_reason,
                "finish_reason_from": finish_from,
                "error": str(failure.get("error_info") or "request failed") if failure else None,
                **reasoning,
            }
        )
    return records


def time_points(db_dir: Path, item: dict):
    """The request's time points (seconds), from AISBench's numpy store; None if not stored."""
    import numpy

    ref = (
        (item.get("time_points") or {}).get("__db_ref__")
        if isinstance(item.get("time_points"), dict)
        else None
    )
    if ref is None or not item.get("db_name") or not (db_dir / item["db_name"]).exists():
        points = item.get("time_points")
        return list(points) if isinstance(points, list) else None
    with sqlite3.connect(db_dir / item["db_name"]) as db:
        row = db.execute("SELECT arr_blob FROM numpy_store WHERE id = ?", (ref,)).fetchone()
    return list(numpy.load(io.BytesIO(row[0]))) if row else None


def perf_records(folder: Path, tokens: Tokens, max_out_len: int) -> list:
    records = []
    for details in sorted((folder / "performances" / MODEL_ABBR).glob("*_details.jsonl")):
        subset = details.name[: -len("_details.jsonl")]
        for item in sorted(read_jsonl(details), key=lambda i: i.get("id", 0)):
            sent = item.get("input") or ""
            # Perf details hold the chat messages as sent ({"role", "content"}), not AISBench's prompt list.
            chat = isinstance(sent, list) and all(isinstance(m, dict) and "content" in m for m in sent)
            prompt, prompt_tokens = tokens.prompt(sent if chat else messages_of(sent))
            out = item.get("output_tokens")
            points = time_points(details.parent / "db_data", item) if item.get("success") else None
            timing = {}
            if points and len(points) >= 2:
                timing = {
                    "ttft_ms": round((points[1] - points[0]) * 1000, 3),
                    "tpot_ms": round((points[-1] - points[1]) / (out - 1) * 1000, 3)
                    if out and out > 1
                    else None,
                    "e2el_ms": round((points[-1] - points[0]) * 1000, 3),
                }
            records.append(
                {
                    "id": item.get("id"),
                    "subset": subset,
                    "prompt": prompt,
                    "output": item.get("prediction"),
                    "prediction": None,
                    "gold": None,
                    "correct": None,
                    "prompt_tokens": item.get("input_tokens") or prompt_tokens,
                    "output_tokens": out,
                    "finish_reason": None
                    if out is None
                    else ("length" if max_out_len and out >= max_out_len else "stop"),
                    "error": None if item.get("success") else str(item.get("error_info") or "request failed"),
                    **timing,
                }
            )
    return records


def build(
    tokenizer_path: str,
    work_dir: Path,
    requests_file: Path,
    out_file: Path,
    max_out_len: int,
    repeats: int = 1,
) -> int:
    folder = newest_output_folder(work_dir)
    subsets = sorted(
        {
            p.name[: -len(".jsonl")].removesuffix("_failed")
            for p in (folder / "predictions" / MODEL_ABBR).glob("*.jsonl")
        }
    )
    tokens = Tokens(tokenizer_path)
    answers = Answers(requests_file, repeats)
    records = [
        r for subset in subsets for r in subset_records(folder, subset, tokens, max_out_len, answers, repeats)
    ]
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    for record in perf_records(folder, tokens, max_out_len):
        lines.append(json.dumps(record, ensure_ascii=False))
    partial = out_file.with_name(out_file.name + ".partial")
    partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(partial, out_file)
    return len(lines)


def main(argv=None) -> int:
    warnings.filterwarnings("ignore")
    args = (argv or sys.argv[1:])[:6]
    tokenizer_path, work_dir, requests_file, out_file, max_out_len = args[:5]
    repeats = int(args[5]) if len(args) > 5 else 1
    try:
        count = build(
            tokenizer_path,
            Path(work_dir),
            Path(requests_file),
            Path(out_file),
            int(max_out_len or 0),
            repeats,
        )
    except Exception as error:  # noqa: BLE001 - reported to the runner, which records it
        print(json.dumps({"error": f"{type(error).__name__}: {str(error)[:300]}"}))
        return 1
    print(json.dumps({"samples": count}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
