"""vLLM server lifecycle: start in its own process group, wait for /health, read back, stop the group.

Shaped like vLLM's own test fixture (RemoteOpenAIServer): subprocess + health polling + teardown; here
the whole process group is stopped (SIGTERM, wait, SIGKILL), because engine-core and tensor-parallel
workers can outlive a killed API server and keep holding the accelerator. Nothing is ever killed by name.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .processes import signal_group, tail

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "TRANSFORMERS_OFFLINE": "1"}


class EngineError(Exception):
    def __init__(self, reason: str, log_tail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


def client_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((socket.gethostbyname(client_host(host)), port))
        except OSError:
            return False
    return True


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((socket.gethostbyname(client_host(host)), 0))
        return probe.getsockname()[1]


def with_port(argv: List[str], port: int) -> List[str]:
    """The argv with its --port value replaced (the planned argv may carry 0 = automatic)."""
    argv = list(argv)
    if "--port" in argv:
        argv[argv.index("--port") + 1] = str(port)
    else:
        argv += ["--port", str(port)]
    return argv


def http_get_json(url: str, timeout: float = 5.0) -> Optional[dict]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read().decode() or "null")
    except (urllib.error.URLError, OSError, ValueError):
        return None


def health_status(url: str) -> Optional[int]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


class EngineServer:
    """One `vllm serve` process group."""

    def __init__(self, argv: List[str], host: str, port: int, env: Dict[str, str], log_file: Path,
                 start_timeout_s: float, stop_timeout_s: float):
        self.argv = with_port(argv, port)
        self.host = host
        self.port = port
        self.base_url = f"http://{client_host(host)}:{port}"
        self.env = env
        self.log_file = log_file
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.process: Optional[subprocess.Popen] = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            try:
                self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                                start_new_session=True)  # its own process group
            except OSError as error:
                raise EngineError(f"cannot start the engine command {self.argv[0]!r}: {error}") from None

    def death(self) -> Optional[str]:
        """None while the server process runs; otherwise how it ended."""
        if self.process is None:
            return "not started"
        code = self.process.poll()
        return None if code is None else f"engine exited with code {code}"

    def wait_ready(self, stop_reason: Callable[[], Optional[str]] = lambda: None) -> float:
        started = time.monotonic()
        while True:
            death = self.death()
            if death:
                raise EngineError(f"{death} before becoming ready", tail(self.log_file, 30))
            reason = stop_reason()
            if reason:
                raise EngineError(f"{reason} while the server was starting")
            if health_status(self.base_url + "/health") == 200:
                return time.monotonic() - started
            if time.monotonic() - started > self.start_timeout_s:
                raise EngineError(f"server not healthy after {self.start_timeout_s:.0f} s (execution.server_start_timeout_s)",
                                  tail(self.log_file, 30))
            time.sleep(1.0)

    def read_back(self) -> Dict[str, object]:
        """What the server really runs with: served model name, effective max_model_len, version."""
        models = http_get_json(self.base_url + "/v1/models") or {}
        version = http_get_json(self.base_url + "/version") or {}
        first = (models.get("data") or [{}])[0]
        return {"served_model": first.get("id"), "max_model_len": first.get("max_model_len"), "version": version.get("version")}

    def stop(self) -> None:
        """SIGTERM the group, wait, SIGKILL what is left, and verify nothing of the group survives."""
        if self.process is None:
            return
        pgid = self.process.pid
        signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while time.monotonic() < deadline and _group_alive(pgid):
            self.process.poll()
            time.sleep(0.2)
        if _group_alive(pgid):
            signal_group(pgid, signal.SIGKILL)
            for _ in range(50):
                self.process.poll()
                if not _group_alive(pgid):
                    break
                time.sleep(0.1)
        self.process.wait(timeout=10)
        if _group_alive(pgid):
            raise EngineError(f"processes of the server group {pgid} survived SIGKILL")



def _group_alive(pgid: int) -> bool:
    """True while any process of the group exists (zombies of other parents included)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # killpg(0) also succeeds for zombies; count only processes that are not zombies.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
