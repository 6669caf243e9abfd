"""execution.replicas: N servers of one engine configuration, to the group runner one server.

The replicas take their leases all at once (each its own devices or CPU slot, and its own free port), start
side by side and must all become ready. The relay spreads requests over them (bench_app.run.relay.balancer). A
supervisor thread watches them while the group evaluates: a replica whose process dies is marked down at
once (its requests in flight are tried again on a live one by the relay) and started again with the same
argv on a fresh lease, within execution.server_restarts of the group, while the others carry on. The set
counts as dead only when no replica is up or coming back; then the dataset fails as with one server, its
answers kept for resume.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from bench_app.common.errors import EngineError
from bench_app.common.files import now_iso
from bench_app.common.net import client_host
from bench_app.engines import Engine, EngineServer, ServerFacts
from bench_app.records.documents import ReplicaEntry, ServerEntry, ServerRestart
from bench_app.run.planning.devices import devices_per_server
from bench_app.run.planning.plan import EngineGroup
from bench_app.run.relay.balancer import Balancer
from bench_app.run.serving.resources import Lease, ResourcePool

SUPERVISE_EVERY_S = 0.5


class Replica:
    """One server of the set, its lease, and what is recorded of it (`entry`, written to the results)."""

    def __init__(self, index: int, log_file: Path):
        self.index = index
        self.server: Optional[EngineServer] = None
        self.lease: Optional[Lease] = None
        self.state = "starting"  # starting | up | restarting | dead
        self.last_counters: Dict[str, float] = {}  # its server's finished requests, as last read
        self.entry = ReplicaEntry(replica=index, log_file=str(log_file))

    def take(self, server: EngineServer, lease: Lease) -> None:
        self.server, self.lease = server, lease
        self.entry.assign(lease.record())
        self.entry.assign(dict(argv=server.argv, started_at=now_iso(), ready_after_s=None, stopped_at=None))


class ReplicaSet:
    """The group's servers; death() only when none is left, request_counters() summed, stop() stops all."""

    def __init__(
        self,
        engine: Engine,
        group: EngineGroup,
        pool: ResourcePool,
        env: Dict[str, str],
        log_file: Callable[[int], Path],
        execution,
        restarts: List[ServerRestart],
        log: Callable[[str], None],
    ):
        self.engine, self.planned_argv, self.host = engine, group.argv, group.engine_args["host"]
        self.pool, self.devices_needed, self.env = pool, devices_per_server(group.engine_args), env
        self.execution = execution
        # The group's record of restarts (ServerEntry.restarts): replicas and whole-group restarts share
        # execution.server_restarts.
        self.restarts = restarts
        self.log = log
        self.replicas = [Replica(i, log_file(i)) for i in range(group.replicas)]
        self.balancer: Optional[Balancer] = None
        self.dataset = ""  # the dataset being evaluated, for the restart records
        self._stop = threading.Event()
        self._retired: Dict[str, float] = {}  # finished requests of replicas' servers that died
        self._watch: Optional[threading.Thread] = None

    # -- what the group runner asks of a server -------------------------------------------------------

    @property
    def argv(self) -> List[str]:
        return self.replicas[0].entry.argv or self.planned_argv

    @property
    def base_url(self) -> str:
        return self.replicas[0].server.base_url if self.replicas[0].server else ""

    def addresses(self) -> List[Tuple[str, int]]:
        return [(client_host(self.host), int(r.entry.port)) for r in self.replicas]

    def entries(self) -> List[ReplicaEntry]:
        return [r.entry for r in self.replicas]

    def start_all(self, cancelled: Callable[[], bool], on_wait: Callable[[str], None]) -> float:
        """Lease, start and wait for every replica; the seconds until the last was ready. On any failure
        every replica is stopped and its lease released, and EngineError names the replica."""
        leases = self.pool.acquire_many(
            len(self.replicas),
            self.host,
            0,
            self.devices_needed,
            self.execution.resource_wait_timeout_s,
            cancelled,
            on_wait,
        )
        for replica, lease in zip(self.replicas, leases, strict=True):
            replica.take(self._server(replica, lease), lease)
        started = time.monotonic()

        def bring_up(replica: Replica) -> None:
            try:
                self._launch(replica, lambda: "run interrupted" if cancelled() else None)
                replica.state = "up"
            except EngineError as error:
                raise EngineError(f"replica {replica.index}: {error.reason}", error.log_tail) from None

        try:
            with ThreadPoolExecutor(len(self.replicas), thread_name_prefix="replica-start") as starts:
                for future in [starts.submit(bring_up, r) for r in self.replicas]:
                    future.result()
        except BaseException:
            self.stop()
            self.release()
            raise
        return time.monotonic() - started

    def start_into(self, record: ServerEntry, cancelled: Callable[[], bool]) -> None:
        """Start every replica and fill the group's record: its lease fields from the replicas, the
        replicas' own entries, what the servers report."""
        record.replicas = self.entries()
        record.log_file = self.replicas[0].entry.log_file
        record.started_at = now_iso()
        record.ready_after_s = round(self.start_all(cancelled, self.log), 1)
        record.assign(self.record())
        record.argv = self.argv
        record.assign(vars(self.read_back()))

    def read_back(self) -> ServerFacts:
        """What the first replica serves; every other must serve the same model at the same context."""
        facts = self.replicas[0].server.read_back()
        for replica in self.replicas[1:]:
            other = replica.server.read_back()
            if (other.served_model, other.max_model_len) != (facts.served_model, facts.max_model_len):
                raise EngineError(
                    f"replica {replica.index} serves {other.served_model} at max_model_len "
                    f"{other.max_model_len}, replica 0 {facts.served_model} at {facts.max_model_len}"
                )
        return facts

    def death(self) -> Optional[str]:
        if any(r.state in ("up", "restarting", "starting") for r in self.replicas):
            return None
        ends = "; ".join(f"replica {r.index}: {r.entry.error or 'died'}" for r in self.replicas)
        return f"every replica died ({ends})"

    def request_counters(self) -> Dict[str, float]:
        """The replicas' finished requests summed; a replica that died adds what it last reported."""
        total = dict(self._retired)
        for replica in self.replicas:
            if replica.server is not None and replica.state == "up":
                replica.last_counters = replica.server.request_counters() or replica.last_counters
            for reason, count in replica.last_counters.items():
                total[reason] = total.get(reason, 0) + count
        return total

    def stop(self) -> None:
        """Stop the supervisor, then every replica's process group (side by side)."""
        self._stop.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join()
        survivors: List[str] = []

        def stop_one(replica: Replica) -> None:
            if replica.server is None or replica.entry.stopped_at:
                return
            try:
                replica.server.stop()
            except EngineError as error:
                survivors.append(f"replica {replica.index}: {error.reason}")
            replica.entry.stopped_at = now_iso()

        with ThreadPoolExecutor(len(self.replicas), thread_name_prefix="replica-stop") as stops:
            list(stops.map(stop_one, self.replicas))
        if survivors:
            raise EngineError("; ".join(survivors))

    # -- the lease side (Live.lease) ------------------------------------------------------------------

    def release(self) -> None:
        for replica in self.replicas:
            if replica.lease is not None:
                replica.lease.release()
                replica.lease = None

    def record(self) -> Dict[str, Any]:
        """The group record's lease fields: the first replica's port, every replica's devices."""
        first = self.replicas[0].entry
        return {
            "port": first.port,
            "devices": [device for r in self.replicas for device in r.entry.devices],
            "visible_devices_env": first.visible_devices_env,
            "cpu_slot": first.cpu_slot,
            "waited_for_resources_s": first.waited_for_resources_s,
        }

    def environment(self) -> Dict[str, str]:
        return {}

    # -- supervision ----------------------------------------------------------------------------------

    def supervise(self, balancer: Balancer) -> None:
        """Watch the replicas from now on (once); the balancer learns which are up."""
        self.balancer = balancer
        if self._watch is None:
            self._watch = threading.Thread(target=self._supervise, name="replica-watch", daemon=True)
            self._watch.start()

    def _supervise(self) -> None:
        while not self._stop.wait(SUPERVISE_EVERY_S):
            for replica in self.replicas:
                if replica.state != "up" or self._stop.is_set():
                    continue
                death = replica.server.death()
                if death:
                    self._replace(replica, death)

    def _replace(self, replica: Replica, death: str) -> None:
        self.balancer.mark_down(replica.index)
        for reason, count in replica.last_counters.items():  # a new server counts from zero
            self._retired[reason] = self._retired.get(reason, 0) + count
        replica.last_counters = {}
        limit = int(self.execution.server_restarts)
        if len(self.restarts) >= limit:
            replica.state, replica.entry.error = "dead", death
            replica.entry.stopped_at = now_iso()
            self.log(
                f"replica {replica.index} died ({death}); no restarts left (execution.server_restarts="
                f"{limit}); {self._up()} replica(s) carry on"
            )
            return
        replica.state = "restarting"
        restart = ServerRestart(dataset=self.dataset, reason=death, at=now_iso())
        replica.entry.restarts.append(restart)
        self.restarts.append(restart.model_copy(update={"replica": replica.index}))
        self.log(
            f"replica {replica.index} died during {self.dataset or 'the group'} ({death}); starting it again "
            f"({len(self.restarts)} of {limit}) while {self._up()} replica(s) carry on; its requests in "
            "flight go to the others"
        )
        try:
            replica.server.stop()
        except EngineError as error:
            replica.entry.error = error.reason
        if replica.lease is not None:
            replica.lease.release()
        try:
            lease = self.pool.acquire(
                self.host, 0, self.devices_needed, self.execution.resource_wait_timeout_s, self._stop.is_set
            )
            replica.take(self._server(replica, lease), lease)
            self._launch(replica, lambda: "the group stopped" if self._stop.is_set() else None)
        except Exception as error:  # noqa: BLE001 - recorded, the others carry on
            reason = getattr(error, "reason", None) or f"{type(error).__name__}: {error}"
            try:  # whatever of it did start
                replica.server.stop()
            except EngineError:
                pass
            if self._stop.is_set():  # the group's datasets are done (or it is stopping): no need of it
                replica.state, replica.entry.error = "dead", "restart abandoned: the group stopped"
                return
            replica.state, replica.entry.error = "dead", f"did not come back: {reason}"
            self.log(f"replica {replica.index} did not come back ({reason}); {self._up()} carry on")
            return
        replica.state = "up"
        self.balancer.mark_up(replica.index, client_host(self.host), int(replica.entry.port))
        self.log(f"replica {replica.index} is back on port {replica.entry.port}")

    def _up(self) -> int:
        return sum(r.state == "up" for r in self.replicas)

    def _launch(self, replica: Replica, stop_reason: Callable[[], Optional[str]]) -> None:
        """Start the replica's server and wait until it is healthy (raises EngineError)."""
        replica.server.start()
        replica.entry.ready_after_s = round(replica.server.wait_ready(stop_reason), 1)

    def _server(self, replica: Replica, lease: Lease) -> EngineServer:
        return self.engine.server(
            self.planned_argv,
            self.host,
            lease.port,
            {**self.env, **lease.environment()},
            Path(replica.entry.log_file),
            self.execution.server_start_timeout_s,
            self.execution.server_stop_timeout_s,
        )
