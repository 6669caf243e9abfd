"""A stand-in for `vllm serve` that answers the four sample GSM8K questions as a reasoning model would,
so that the real AISBench can be driven against answers a tiny model cannot give: thinking first, then
the answer, and one answer cut off inside its thinking (finish_reason length).

    reasoning_engine.py SHAPE MODEL --port N --max-model-len L ...
SHAPE: tags    the thinking inside the answer, <think>...</think> (no reasoning parser)
       parsed  the thinking apart, in reasoning_content (as vLLM's --reasoning-parser returns it)
Each request body is appended to FAKE_ENGINE_REQUESTS (a file), when set. With FAKE_ENGINE_DIE_AFTER=N and
FAKE_ENGINE_DIED_MARK=<file>, the server dies (exit 9, as an OOM kill) at its request N+1 unless that
file exists, which it writes first: it dies once, and serves every request after its restart.
FAKE_ENGINE_DELAY_S: seconds each answer takes (a slow model, for tests that stop a run in the middle).
/metrics counts the finished requests by finish reason, as vLLM's `vllm:request_success_total` does.
"""

import json
import os
import sys
import time
from http.server import ThreadingHTTPServer

from stand_in import StandInHandler  # beside this script

shape, argv = sys.argv[1], sys.argv[2:]
port = int(argv[argv.index("--port") + 1])
max_model_len = int(argv[argv.index("--max-model-len") + 1])
served = argv[argv.index("--served-model-name") + 1] if "--served-model-name" in argv else "reasoner"

# question -> (thinking, answer, finish_reason); gold 7, 30, 12, 180.
ANSWERS = {
    "Tom has 3 apples": ("Tom starts with 3 apples and buys 4: 3 + 4 = 7.", "answer:7", "stop"),
    # Cut while still thinking: the draft inside it is right, but no answer was ever given.
    "A box holds 6 eggs": (
        "6 eggs in each of 5 boxes, answer:30 maybe, let me check each box again",
        "",
        "length",
    ),
    "Anna had 20 dollars": ("A draft, answer:11? No: 20 - 8 = 12.", "answer:12", "stop"),
    "A train travels": ("60 km for 3 hours... I think 100.", "answer:100", "stop"),
}


ANSWERED = []
FINISHED = {}  # finish reason -> requests answered with it


class Handler(StandInHandler):
    served_model, max_model_len, version = served, max_model_len, "0.0.0-reasoning-stand-in"

    def do_GET(self):
        if self.path != "/metrics":
            return super().do_GET()
        text = "".join(
            f'vllm:request_success_total{{engine="0",finished_reason="{reason}"}} {count}.0\n'
            for reason, count in FINISHED.items()
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ANSWERED.append(body)
        mark = os.environ.get("FAKE_ENGINE_DIED_MARK")
        if mark and len(ANSWERED) > int(os.environ["FAKE_ENGINE_DIE_AFTER"]) and not os.path.exists(mark):
            open(mark, "w").close()
            os._exit(9)
        if os.environ.get("FAKE_ENGINE_REQUESTS"):
            with open(os.environ["FAKE_ENGINE_REQUESTS"], "a") as handle:
                handle.write(json.dumps(body) + "\n")
        time.sleep(float(os.environ.get("FAKE_ENGINE_DELAY_S") or 0))
        question = body["messages"][-1]["content"]
        thinking, answer, finish = next((v for k, v in ANSWERS.items() if k in question), ("?", "?", "stop"))
        if shape == "tags":
            closed = "</think>" if finish == "stop" else ""
            message = {"role": "assistant", "content": f"<think>{thinking}{closed}{answer}"}
        else:
            message = {"role": "assistant", "content": answer or None, "reasoning_content": thinking}
        FINISHED[finish] = FINISHED.get(finish, 0) + 1
        tokens = (len(thinking) + len(answer)) // 3 + 1  # about as many as a tokenizer makes of them
        usage = {"prompt_tokens": 50, "completion_tokens": tokens, "total_tokens": 50 + tokens}
        self._json(
            200,
            {
                "id": "x",
                "object": "chat.completion",
                "model": served,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            },
        )


print(f"reasoning_engine: {shape} on port {port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
