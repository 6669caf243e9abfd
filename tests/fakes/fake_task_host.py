"""A deliberately simple stand-in for a task host (bench_app/evaluators/task_host.py protocol), to
inject faults the real AISBench host cannot be made to show on demand. The first word of each
request's argv says what to do: `exit N` answers exit code N; `die` ends the host without an
answer; `hang` starts a child (written to the request's log) and never answers."""

import json
import os
import subprocess
import sys
import time

answers = sys.stdout
print(json.dumps({"ready": True}), file=answers, flush=True)
for line in sys.stdin:
    request = json.loads(line)
    action = request["argv"][0]
    if action == "exit":
        with open(request["log"], "w") as log:
            log.write(f"ran in {request['cwd']} with MARK={request['env'].get('MARK')}\n")
        print(json.dumps({"exit": int(request["argv"][1])}), file=answers, flush=True)
    elif action == "die":
        os._exit(3)
    elif action == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        with open(request["log"], "w") as log:
            log.write(f"child {child.pid}\n")
        time.sleep(600)
