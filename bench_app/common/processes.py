"""Process groups: the only place bench_app starts and signals child processes.

Every engine server and evaluator runs as its own process group (its own session), with its output
in a log file. Stopping means: SIGTERM to the whole group, wait, SIGKILL what is left, and verify
that no process of the group survives. Grandchildren (vLLM's engine core and workers, AISBench's
task processes) belong to the group, so they are stopped too. Nothing is ever found or killed by name.

Crash safety: next to every group runs a watchdog (`python -m bench_app.common.processes`, in a
session of its own) that stops the group once the process that started it is gone, however it died (SIGKILL,
the OOM killer, a closed terminal), since then nothing else would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple


def run_command(argv: List[str], timeout_s: float = 60.0, cwd: Optional[Path] = None) -> Tuple[int, str, str]:
    """A short command run to its end (exit code, stdout, stderr); 127 when it cannot be run at all."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as error:
        return 127, "", str(error)
    return done.returncode, done.stdout, done.stderr


def signal_group(pgid: int, sig: int) -> None:
    """Signal a process group we started."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# /proc/<pid>/stat after the command name: psutil gives start times but not process groups, and
# metadata.yaml records the start time as the kernel writes it (clock ticks), so /proc is read here.
_STATE, _PGRP, _START_TIME = 0, 2, 19  # fields 3, 5 and 22 of proc(5), counted after ")"


def _stat(pid: str) -> Optional[List[str]]:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def group_alive(pgid: int) -> bool:
    """True while any process of the group exists that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds for zombies of other parents; count only live processes.
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(entry.name)
        if fields and int(fields[_PGRP]) == pgid and fields[_STATE] != "Z":
            return True
    return False


def process_start_time(pid: int) -> Optional[str]:
    """The kernel's start time of a process: tells a reused pid apart."""
    fields = _stat(str(pid))
    return fields[_START_TIME] if fields else None


def process_alive(pid: int, start_time: Optional[str] = None) -> bool:
    """True while `pid` runs (not a zombie) and, when given, is still the process started at start_time."""
    fields = _stat(str(pid))
    if not fields or fields[_STATE] == "Z":
        return False
    return start_time is None or fields[_START_TIME] == start_time


def watch(
    owner_pid: int, owner_start: Optional[str], pgid: int, grace_s: float = 5.0, poll_s: float = 0.5
) -> None:
    """Stop process group `pgid` once its owner (the runner) is gone, however it died (SIGKILL, OOM, a
    closed terminal); return when the group has ended on its own."""
    while group_alive(pgid):
        if not process_alive(owner_pid, owner_start):
            signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and group_alive(pgid):
                time.sleep(0.2)
            signal_group(pgid, signal.SIGKILL)
            return
        time.sleep(poll_s)


class ProcessGroup:
    """One command in its own process group, stdout and stderr appended to `log_file`; with
    `pipes`, stdin and stdout are pipes to the caller instead (`process.stdin`, `process.stdout`) and
    only stderr goes to the log."""

    def __init__(
        self,
        argv: List[str],
        log_file: Path,
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[Path] = None,
        append: bool = True,
        pipes: bool = False,
    ):
        self.argv = list(argv)
        self.pipes = pipes
        self.log_file = log_file
        self.env = env
        self.cwd = cwd
        self.append = append
        self.process: Optional[subprocess.Popen] = None
        self.watchdog: Optional[subprocess.Popen] = None

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid if self.process else None

    def start(self) -> None:
        """Start the command; raises OSError when it cannot be executed at all."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab" if self.append else "wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if self.pipes else None,
                stdout=subprocess.PIPE if self.pipes else log,
                stderr=log if self.pipes else subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        owner = os.getpid()
        self.watchdog = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench_app.common.processes",
                str(owner),
                process_start_time(owner) or "?",
                str(self.process.pid),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives the runner's own group (a closed terminal, Ctrl-C)
        )

    def exit_code(self) -> Optional[int]:
        """None while the leader runs (or was never started); its exit code once it has ended."""
        return self.process.poll() if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float = 10.0, kill_wait_s: float = 5.0) -> bool:
        """SIGTERM the group, wait up to grace_s, SIGKILL what is left; True when nothing survives."""
        if self.process is None:
            return True
        pgid = self.process.pid
        signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and group_alive(pgid):
            self.process.poll()  # reap the leader so it does not count as alive
            time.sleep(0.2)
        if group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + kill_wait_s
            while time.monotonic() < deadline and group_alive(pgid):
                self.process.poll()
                time.sleep(0.1)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:  # a broken pipe to a process that is gone
                    pass
        if self.watchdog is not None:  # its group is gone: it has nothing left to guard
            self.watchdog.kill()
            self.watchdog.wait()
        return not group_alive(pgid)


if __name__ == "__main__":  # the watchdog: python -m bench_app.common.processes OWNER_PID OWNER_START PGID
    watch(int(sys.argv[1]), None if sys.argv[2] == "?" else sys.argv[2], int(sys.argv[3]))
