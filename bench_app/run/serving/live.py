"""The state of an engine group's server as the group runner holds it: the server and its lease now (a
restart or a lazy start replaces both), and the stand-ins for a server not started yet and for no lease."""

from __future__ import annotations

from typing import Dict, Optional

from bench_app.engines import EngineServer


class NoLease:
    """No devices, no port: a server not started yet, or one bench_app does not start (engine=external)."""

    port = 0

    def release(self) -> None:
        pass

    def record(self) -> Dict[str, int]:
        return {}

    def environment(self) -> Dict[str, str]:
        return {}


class NotStarted:
    """The server of a group that has not needed one yet (every request answered from the cache)."""

    def __init__(self, host: str) -> None:
        self.host = host

    def death(self) -> Optional[str]:
        return None

    def request_counters(self) -> Dict[str, float]:
        return {}


class Live:
    """An engine group's server and its lease, as they are now (a restart replaces both)."""

    def __init__(self, server: EngineServer, lease) -> None:
        self.server, self.lease = server, lease
