"""A stand-in for `vllm serve` whose answers depend on the load, as a batch-variant kernel's can: it answers
the "Sam has A marbles and finds B more" questions (tests/test_load_levels.py writes them) right when it
is serving that request alone, and one too many whenever another request is in flight beside it.

    load_engine.py MODEL --port N --max-model-len L ...
FAKE_ENGINE_DELAY_S: seconds each answer takes (default 0.3), so that concurrent requests overlap.
"""

import json
import os
import re
import sys
import threading
import time
from http.server import ThreadingHTTPServer

from stand_in import StandInHandler  # beside this script

argv = sys.argv[1:]
port = int(argv[argv.index("--port") + 1])
max_model_len = int(argv[argv.index("--max-model-len") + 1])
served = argv[argv.index("--served-model-name") + 1] if "--served-model-name" in argv else "load-sensitive"
lock = threading.Lock()
in_flight = 0


class Handler(StandInHandler):
    served_model, max_model_len, version = served, max_model_len, "0.0.0-load-stand-in"

    def do_POST(self):
        global in_flight
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with lock:
            in_flight += 1
            crowded = in_flight > 1
        time.sleep(float(os.environ.get("FAKE_ENGINE_DELAY_S") or 0.3))
        with lock:
            crowded = crowded or in_flight > 1
            in_flight -= 1
        found = re.search(r"Sam has (\d+) marbles and finds (\d+) more", body["messages"][-1]["content"])
        total = int(found[1]) + int(found[2]) if found else 0
        answer = f"{found[1]} + {found[2]} = {total + crowded}. answer:{total + crowded}" if found else "?"
        tokens = len(answer.split())
        self._json(
            200,
            {
                "id": "x",
                "object": "chat.completion",
                "model": served,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 40, "completion_tokens": tokens, "total_tokens": 40 + tokens},
            },
        )


print(f"load_engine on port {port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
