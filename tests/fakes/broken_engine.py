"""A deliberately broken stand-in for `vllm serve`, used only to inject faults in tests.

    broken_engine.py MODE MODEL --port N --max-model-len L ...
MODE: exit_at_start   prints an error and exits 3
      never_healthy   listens, but /health always answers 503
      healthy         answers /health, /v1/models, /version; every completion request gets HTTP 500
      dies_on_request answers like `healthy` until the first completion request, then the process exits
      never_answers   answers like `healthy`, but a completion request is accepted and never answered
It never produces a passing evaluation. FAKE_ENGINE_PIDFILE receives its pid (and its child's);
FAKE_ENGINE_ENVFILE a line `<start time> <CUDA_VISIBLE_DEVICES>` (what the runner exposed to it).
"""

import os
import sys
import time
from http.server import ThreadingHTTPServer

from stand_in import StandInHandler  # beside this script

mode, argv = sys.argv[1], sys.argv[2:]
port = int(argv[argv.index("--port") + 1])
max_model_len = int(argv[argv.index("--max-model-len") + 1]) if "--max-model-len" in argv else 2048
pidfile = os.environ.get("FAKE_ENGINE_PIDFILE")
if os.environ.get("FAKE_ENGINE_ENVFILE"):
    with open(os.environ["FAKE_ENGINE_ENVFILE"], "a") as handle:
        handle.write(f"{time.time():.3f} {os.environ.get('CUDA_VISIBLE_DEVICES', '-')}\n")

# A child process in the same group, like vLLM's engine-core: the runner must stop it too.
child = os.fork()
if child == 0:
    while True:
        time.sleep(1)
if pidfile:
    with open(pidfile, "a") as handle:
        handle.write(f"{os.getpid()}\n{child}\n")

if mode == "exit_at_start":
    print("broken_engine: simulated start failure", flush=True)
    os.kill(child, 9)
    sys.exit(3)


class Handler(StandInHandler):
    served_model, max_model_len, version = "broken", max_model_len, "0.0.0-broken"
    healthy = mode != "never_healthy"

    def do_POST(self):
        if mode == "dies_on_request":
            os.kill(child, 9)
            os._exit(7)
        if mode == "never_answers":
            time.sleep(3600)
        self._json(500, {"error": "broken engine"})


print(f"broken_engine: {mode} on port {port}", flush=True)
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
