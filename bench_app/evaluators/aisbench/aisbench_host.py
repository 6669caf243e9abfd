"""The AISBench task host; runs in the evaluator's environment (its python), one per engine group.

Importing AISBench costs ~9 s on a 2-core machine, and the `ais_bench` command pays it once for
itself and once more for every task process it starts: an inference and an evaluation task per
subset. This host imports AISBench once, then runs each `ais_bench` command line it is sent (one JSON
request a line on stdin) in a fork of itself, where AISBench's LocalRunner runs its inference and
evaluation tasks in that process instead of starting a new Python for each. Everything else is
AISBench's own code path: its argument parser, config loading, partitioner, the tasks as their
`__main__` runs them (config dumped and read back), summarizer, output folders and log files. The
task file and the command line are the ones `ais_bench` runs alone (reproduce.sh does).

Request: {"program": "main" | "samples", "argv": [...], "cwd": "...", "env": {...}, "log": "..."}
("samples": aisbench_samples.py, the dataset's per-sample records, with the tokenizer library already
imported); answer: {"exit": code} on the
protocol stream (the original stdout); before the first request, {"ready": true}.
"""

import importlib
import json
import os
import queue
import sys
import threading
import time
import traceback
import types
import uuid
from contextlib import contextmanager

if __name__ == "__main__":
    # The protocol stream is the original stdout; anything else printed (AISBench's imports included)
    # goes to stderr, the host's log.
    _answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

# Preload everything `ais_bench` imports, lazily or not, before the first fork.
import aisbench_samples  # noqa: E402 - next to this script (per-sample records)
from ais_bench.benchmark.cli import workers  # noqa: E402,F401
from ais_bench.benchmark.cli.config_manager import ConfigManager  # noqa: E402,F401
from ais_bench.benchmark.cli.main import main as ais_bench_main  # noqa: E402
from ais_bench.benchmark.openicl.icl_inferencer import icl_base_api_inferencer  # noqa: E402
from ais_bench.benchmark.openicl.icl_inferencer.icl_base_api_inferencer import StatusCounter  # noqa: E402
from ais_bench.benchmark.runners import local as runners_local  # noqa: E402
from ais_bench.benchmark.runners.local import LocalRunner  # noqa: E402
from ais_bench.benchmark.tasks import (  # noqa: E402
    OpenICLApiInferTask,
    OpenICLEvalTask,
    openicl_api_infer,  # noqa: E402
)
from ais_bench.benchmark.tasks import utils as task_utils  # noqa: E402
from ais_bench.benchmark.tasks.base import TaskStateManager  # noqa: E402
from ais_bench.benchmark.utils.core.abbr import task_abbr_from_cfg  # noqa: E402
from ais_bench.benchmark.utils.file import write_status  # noqa: E402
from ais_bench.benchmark.utils.logging.error_codes import RUNNER_CODES  # noqa: E402
from mmengine.config import Config  # noqa: E402

try:
    from transformers import AutoTokenizer  # noqa: E402,F401 - what aisbench_samples loads the tokenizer with
except ImportError:
    pass

# The task types whose `__main__` this host reproduces; any other runs as AISBench starts it.
IN_PROCESS_TASKS = (OpenICLApiInferTask, OpenICLEvalTask)
# How often a task rewrites its state file and AISBench's monitor reads it (AISBench: 0.5 s each). Not
# shorter: the two do not lock the file, and a faster pace makes lost or half-read writes more likely.
STATE_REFRESH_S = 0.1
POLL_S = 0.02  # AISBench's polling of its workers' start-up and progress (0.1-1 s), made this short
_launch_in_subprocess = LocalRunner._launch


def final_state_file(status_dir: str, task_name: str) -> str:
    return os.path.join(status_dir, f"final_{task_name.replace('/', '_')}")


class HostTasksMonitor(runners_local.TasksMonitor):
    """AISBench's task monitor (LocalRunner waits for it after every stage), for tasks run in this
    process. It learns that a task ended from a state file that the task's thread rewrites and the
    monitor reads and empties, without a lock: a final "finish" can be lost. With a task process, the
    monitor then sees the process gone and stops waiting; a task run in this process never goes away,
    so it would wait forever. Each task's end is therefore also written once, atomically, to its own
    file (final_state_file), which this monitor reads too."""

    def __init__(self, task_names, output_path, is_debug=False, refresh_interval=0.3):
        super().__init__(task_names, output_path, is_debug, min(refresh_interval, STATE_REFRESH_S))

    def _refresh_task_state(self):
        super()._refresh_task_state()
        for task_name, state in self.tasks_state_map.items():
            if state.get("status") not in ("finish", "error", "killed"):
                try:
                    with open(final_state_file(self.tmp_file_path, task_name)) as handle:
                        state["status"] = handle.read().strip()
                    state.setdefault("start_time", time.time())
                except OSError:
                    pass


class HostTaskStateManager(TaskStateManager):
    """AISBench's task state poster, woken by the task's end: AISBench's sleeps a full refresh interval
    before it writes "finish" and exits, and the task waits for it. Other updates (progress, every
    POLL_S) are still written every refresh interval, not on each change (see STATE_REFRESH_S)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._ended = threading.Event()

    def update_task_state(self, task_state: dict):
        super().update_task_state(task_state)
        if task_state.get("status") in ("finish", "error"):
            self._ended.set()

    def _post_task_state(self):
        while True:  # AISBench's loop, with an interruptible wait
            write_status(self.tmp_file, self.task_state)
            if self.task_state.get("status") == "error":
                self.logger.warning("Task state is error, exit loop")
                break
            if self.task_state.get("status") == "finish":
                self.logger.info("Task state is finish, exit loop")
                break
            self._ended.wait(self.refresh_interval)


_init_status_counter, _stop_status_counter = StatusCounter.__init__, StatusCounter.stop


def status_counter_unbounded(self, batch_size: int = 0) -> None:
    """StatusCounter with an unbounded event queue. AISBench's holds batch_size * 5 events and its
    put_nowait raises queue.Full into the request itself when the counting thread falls behind: answers
    from the request cache come back within a millisecond, four events each, and on a busy machine a
    resumed run at batch 1 lost a request to it. The events only feed AISBench's progress counts."""
    _init_status_counter(self, batch_size)
    if self.status_queue is not None:
        self.status_queue = queue.Queue()


def stop_and_wake_status_counter(self) -> None:
    """StatusCounter.stop, and wake its thread, which waits up to 0.2 s on its queue before it looks at
    the stop flag; every inference worker joins it at its end. None is what an empty poll yields."""
    _stop_status_counter(self)
    if self.status_queue is not None:
        self.status_queue.put_nowait(None)


def shorten_polling() -> None:
    """AISBench's inference task polls its worker processes and their progress counters every second
    and their start-up every 0.1 s; its runner polls task states every 0.5 s; each loop is awaited at
    the end of a task or stage: ~2 s of idle wall time per subset, longer than inferring one prompt
    (the task state files are polled every STATE_REFRESH_S, see HostTasksMonitor).
    These intervals only decide how soon a state change is noticed, not what is sent or when (request
    pacing is TokenProducer's own schedule, untouched)."""
    for module in (task_utils, icl_base_api_inferencer):
        module.STATUS_REPORT_INTERVAL = POLL_S  # progress counters: the task's reader, each worker's writer
        module.SYNC_MAIN_PROCESS_INTERVAL = POLL_S  # workers' start-up handshake
    runners_local.TasksMonitor = HostTasksMonitor
    # The progress counter: its events never fail a request, and its thread is woken when it is stopped.
    StatusCounter.__init__, StatusCounter.stop = status_counter_unbounded, stop_and_wake_status_counter
    # The task's `while any worker alive: time.sleep(1)`: its module's only sleep.
    polling_time = types.SimpleNamespace(**vars(time))
    polling_time.sleep = lambda seconds: time.sleep(min(seconds, POLL_S))
    openicl_api_infer.time = polling_time


_one_task_at_a_time = threading.Lock()  # a task's output goes to its own log through fds 1 and 2


@contextmanager
def output_to(path):
    """Send fds 1 and 2 (and so every print, log handler and worker process) to `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (log, *saved):
            os.close(fd)


def run_task(task_type, cfg) -> int:
    """What the task module's `__main__` does, in this process; returns its exit code. Its end is also
    written to final_state_file (see HostTasksMonitor)."""
    status_dir, task_name = os.path.join(cfg["work_dir"], "status_tmp"), task_abbr_from_cfg(cfg)
    # The monitor process creates it too, but a task in this process may start first.
    os.makedirs(status_dir, exist_ok=True)
    code = _run_task(task_type, cfg, status_dir, task_name)
    final = final_state_file(status_dir, task_name)
    with open(final + ".tmp", "w") as handle:
        handle.write("finish" if code == 0 else "error")
    os.replace(final + ".tmp", final)
    return code


def _run_task(task_type, cfg, status_dir: str, task_name: str) -> int:
    state = HostTaskStateManager(
        tmp_path=status_dir,
        task_name=task_name,
        is_debug=cfg["cli_args"]["debug"],
        refresh_interval=STATE_REFRESH_S,
    )
    poster = threading.Thread(target=state.launch)
    poster.start()
    subdir = task_type.log_subdir
    state.update_task_state(
        {
            "status": "start",
            "process_id": os.getpid(),
            "task_log_path": os.path.join(subdir + "/", f"{task_abbr_from_cfg(cfg)}.out"),
        }
    )
    try:
        task_type(cfg).run(state)
    except BaseException:
        state.update_task_state({"status": "error"})
        poster.join()
        traceback.print_exc()
        return 1
    state.update_task_state({"status": "finish"})
    poster.join()
    return 0


def launch_in_process(self, task, gpu_ids, index):
    """LocalRunner._launch without the new Python: the task config dumped and read back as its
    subprocess would, the same log file."""
    if type(task) not in IN_PROCESS_TASKS or len(gpu_ids) > 0:
        return _launch_in_subprocess(self, task, gpu_ids, index)
    os.makedirs("tmp", exist_ok=True)
    param_file = os.path.join(os.getcwd(), "tmp", f"{uuid.uuid4()}_params.py")
    out_path = task.get_log_path(file_extension="out")
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with _one_task_at_a_time:
        try:
            # The same round trip as AISBench's, without formatting the file with yapf (1.3-2 s a task
            # on 2 cores); the config read back is the same (compared equal for sample_ceval's tasks).
            Config(task.cfg.to_dict(), filename=task.cfg.filename, format_python_code=False).dump(param_file)
            with output_to(out_path):
                code = run_task(type(task), Config.fromfile(param_file))
        finally:
            if not self.keep_tmp_file and os.path.exists(param_file):
                os.remove(param_file)
    if code != 0:  # as AISBench's own _launch says it (its logger takes an error code first)
        self.logger.error(RUNNER_CODES.TASK_FAILED, f"{task.name} failed with code {code}, see\n{out_path}")
    return task.name, code


def run_request(request) -> None:
    """In the fork: become `ais_bench ARGV` (or the samples script) run in CWD with ENV, output to LOG;
    never returns."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        # The user's own modules (evaluator.python_path): importable in this task as in its own process.
        sys.path[:0] = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
        importlib.invalidate_caches()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        if request.get("program") == "samples":
            code = aisbench_samples.main(request["argv"])
            return
        sys.argv = ["ais_bench", *request["argv"]]
        LocalRunner._launch = launch_in_process
        shorten_polling()
        try:
            returned = ais_bench_main()
            code = returned if isinstance(returned, int) else 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    print(json.dumps({"ready": True, "pid": os.getpid()}), file=_answers)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        child = os.fork()
        if child == 0:
            _answers.close()
            run_request(request)
        _, status = os.waitpid(child, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), file=_answers)


if __name__ == "__main__":
    serve()
