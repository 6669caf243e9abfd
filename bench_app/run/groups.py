"""One engine group's work: lease, start its server, evaluate its datasets through the relay, start the
server again if it dies (execution.server_restarts), stop it; every outcome recorded at once."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

from bench_app.common.errors import ComponentError, EngineError
from bench_app.common.files import now_iso, tail
from bench_app.common.net import client_host
from bench_app.engines import EngineServer
from bench_app.evaluators import Endpoint, EvaluationSession
from bench_app.records.cache import RequestCache, open_cache
from bench_app.records.documents import DatasetEntry, ServerEntry, ServerRestart
from bench_app.records.names import CACHE_FILE
from bench_app.run.evaluate import evaluate_dataset, explain_failed_requests
from bench_app.run.planning.devices import devices_per_server
from bench_app.run.planning.identity import engine_identity, fingerprint_of, why_not_reused
from bench_app.run.planning.plan import EngineGroup, RunPlan
from bench_app.run.progress import Progress
from bench_app.run.relay.balancer import counter_difference
from bench_app.run.relay.proxy import Relay
from bench_app.run.serving.live import Live, NoLease, NotStarted
from bench_app.run.serving.replicas import ReplicaSet
from bench_app.run.serving.resources import ResourcePool
from bench_app.run.staging import evaluate_in_stages


def request_cache(config, folder, warn: Callable[[str], None]) -> Optional[RequestCache]:
    """The run's request cache: its own file in the run folder, a shared folder's, or none (off)."""
    setting = config.execution.cache
    if setting is not None and str(setting).lower() in ("off", "false"):
        return None
    path = Path(os.path.expanduser(setting)) / CACHE_FILE if setting else folder.cache_file
    return open_cache(path, lambda message: warn(f"warning: {message}"))


def _send_to_replicas(relay: Relay, live: Live) -> bool:
    """With execution.replicas: the relay balances over the group's replicas, which a supervisor now
    watches. False for a single server (the relay's one upstream is set by the caller)."""
    if not isinstance(live.server, ReplicaSet):
        return False
    relay.set_upstreams(live.server.addresses())
    live.server.supervise(relay.balancer)
    return True


def _died(server: EngineServer) -> Optional[str]:
    death = server.death()
    return f"server died during the evaluation ({death})" if death else None


class GroupRunner:
    """Runs engine groups (possibly side by side in threads) and collects their results."""

    def __init__(
        self, config, plan: RunPlan, run_dir: Path, snapshot, progress: Progress, pool: ResourcePool
    ):
        self.config = config
        self.plan = plan
        self.run_dir = run_dir
        self.folder = snapshot.folder  # the run folder's layout (bench_app.records.folder.RunFolder)
        self.snapshot = snapshot
        self.progress = progress
        self.pool = pool
        self.results: Dict[str, DatasetEntry] = {}
        self.servers: List[ServerEntry] = []
        self.cancel = threading.Event()
        self.index = {d.short: i + 1 for i, d in enumerate(plan.datasets)}
        self.cache = request_cache(config, self.folder, progress.log)
        self._identities: Dict[int, Tuple[Dict[str, Any], str]] = {}
        self._identities_lock = threading.Lock()

    def _identity(self, group: EngineGroup) -> Tuple[Dict[str, Any], str]:
        """The engine group's cache identity and its fingerprint, worked out once (it hashes model files)."""
        with self._identities_lock:
            if group.index not in self._identities:
                engine = self.plan.engine
                identity = engine.cache_identity(group.engine_args) or engine_identity(group.engine_args)
                self._identities[group.index] = (identity, fingerprint_of(identity))
            return self._identities[group.index]

    def _interrupted(self) -> Optional[str]:
        return "run interrupted" if self.cancel.is_set() else None

    def _record(self, short: str, result: DatasetEntry, record: ServerEntry) -> None:
        if self.cancel.is_set() and result.status == "failed":
            # A failure caused by stopping the run is not a finding about the model or the config.
            result.status, result.reason = "skipped", f"run interrupted during this dataset ({result.reason})"
        self.results[short] = result
        self.snapshot.record_dataset(short, server=record, result=result)

    def _fail_all(
        self, shorts: List[str], group: EngineGroup, record: ServerEntry, reason: str, log_tail: str = ""
    ) -> None:
        for short in shorts:
            self._record(
                short,
                DatasetEntry(
                    name=self.plan.dataset(short).name,
                    status="failed",
                    group=group.index,
                    reason=reason,
                    log_tail=log_tail or None,
                    server_started_at=record.started_at,
                ),
                record,
            )

    def _start_server(self, group: EngineGroup, record: ServerEntry, pending: List[str]):
        """Lease resources, start the server and wait until it is ready; returns (server, lease)."""
        execution, engine, args = self.config.execution, self.plan.engine, group.engine_args
        if group.replicas > 1:
            return self._start_replicas(group, record)
        lease = NoLease()  # a server that runs already (engine=external) takes no devices and no port
        if engine.starts_server:
            lease = self.pool.acquire(
                args["host"],
                int(args["port"]),
                devices_per_server(args),
                execution.resource_wait_timeout_s,
                self.cancel.is_set,
                lambda message: self.progress.log(f"group {group.index}: {message}"),
            )
        record.assign(lease.record())
        record.log_file = str(self.folder.engine_log(group.index))
        server = engine.server(
            group.argv,
            args["host"],
            lease.port or int(args["port"]),
            {**engine.environment(os.environ), **lease.environment()},
            Path(record.log_file),
            execution.server_start_timeout_s,
            execution.server_stop_timeout_s,
        )
        record.argv = server.argv
        record.external = None if engine.starts_server else server.base_url
        record.started_at = now_iso()
        try:
            server.start()
            record.ready_after_s = round(server.wait_ready(self._interrupted), 1)
            record.assign(vars(server.read_back()))
        except BaseException:
            self._stop(server, group, record)
            lease.release()
            raise
        return server, lease

    def _start_replicas(self, group: EngineGroup, record: ServerEntry):
        """execution.replicas: every server of the group's engine configuration; returns (set, set): the
        set is its own lease."""
        replicas = ReplicaSet(
            self.plan.engine,
            group,
            self.pool,
            self.plan.engine.environment(os.environ),
            lambda index: self.folder.engine_log(group.index, index),
            self.config.execution,
            record.restarts,
            lambda message: self.progress.log(f"group {group.index}: {message}"),
        )
        try:
            replicas.start_into(record, self.cancel.is_set)
        except BaseException:
            self._stop(replicas, group, record)
            replicas.release()
            raise
        return replicas, replicas

    def _stop(self, server: EngineServer, group: EngineGroup, record: ServerEntry) -> None:
        if record.external:  # not ours to stop
            return
        with self.progress.phase(f"stopping server of group {group.index}"):
            try:
                server.stop()
            except EngineError as error:
                record.error = error.reason
                self.progress.log(f"warning: {error.reason}")
        if record.started_at:
            record.stopped_at = now_iso()

    def run_group(self, group: EngineGroup, pending: List[str]) -> None:
        if self.cancel.is_set():
            return
        # Opened first: the evaluator's start-up (e.g. AISBench's imports) overlaps the server's.
        log_file = self.folder.evaluator_log(group.index)
        with self.plan.evaluator.open_session(log_file) as session:
            self._run_group(group, pending, session)

    def _run_group(self, group: EngineGroup, pending: List[str], session: EvaluationSession) -> None:
        record = ServerEntry(group=group.index, argv=group.argv, port=int(group.engine_args["port"]))
        self.servers.append(record)
        identity, fingerprint = self._identity(group)
        if self.cache is not None:
            siblings = {self._identity(other)[1] for other in self.plan.groups if other is not group}
            not_reused = why_not_reused(self.cache, fingerprint, identity, siblings)
            if not_reused:
                self.progress.log(f"group {group.index}: {not_reused}")
            self.cache.remember_engine(fingerprint, identity)
        # An engine configuration the request cache has answers of starts its server only on the first
        # request the cache cannot answer: an identical rerun starts none (perf always talks to one).
        lazy = (
            self.cache is not None
            and self.cache.has_engine(fingerprint)
            and not any(self.plan.dataset(s).evaluator.mode == "perf" for s in pending)
        )
        live = Live(NotStarted(group.engine_args["host"]), NoLease())
        try:
            if lazy:
                when = "starts" if self.plan.engine.starts_server else "is asked"
                self.progress.log(
                    f"group {group.index}: the request cache has answers of this engine configuration; its "
                    f"server {when} on the first request the cache cannot answer"
                )
            elif not self._bring_up(group, record, pending, live):
                return
            endpoint = Endpoint(
                host=client_host(live.server.host),
                port=record.port,
                served_model=record.served_model or str(group.engine_args.get("served_model_name") or ""),
                model_path=str(group.engine_args["model_path"]),
                max_model_len=record.max_model_len or group.engine_args["max_model_len"],
            )

            def start_upstream():  # the relay's first miss, when lazy
                if not self._bring_up(group, record, pending, live, fail_pending=False):
                    return None
                if isinstance(live.server, ReplicaSet):
                    live.server.supervise(relay.balancer)
                    return live.server.addresses()
                return client_host(live.server.host), record.port

            with Relay(
                endpoint.host,
                endpoint.port,
                cache=self.cache,
                engine=fingerprint,
                start_upstream=start_upstream if lazy else None,
                upstream_base=getattr(self.plan.engine, "base_url", None),
                upstream_headers=self.plan.engine.headers(),
                upstream_timeout_s=self.config.execution.upstream_timeout_s,
                # the run folder's own cache holds the reasoning's text; a shared one may be pruned
                reasoning_in_cache=self.cache is not None and self.cache.path == self.folder.cache_file,
            ) as relay:
                _send_to_replicas(relay, live)
                self._evaluate_all(session, group, record, live, endpoint, relay, pending)
        finally:
            if not isinstance(live.server, NotStarted):
                self._stop(live.server, group, record)
            live.lease.release()  # only once the server's processes are gone

    def _bring_up(
        self,
        group: EngineGroup,
        record: ServerEntry,
        pending: List[str],
        live: Live,
        fail_pending: bool = True,
    ) -> bool:
        """Start the group's server and check it runs as planned; False (with the datasets failed, unless
        the caller records them) when it does not."""
        progress, engine = self.progress, self.plan.engine
        doing = "starting server" if engine.starts_server else f"connecting to {engine.label}"
        what = f"{doing} for group {group.index} ({', '.join(pending)})"
        with progress.phase(what, self.index[pending[0]]):
            try:
                live.server, live.lease = self._start_server(group, record, pending)
            except ComponentError as error:
                record.error = error.reason
                progress.log(f"group {group.index} failed: {error.reason}")
                if fail_pending:
                    self._fail_all(pending, group, record, error.reason, error.log_tail)
                return False
        planned = group.engine_args["max_model_len"]
        if record.max_model_len != planned:
            record.error = (
                f"server runs with max_model_len {record.max_model_len}, planned {planned}; "
                "not evaluating at the wrong context"
            )
            if fail_pending:
                self._fail_all(pending, group, record, record.error)
            return False
        devices = f", devices {record.devices}" if record.devices else ""
        if record.external:
            progress.log(
                f"group {group.index}: {engine.label} {record.external} answers, serving "
                f"{record.served_model} (max_model_len {record.max_model_len}, version {record.version}); "
                "not started by bench_app"
            )
            return True
        where = f"port {record.port}{devices}"
        if record.replicas:
            where = "ports " + ", ".join(
                f"{r.port}" + (f" (devices {','.join(r.devices)})" if r.devices else "")
                for r in record.replicas
            )
        ready = f"{len(record.replicas)} replicas ready" if record.replicas else "server ready"
        progress.log(
            f"group {group.index}: {ready} in {record.ready_after_s} s on {where} "
            f"(max_model_len {record.max_model_len}, {engine.label} {record.version})"
        )
        return True

    def _evaluate_all(
        self,
        session: EvaluationSession,
        group: EngineGroup,
        record: ServerEntry,
        live: Live,
        endpoint: Endpoint,
        relay: Relay,
        pending: List[str],
    ) -> None:
        """The group's datasets one after another on its server; each but perf through the relay. A
        server that dies during a dataset is started again (execution.server_restarts) and the dataset
        runs again, answered from its saved answers as far as they go."""
        progress = self.progress
        relayed = replace(endpoint, host="127.0.0.1", port=relay.port)
        position = 0
        while position < len(pending):
            short = pending[position]
            if self.cancel.is_set():
                return
            death = live.server.death()
            if death:
                self._fail_all(
                    pending[position:],
                    group,
                    record,
                    f"server died before this dataset ({death})",
                    tail(Path(record.log_file), 30),
                )
                return
            dataset = self.plan.dataset(short)
            perf = dataset.evaluator.mode == "perf"  # latency is measured: straight to the server
            relay.record_to(
                None if perf else self.folder.requests_file(short),
                dataset.evaluator.cut_in_thinking,
                f"|load{dataset.load_level}" if dataset.load_level else "",
                dataset.evaluator.repeat_seeds,
            )
            if isinstance(live.server, ReplicaSet):
                live.server.dataset = short
            replicas_before = relay.balancer.counters()
            with progress.phase(f"evaluating {short}", self.index[short]) as phase:
                target, work_dir = endpoint if perf else relayed, self.folder.dataset_dir(dataset.short)

                def evaluate(planned, phase=phase, target=target, work_dir=work_dir):
                    return evaluate_dataset(
                        session,
                        planned,
                        group.index,
                        record.started_at,
                        live,
                        target,
                        work_dir,
                        self.config.execution.evaluation_timeout_s,
                        lambda: self._interrupted() or _died(live.server),
                        phase.update,
                    )

                if dataset.stages and self.plan.decider is not None:  # execution.decide: stop when decided
                    seed = self.config.execution.decide.seed
                    result = evaluate_in_stages(dataset, self.plan.decider, seed, evaluate, progress.log)
                else:
                    result = evaluate(dataset)
            relay.record_to(None)
            if result.status == "failed":
                result.reason = explain_failed_requests(result.reason, *relay.failures())
            if relay.write_error:  # the answers went out; a record or cache entry of them may not have
                progress.log(f"warning: {short}: the relay could not write a record ({relay.write_error})")
            # live.server, not a copy from before the dataset: a lazy start replaces it during the dataset
            death = live.server.death()
            if (
                result.status != "ok"
                and death
                and len(record.restarts) < self.config.execution.server_restarts
            ):
                if self._restart(group, record, live, short, death, pending[position:]):
                    endpoint = replace(endpoint, port=record.port)  # perf talks to the new server directly
                    if not _send_to_replicas(relay, live):
                        relay.upstream = (endpoint.host, record.port)
                    continue  # the same dataset again, from its saved answers
                return
            if group.replicas > 1:  # each replica's share of this dataset: an uneven one shows
                result.replicas = counter_difference(relay.balancer.counters(), replicas_before)
            result.server_restarts = [r.reason for r in record.restarts if r.dataset == short]
            self._record(short, result, record)
            progress.log(f"{short}: {result.status} {result.metrics or result.reason or ''}")
            position += 1

    def _restart(
        self, group: EngineGroup, record: ServerEntry, live: Live, short: str, death: str, left: List[str]
    ) -> bool:
        """Stop what is left of a dead server and start it again with the same argv; False (the datasets
        left failed) when it does not come back."""
        limit = self.config.execution.server_restarts
        record.restarts.append(ServerRestart(dataset=short, reason=death, at=now_iso()))
        self.progress.log(
            f"group {group.index}: the server died during {short} ({death}); starting it again "
            f"({len(record.restarts)} of {limit}), {short} continues from its saved answers"
        )
        self._stop(live.server, group, record)
        live.lease.release()
        with self.progress.phase(f"restarting server for group {group.index}", self.index[short]):
            try:
                live.server, live.lease = self._start_server(group, record, left)
            except ComponentError as error:
                live.lease = NoLease()
                record.error = error.reason
                self._fail_all(
                    left, group, record, f"server did not come back: {error.reason}", error.log_tail
                )
                return False
        return True
