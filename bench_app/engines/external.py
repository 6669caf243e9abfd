"""A server bench_app does not start: one already running (a shared inference endpoint, a server started by
a cluster scheduler or by hand), evaluated as it is.

No lease, no start, no stop. Planning asks it what it serves (`/v1/models`: the model id and max_model_len,
`/version`) so the context budget uses its real context; during the run the relay, the request cache, the
samples and the reports work as for a started server. The API key, when the server wants one, is read
from an environment variable (`api_key_env`) when a request goes out and is never written anywhere.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional
from urllib.parse import urlsplit

from bench_app.common.errors import EngineError, UserError
from bench_app.common.files import now_iso
from bench_app.common.net import http_get_json, http_get_text, http_status
from bench_app.engines.base import Engine, ServerFacts
from bench_app.engines.vllm import finished_requests


@dataclass
class ExternalEngine(Engine):
    # The server's address, e.g. http://10.0.0.5:8000 (a trailing /v1 is accepted).
    base_url: str = ""
    # Name of the environment variable holding the server's API key (sent as a Bearer token), or null.
    api_key_env: Optional[str] = None
    # What you know of the server that it does not report (e.g. {weights: w8a8, revision: 3f2a1c}): part
    # of the request cache's key with what it reports (model id, max_model_len, version).
    stated: Dict[str, Any] = field(default_factory=dict)
    command: List[str] = field(default_factory=list)

    name: ClassVar[str] = "external"
    label: ClassVar[str] = "external server"
    starts_server: ClassVar[bool] = False

    def __post_init__(self) -> None:
        parts = urlsplit(str(self.base_url or ""))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(
                f"engine.base_url: {self.base_url!r} is not a server address; give the running server's, "
                "e.g. engine=external engine.base_url=http://127.0.0.1:8000"
            )
        self.base_url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/').removesuffix('/v1')}"
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.facts: Optional[ServerFacts] = None

    def headers(self) -> Dict[str, str]:
        """What every request to the server carries: the API key, read now, never stored."""
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise UserError(
                f"engine.api_key_env: the environment variable {self.api_key_env} is not set (it holds the "
                "server's API key)"
            )
        return {"Authorization": f"Bearer {key}"}

    def argv(self, engine_args: Mapping[str, Any], where: str) -> List[str]:
        return [f"(not started by bench_app: {self.base_url})"]

    def argv_with_port(self, argv: List[str], port: int) -> List[str]:
        return argv

    def planned_args(self, engine_args: Dict[str, Any]) -> Dict[str, Any]:
        """The engine args as the running server has them: its model id and max_model_len."""
        facts = self.read_back(self.base_url)
        if facts.served_model is None:
            raise UserError(
                f"engine=external: no model list at {self.base_url}/v1/models (is the server running, and "
                "is engine.base_url its address?). bench_app starts nothing here; start the server first."
            )
        self.facts = facts
        # Only what is known of a running server: the rest of the vllm block (dtype, tensor parallel,
        # ...) describes a server bench_app would start, not this one, so it is recorded as unknown.
        return {
            **dict.fromkeys(engine_args),
            "model_path": engine_args.get("model_path"),  # where the context budget finds a tokenizer
            "host": self.host,
            "port": self.port,
            "served_model_name": facts.served_model,
            "max_model_len": facts.max_model_len or engine_args.get("max_model_len"),
        }

    def cache_identity(self, engine_args: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
        facts = self.facts or ServerFacts()
        return {
            "external": {
                "served_model": facts.served_model,
                "max_model_len": facts.max_model_len,
                "version": facts.version,
            },
            "stated": dict(self.stated),
        }

    def read_back(self, base_url: str) -> ServerFacts:
        models = http_get_json(base_url + "/v1/models", headers=self.headers()) or {}
        version = http_get_json(base_url + "/version", headers=self.headers()) or {}
        first = (models.get("data") or [{}])[0] if isinstance(models, dict) else {}
        return ServerFacts(
            served_model=first.get("id"),
            max_model_len=first.get("max_model_len"),
            version=version.get("version") if isinstance(version, dict) else None,
        )

    def request_counters(self, base_url: str) -> Dict[str, float]:
        # vLLM's /metrics where the server is a vLLM; {} for a server without them.
        return finished_requests(http_get_text(base_url + "/metrics", headers=self.headers()) or "")

    def server(self, argv, host, port, env, log_file, start_timeout_s, stop_timeout_s) -> ExternalServer:
        return ExternalServer(self, log_file, start_timeout_s)


class ExternalServer:
    """The EngineServer of a server bench_app did not start: it is never started, watched or stopped."""

    def __init__(self, engine: ExternalEngine, log_file: Path, start_timeout_s: float):
        self.engine = engine
        self.argv = engine.argv({}, "")
        self.host, self.port, self.base_url = engine.host, engine.port, engine.base_url
        self.log_file = log_file
        self.start_timeout_s = start_timeout_s

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a", encoding="utf-8") as log:
            said = "a running server, not started (nor stopped) by bench_app"
            log.write(f"{now_iso()} {self.base_url}: {said}\n")

    def death(self) -> Optional[str]:
        return None  # not ours to watch: a server that goes away fails the requests, recorded as such

    def is_healthy(self) -> bool:
        return http_status(self.base_url + "/v1/models", headers=self.engine.headers()) == 200

    def wait_ready(self, stop_reason: Callable[[], Optional[str]] = lambda: None) -> float:
        started = time.monotonic()
        while not self.is_healthy():
            reason = stop_reason()
            if reason:
                raise EngineError(f"{reason} while waiting for {self.base_url}")
            if time.monotonic() - started > self.start_timeout_s:
                raise EngineError(
                    f"the external server at {self.base_url} did not answer /v1/models within "
                    f"{self.start_timeout_s:.0f} s (execution.server_start_timeout_s)"
                )
            time.sleep(1.0)
        return time.monotonic() - started

    def read_back(self) -> ServerFacts:
        return self.engine.read_back(self.base_url)

    def request_counters(self) -> Dict[str, float]:
        return self.engine.request_counters(self.base_url)

    def stop(self) -> None:
        return None
