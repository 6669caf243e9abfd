"""A FAST STAND-IN for `vllm serve`, for benchmarks of bench_app's own overhead only (no model runs here).

    stand_in_server.py MODEL --port N --max-model-len L [--served-model-name NAME] [...]

Answers every chat completion after STAND_IN_DELAY_MS (default 200) with STAND_IN_REASONING_CHARS (default
8,000) characters of reasoning in `reasoning_content`, as vLLM's reasoning parser returns a Qwen3 answer,
then an answer AISBench can score ("The answer is 7." / "ANSWER: A"; a prompt asking for \\boxed{}, as
AIME's does: the question's first integer in \\boxed{}, off by one for about one (question, seed) in four, so
the request's seed changes the score). Serves the endpoints bench_app reads before a run (/health,
/v1/models, /version, /metrics). aiohttp on uvloop: the server is never the limit.

STAND_IN_MAX_CONCURRENT=S (default 0: no limit) answers at most S requests at once, as a GPU server's batch
does: the others wait their turn. STAND_IN_STATS_DIR=DIR writes DIR/<pid>.json after each answer: requests
answered, most in flight at once, most waiting for a slot.
"""

import asyncio
import hashlib
import json
import os
import re
import sys

import uvloop
from aiohttp import web

argv = sys.argv[1:]
port = int(argv[argv.index("--port") + 1])
max_model_len = int(argv[argv.index("--max-model-len") + 1])
served = argv[argv.index("--served-model-name") + 1] if "--served-model-name" in argv else "stand-in"
delay_s = float(os.environ.get("STAND_IN_DELAY_MS", "200")) / 1000
reasoning_chars = int(os.environ.get("STAND_IN_REASONING_CHARS", "8000"))
max_concurrent = int(os.environ.get("STAND_IN_MAX_CONCURRENT", "0"))
stats_dir = os.environ.get("STAND_IN_STATS_DIR")
STATS = {"requests": 0, "max_in_flight": 0, "max_waiting": 0, "max_concurrent": max_concurrent}
LOAD = {"in_flight": 0, "waiting": 0}
SENTENCE = "Let me work through this step by step, checking each number against the question again. "
FINISHED = {"stop": 0}
WORDS = SENTENCE.split()


def reasoning_for(question: str) -> str:
    """Text that differs per question (so compression is not flattered by one repeated answer)."""
    seed = hashlib.sha256(question.encode()).hexdigest()
    words = [f"{WORDS[i % len(WORDS)]}{seed[i % 64]}" for i in range(reasoning_chars // 4 + 1)]
    return " ".join(words)[:reasoning_chars]


def answer_for(question: str, seed) -> str:
    if "\\boxed" in question:  # AIME's prompt: an integer in \boxed{}, right or wrong by the seed
        number = re.search(r"\d+", question)
        value = int(number.group()) if number else 7
        if hashlib.sha256(f"{question}|{seed}".encode()).digest()[0] % 4 == 0:
            value += 1
        return f"So the final answer is \\boxed{{{value}}}."
    return "ANSWER: A" if "A." in question or "(A)" in question or "A:" in question else "The answer is 7."


def answered() -> None:
    FINISHED["stop"] += 1
    STATS["requests"] += 1
    if stats_dir:
        path = os.path.join(stats_dir, f"{os.getpid()}.json")
        with open(path + ".tmp", "w") as out:
            json.dump(STATS, out)
        os.replace(path + ".tmp", path)


async def generate() -> None:
    """delay_s per answer, at most max_concurrent at once (the others wait for a slot, as in a batch)."""
    if SLOTS is None:
        await asyncio.sleep(delay_s)
        return
    queued = SLOTS.locked()  # every slot taken: this one waits
    if queued:
        LOAD["waiting"] += 1
        STATS["max_waiting"] = max(STATS["max_waiting"], LOAD["waiting"])
    async with SLOTS:
        if queued:
            LOAD["waiting"] -= 1
        LOAD["in_flight"] += 1
        STATS["max_in_flight"] = max(STATS["max_in_flight"], LOAD["in_flight"])
        try:
            await asyncio.sleep(delay_s)
        finally:
            LOAD["in_flight"] -= 1


async def chat(request: web.Request) -> web.Response:
    body = await request.json()
    await generate()
    question = body["messages"][-1]["content"]
    answer = answer_for(question, body.get("seed"))
    answered()
    message = {"role": "assistant", "content": answer, "reasoning_content": reasoning_for(question)}
    tokens = reasoning_chars // 4 + 4
    return web.json_response(
        {
            "id": "stand-in",
            "object": "chat.completion",
            "model": served,
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": tokens, "total_tokens": 100 + tokens},
        }
    )


async def health(request: web.Request) -> web.Response:
    return web.json_response({})


async def models(request: web.Request) -> web.Response:
    return web.json_response({"data": [{"id": served, "max_model_len": max_model_len}]})


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": "0.0.0-fast-stand-in"})


async def metrics(request: web.Request) -> web.Response:
    text = "".join(
        f'vllm:request_success_total{{engine="0",finished_reason="{reason}"}} {count}.0\n'
        for reason, count in FINISHED.items()
    )
    return web.Response(text=text)


SLOTS = asyncio.Semaphore(max_concurrent) if max_concurrent > 0 else None
app = web.Application(client_max_size=1 << 28)
app.router.add_post("/v1/chat/completions", chat)
app.router.add_get("/health", health)
app.router.add_get("/v1/models", models)
app.router.add_get("/version", version)
app.router.add_get("/metrics", metrics)
limit = f", at most {max_concurrent} at once" if max_concurrent > 0 else ""
print(f"stand_in_server: FAST STAND-IN (no model) on port {port}{limit}", flush=True)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=port, backlog=4096, access_log=None, print=None)
