"""The sandbox every program a model wrote runs in when a dataset is scored by running it (bubblewrap).

Inside: a new network namespace with no interface but its own loopback (nothing outside is reachable), a
new PID, IPC and UTS namespace, no further user namespaces, a read-only view of /usr and of the evaluator's
environment (its venv and the interpreter's installation) and nothing else of the host's files (no home
folder, no run folder, no request cache), a private writable /tmp of bounded size, an empty environment (no
secrets), a user without capabilities, and limits on processes, memory, open files, file size and wall
time. The program ends with its sandbox: one whose first process exits (or is killed at the wall-time
limit) takes every process inside with it.

Run as root, bwrap builds the sandbox with root's privileges; the program is dropped to a uid of its own
(100000 + the id of the thread that starts it, so that sandboxes side by side do not share RLIMIT_NPROC,
which the kernel does not apply to root at all), then a second, unprivileged bwrap forbids new user
namespaces. Run as another user, bwrap needs unprivileged user namespaces and maps that user to nobody.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from bench_app.common.errors import UserError

# evaluator.sandbox: auto sandboxes every dataset whose scoring runs the model's code; off runs it as is.
SANDBOX_MODES = ("auto", "off")
NOBODY = 65534
# Run as root, the program's uid: this plus the id of the evaluator thread that starts it (one program at a
# time per thread; a thread's id is a pid no other live thread or process has), put in place of UID_MARK on
# its command line by whoever starts it.
UID_BASE = 100000
UID_MARK = "@uid@"
# The variable sitecustomize.py (evaluators/overlay) reads: {"argv": the command line a program is started
# under, "uid_mark": UID_MARK, "uid_base": UID_BASE} (the evaluator's environment cannot import this module).
SANDBOX_VARIABLE = "BENCH_APP_SANDBOX"


@dataclass
class SandboxLimits:
    """What one sandboxed program may use (evaluator.sandbox_limits)."""

    processes: int = 64  # RLIMIT_NPROC of the sandbox's user: a fork bomb stops here
    memory_mb: int = 2048  # RLIMIT_AS of each process
    open_files: int = 256  # RLIMIT_NOFILE
    file_size_mb: int = 64  # RLIMIT_FSIZE: the largest file it may write, its output included
    tmp_mb: int = 256  # the size of its private /tmp
    # Killed after this many seconds, with everything it started. AISBench gives a LiveCodeBench program
    # (timeout + 1) x tests + 5 s (timeout: 500 s per test in its stock config), and each test its timeout.
    wall_s: int = 600


def for_process(argv: Sequence[str], pid: int) -> List[str]:
    """The sandbox's command line as the thread (or single-threaded process) `pid` starts a program with it
    (its uid, run as root)."""
    return [arg.replace(UID_MARK, str(UID_BASE + pid)) for arg in argv]


def read_only_folders(python: str) -> List[Path]:
    """The evaluator's environment as the sandbox sees it: the venv of `python` and the installation of
    the interpreter it links to (both outside /usr, which is always there)."""
    venv = Path(os.path.abspath(python)).parent.parent
    real = Path(os.path.realpath(python)).parent.parent
    folders = []
    for folder in (venv, real):
        if folder != Path("/usr") and not folder.is_relative_to("/usr") and folder not in folders:
            folders.append(folder)
    return folders


def sandbox_argv(tool: str, limits: SandboxLimits, read_only: Sequence[Path], as_root: bool) -> List[str]:
    """The command line that runs the program appended to it in the sandbox."""
    argv = [tool, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    no_userns = ["--unshare-user", "--disable-userns"]
    if not as_root:
        argv += [*no_userns, "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
    argv += ["--die-with-parent", "--new-session", "--clearenv"]
    argv += ["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp", "--setenv", "LANG", "C.UTF-8"]
    # One thread each: threads count as processes against the process limit.
    for threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        argv += ["--setenv", threads, "1"]
    argv += ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):  # merged /usr: links into it
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    tmp_bytes = str(int(limits.tmp_mb) * 1024 * 1024)
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", tmp_bytes, "--tmpfs", "/tmp"]
    made = {Path("/"), Path("/tmp")}
    for folder in read_only:
        for parent in reversed(folder.parents):  # bwrap would make them 0700: unreadable for nobody
            if parent not in made:
                argv += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        argv += ["--ro-bind", str(folder), str(folder)]
    argv += ["--chdir", "/tmp", "--"]
    # timeout forks the program before it drops to nobody and takes its limits: that fork is not counted.
    argv += ["timeout", "--signal=KILL", f"{int(limits.wall_s)}s"]
    if as_root:
        argv += ["setpriv", f"--reuid={UID_MARK}", f"--regid={UID_MARK}", "--clear-groups"]
        argv += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        argv += [tool, *no_userns, "--uid", UID_MARK, "--gid", UID_MARK, "--dev-bind", "/", "/", "--"]
    mib = 1024 * 1024
    argv += [
        "prlimit",
        f"--nproc={int(limits.processes)}",
        f"--as={int(limits.memory_mb) * mib}",
        f"--nofile={int(limits.open_files)}",
        f"--fsize={int(limits.file_size_mb) * mib}",
        "--core=0",
        "--",
    ]
    return argv


@dataclass
class Sandbox:
    tool: str
    limits: SandboxLimits
    python: str  # the evaluator environment's interpreter (what the programs run with)

    def argv(self) -> List[str]:
        tool = shutil.which(self.tool) or self.tool
        python = shutil.which(self.python) or self.python
        return sandbox_argv(tool, self.limits, read_only_folders(python), os.geteuid() == 0)

    def variable(self) -> str:
        """SANDBOX_VARIABLE's value: what sitecustomize.py starts each program under."""
        return json.dumps({"argv": self.argv(), "uid_mark": UID_MARK, "uid_base": UID_BASE})

    def version(self) -> str:
        try:
            done = subprocess.run([self.tool, "--version"], capture_output=True, text=True, timeout=10)
        except OSError:
            return "unknown"
        return done.stdout.strip() or "unknown"

    def problem(self) -> Optional[str]:
        """Why the sandbox cannot start here (None: it starts): the environment's python run inside it."""
        if shutil.which(self.tool) is None:
            return f"{self.tool!r} (evaluator.sandbox_tool) is not installed or not on PATH"
        if not os.path.isabs(shutil.which(self.python) or self.python):
            return f"the evaluator's python {self.python!r} is not a path, so its environment is unknown"
        uid = str(UID_BASE + os.getpid()) if os.geteuid() == 0 else str(NOBODY)
        probe = [*for_process(self.argv(), os.getpid()), self.python, "-c", "import os; print(os.getuid())"]
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as error:
            return f"{self.tool} did not run: {error}"
        if done.returncode != 0 or done.stdout.strip() != uid:
            said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
            return f"{self.tool} could not start the evaluator's python inside it: {said}"
        return None

    def record(self, datasets: Dict[str, str]) -> Dict[str, Any]:
        """metadata.yaml `sandbox`: the tool, its version, the limits and the datasets it scores."""
        return {
            "mode": "auto",
            "tool": shutil.which(self.tool) or self.tool,
            "version": self.version(),
            "user": f"{UID_BASE} + the starting thread's id" if os.geteuid() == 0 else NOBODY,
            "network": "none",
            "limits": asdict(self.limits),
            "datasets": dict(datasets),
        }


def sandbox_off_warning(record: Optional[Dict[str, Any]]) -> List[str]:
    """The warning of a run whose datasets run the model's code with evaluator.sandbox=off."""
    if not record or record["mode"] != "off":
        return []
    return [
        f"evaluator.sandbox=off: {', '.join(record['datasets'])} run the code the model wrote without a "
        "sandbox, as this user, with the network, the home folder and the environment's secrets in reach"
    ]


def refusal(datasets: Dict[str, str], problem: str) -> UserError:
    names = ", ".join(f"{short} ({evaluator})" for short, evaluator in datasets.items())
    return UserError(
        f"{names} scored by running the code the model wrote, and bench_app runs it only inside a sandbox "
        f"(bubblewrap), which cannot start here: {problem}. Install it (Debian/Ubuntu: `apt-get install "
        "bubblewrap`, which `make setup` does as root), or, when not root, allow unprivileged user "
        "namespaces (sysctl user.max_user_namespaces > 0; on Ubuntu also "
        "kernel.apparmor_restrict_unprivileged_userns=0); evaluator.sandbox_tool names another bwrap. "
        "Only on a machine you can afford to lose: evaluator.sandbox=off runs the model's code unsandboxed "
        "(recorded in the snapshot and warned)."
    )
