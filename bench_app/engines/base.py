"""The engine interface: effective engine args -> argv and environment; a server's whole lifecycle.

An engine is a dataclass whose fields are its settings (the keys of conf/engine/<option>.yaml besides
`_target_`), built by bench_app.config.components (OmegaConf.to_object of the typed merge). Shaped
like vLLM's own test fixture (RemoteOpenAIServer): EngineServer starts the command, polls a health URL
while watching the process, reads back what the server really runs, and stops the whole process group.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Tuple

from bench_app.common.errors import EngineError
from bench_app.common.files import tail
from bench_app.common.net import client_host, free_port, http_status
from bench_app.common.processes import ProcessGroup

# Never reach a model hub or phone home from a benchmark run; what is not local fails loudly.
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1"}


@dataclass
class ServerFacts:
    """What a running server reports about itself (compared with the plan before evaluating)."""

    served_model: Optional[str] = None
    max_model_len: Optional[int] = None
    version: Optional[str] = None


@dataclass
class Engine(ABC):
    """Base of the engine components. Subclasses add their own settings as dataclass fields."""

    # The command that starts the server; the engine argv is appended.
    command: List[str]
    # Extra environment variables of the server process.
    env: Dict[str, str] = field(default_factory=dict)
    # Variable that exposes leased devices to the server (CUDA_VISIBLE_DEVICES, ASCEND_RT_VISIBLE_DEVICES);
    # null for an engine without a device pool (vLLM's CPU build).
    device_visibility_env: Optional[str] = None
    # Variable that binds a server's threads to the cores of its CPU slot (execution.cpu_cores_per_server);
    # null: the engine cannot be bound.
    cpu_binding_env: Optional[str] = None

    # Short name used in records (metadata versions `<name>_server`) and a label for people.
    name: ClassVar[str] = "engine"
    label: ClassVar[str] = "engine"
    # Reported versions: key in metadata.yaml `versions` -> distribution names tried in the engine env.
    version_packages: ClassVar[Dict[str, Tuple[str, ...]]] = {}
    health_path: ClassVar[str] = "/health"
    # False for an engine whose server runs already (engine=external): no lease, no start, no stop.
    starts_server: ClassVar[bool] = True

    @abstractmethod
    def argv(self, engine_args: Mapping[str, Any], where: str) -> List[str]:
        """The full command line that serves these effective engine args (pure; raises UserError)."""

    @abstractmethod
    def argv_with_port(self, argv: List[str], port: int) -> List[str]:
        """The argv with the port actually leased (the plan may say 0 = automatic)."""

    def launch_details(self, engine_args: Mapping[str, Any], where: str) -> Dict[str, Any]:
        """Derived launch facts worth recording next to the argv (e.g. translated overrides)."""
        return {}

    def launch_problems(self, engine_args: Mapping[str, Any], where: str) -> List[str]:
        """What would make the server run other than planned (a dry run shows them, a run refuses)."""
        return []

    def planned_args(self, engine_args: Dict[str, Any]) -> Dict[str, Any]:
        """At planning: the engine args as the server will have them (a running server's own values)."""
        return engine_args

    def cache_identity(self, engine_args: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        """What the request cache keys this engine's answers on; None: the model files and engine args
        (bench_app.run.planning.identity)."""
        return None

    def headers(self) -> Dict[str, str]:
        """Headers every request to the server needs (e.g. an API key); never written to outputs."""
        return {}

    def environment(self, base: Mapping[str, str]) -> Dict[str, str]:
        env = dict(base)
        env.update(OFFLINE_ENV)
        env.update({k: str(v) for k, v in self.env.items()})
        return env

    def read_back(self, base_url: str) -> ServerFacts:
        """Ask the running server what it serves; None fields when it does not say."""
        return ServerFacts()

    def request_counters(self, base_url: str) -> Dict[str, float]:
        """Server-side totals of finished requests by reason (e.g. {"length": 3, "stop": 5}); {} when the
        server does not report them. Differences around one dataset tell how its requests ended."""
        return {}

    def serve(
        self,
        engine_args: Mapping[str, Any],
        log_file: Path,
        start_timeout_s: float = 600.0,
        stop_timeout_s: float = 30.0,
    ) -> EngineServer:
        """A server of any engine args on a free port of their host (127.0.0.1 unless they say), not started:
        `with engine.serve(args, log) as server:` starts it, waits until healthy and stops it at the end."""
        args = {"host": "127.0.0.1", **engine_args}
        args["port"] = args.get("port") or free_port(str(args["host"]))
        env = self.environment(os.environ)
        argv = self.argv(args, "engine")
        return self.server(argv, args["host"], args["port"], env, log_file, start_timeout_s, stop_timeout_s)

    def server(
        self,
        argv: List[str],
        host: str,
        port: int,
        env: Dict[str, str],
        log_file: Path,
        start_timeout_s: float,
        stop_timeout_s: float,
    ) -> EngineServer:
        return EngineServer(
            self, self.argv_with_port(argv, port), host, port, env, log_file, start_timeout_s, stop_timeout_s
        )


class EngineServer:
    """One server process group: start, wait until healthy, read back, stop. As a context manager (in the
    manner of vLLM's tests/utils.py RemoteOpenAIServer): started and healthy inside, stopped after."""

    def __init__(
        self,
        engine: Engine,
        argv: List[str],
        host: str,
        port: int,
        env: Dict[str, str],
        log_file: Path,
        start_timeout_s: float,
        stop_timeout_s: float,
    ):
        self.engine = engine
        self.argv = argv
        self.host = host
        self.port = port
        self.base_url = f"http://{client_host(host)}:{port}"
        self.log_file = log_file
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.group = ProcessGroup(argv, log_file, env=env)

    def __enter__(self) -> EngineServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        try:
            self.group.start()
        except OSError as error:
            raise EngineError(f"cannot start the engine command {self.argv[0]!r}: {error}") from None

    def death(self) -> Optional[str]:
        """None while the server process runs; otherwise how it ended."""
        if self.group.process is None:
            return "not started"
        code = self.group.exit_code()
        return None if code is None else f"engine exited with code {code}"

    def is_healthy(self) -> bool:
        return http_status(self.base_url + self.engine.health_path) == 200

    def wait_ready(self, stop_reason: Callable[[], Optional[str]] = lambda: None) -> float:
        """Seconds until healthy; raises EngineError when the process dies, times out or is stopped."""
        started = time.monotonic()
        while True:
            death = self.death()
            if death:
                raise EngineError(f"{death} before becoming ready", tail(self.log_file, 30))
            reason = stop_reason()
            if reason:
                raise EngineError(f"{reason} while the server was starting")
            if self.is_healthy():
                return time.monotonic() - started
            if time.monotonic() - started > self.start_timeout_s:
                raise EngineError(
                    f"server not healthy after {self.start_timeout_s:.0f} s "
                    "(execution.server_start_timeout_s)",
                    tail(self.log_file, 30),
                )
            time.sleep(1.0)

    def read_back(self) -> ServerFacts:
        return self.engine.read_back(self.base_url)

    def request_counters(self) -> Dict[str, float]:
        return self.engine.request_counters(self.base_url)

    def stop(self) -> None:
        """Stop the whole group; raises EngineError if any of its processes survive SIGKILL."""
        if not self.group.stop(grace_s=self.stop_timeout_s):
            raise EngineError(f"processes of the server group {self.group.pid} survived SIGKILL")


def process_environment() -> Dict[str, str]:
    return dict(os.environ)
