"""The relay's upstream servers: the replicas of one engine configuration, and how requests are spread.

Each request goes to the live replica with the fewest requests in flight (ties: the one that has answered
fewest), so a slow or restarted replica gets less work instead of a fixed share. A replica whose process
died is marked down by the group's supervisor (bench_app.run.serving.replicas) and comes back with its
new port after a restart; a request that fails to reach a replica is tried on another live one. Counted per
replica: requests, tokens, time busy (at least one request in flight) and failures, so an uneven replica
shows in the results.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from bench_app.records.documents import ReplicaShare


@dataclass
class Upstream:
    index: int
    host: str
    port: int
    alive: bool = True
    in_flight: int = 0
    requests: int = 0  # answered by it (any status)
    failures: int = 0  # could not be reached, broke off, or timed out
    prompt_tokens: int = 0
    completion_tokens: int = 0
    busy_s: float = 0.0
    _busy_since: Optional[float] = None

    @property
    def address(self) -> Tuple[str, int]:
        return self.host, self.port

    def begin(self) -> None:
        if self.in_flight == 0:
            self._busy_since = time.monotonic()
        self.in_flight += 1

    def end(self, answered: bool, usage: Optional[Mapping[str, Any]] = None) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._busy_since is not None:
            self.busy_s += time.monotonic() - self._busy_since
            self._busy_since = None
        if answered:
            self.requests += 1
            usage = usage if isinstance(usage, Mapping) else {}
            self.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.completion_tokens += int(usage.get("completion_tokens") or 0)
        else:
            self.failures += 1

    def counters(self) -> Dict[str, float]:
        busy = self.busy_s + (time.monotonic() - self._busy_since if self._busy_since is not None else 0.0)
        return {
            "requests": self.requests,
            "failures": self.failures,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "busy_s": busy,
        }


class Balancer:
    """The upstreams of one relay. Picked on the relay's event loop; marked down and up from the group's
    thread (a lock keeps both views whole)."""

    def __init__(self, addresses: Sequence[Tuple[str, int]]):
        self._lock = threading.Lock()
        self.upstreams: List[Upstream] = []
        self.replace_all(addresses)

    def __len__(self) -> int:
        return len(self.upstreams)

    def replace_all(self, addresses: Sequence[Tuple[str, int]]) -> None:
        """New servers at these addresses (a restart of the whole group); counters carry on."""
        with self._lock:
            for index, (host, port) in enumerate(addresses):
                if index < len(self.upstreams):
                    upstream = self.upstreams[index]
                    upstream.host, upstream.port, upstream.alive = host, int(port), True
                else:
                    self.upstreams.append(Upstream(index, host, int(port)))
            del self.upstreams[len(addresses) :]

    @property
    def first(self) -> Tuple[str, int]:
        with self._lock:
            live = [u for u in self.upstreams if u.alive] or self.upstreams
            return live[0].address

    def pick(self, tried: Set[int]) -> Optional[Upstream]:
        with self._lock:
            live = [u for u in self.upstreams if u.alive and u.index not in tried]
            if not live:
                return None
            chosen = min(live, key=lambda u: (u.in_flight, u.requests, u.index))
            chosen.begin()
            return chosen

    def mark_down(self, index: int) -> None:
        with self._lock:
            self.upstreams[index].alive = False

    def mark_up(self, index: int, host: str, port: int) -> None:
        with self._lock:
            upstream = self.upstreams[index]
            upstream.host, upstream.port, upstream.alive = host, int(port), True

    def counters(self) -> List[Dict[str, float]]:
        with self._lock:
            return [u.counters() for u in self.upstreams]


def counter_difference(after: List[Dict[str, float]], before: List[Dict[str, float]]) -> List[ReplicaShare]:
    """Per replica, what happened between two readings of Balancer.counters() (one dataset's share)."""
    rows = []
    for index, now in enumerate(after):
        then = before[index] if index < len(before) else {}
        row: Dict[str, Any] = {"replica": index}
        for key, value in now.items():
            delta = value - then.get(key, 0)
            row[key] = round(delta, 1) if key == "busy_s" else int(delta)
        rows.append(ReplicaShare(**row))
    return rows
