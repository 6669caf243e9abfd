"""A stand-in for `vllm serve` that answers each question with a program from a script, for tests that
need answers the tiny model cannot write (e.g. hostile code, to prove the sandbox holds it).

    scripted_engine.py MODEL --port N --max-model-len L ...
FAKE_ENGINE_ANSWERS: a JSON file {text in the question: the answer}; a question matching none is answered
"?". Each request body is appended to FAKE_ENGINE_REQUESTS (a file), when set.
"""

import json
import os
import sys
from http.server import ThreadingHTTPServer

from stand_in import StandInHandler  # beside this script

argv = sys.argv[1:]
port = int(argv[argv.index("--port") + 1])
max_model_len = int(argv[argv.index("--max-model-len") + 1])
served = argv[argv.index("--served-model-name") + 1] if "--served-model-name" in argv else "scripted"
with open(os.environ["FAKE_ENGINE_ANSWERS"]) as handle:
    ANSWERS = json.load(handle)


class Handler(StandInHandler):
    served_model, max_model_len, version = served, max_model_len, "0.0.0-scripted-stand-in"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if os.environ.get("FAKE_ENGINE_REQUESTS"):
            with open(os.environ["FAKE_ENGINE_REQUESTS"], "a") as handle:
                handle.write(json.dumps(body) + "\n")
        question = body["messages"][-1]["content"]
        answer = next((a for text, a in ANSWERS.items() if text in question), "?")
        usage = {"prompt_tokens": 50, "completion_tokens": len(answer) // 3 + 1}
        usage["total_tokens"] = 50 + usage["completion_tokens"]
        choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
        self._json(
            200,
            {"id": "x", "object": "chat.completion", "model": served, "choices": [choice], "usage": usage},
        )


print(f"scripted_engine: on port {port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
