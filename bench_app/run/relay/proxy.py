"""A loopback relay between the evaluator and the engine server that records every chat completion.

The evaluator talks to the relay exactly as it would to the server (the same OpenAI API, the same
paths); the relay forwards each request unchanged and writes what the server answered, one JSON line
per request, to the file of the dataset being evaluated (`<dataset>/requests.jsonl`): the messages, the
sampling settings, the server's finish_reason, the answer and the reasoning apart (vLLM's reasoning
parser, or `<think>...</think>` inside the answer) and the token usage.

An answer cut off inside its thinking (finish_reason `length` before the reasoning ended) reaches the
evaluator as an empty answer when `cut_in_thinking` is `no_answer` (the default): a draft inside the
thinking is never credited. Streamed responses are passed through chunk by chunk and only recorded.
Repeats (benchmark.repeats > 1): each copy of a request goes with its repeat's seed
(bench_app.run.planning.repeats).
Perf mode does not use the relay: latency is what it measures.

Built for an evaluator at full concurrency (AISBench opens batch_size + 1 connections at once): aiohttp's
server on its own event loop thread (keep-alive, TCP_NODELAY, a listen backlog of thousands, bodies of any
framing) and one pooled keep-alive client to the server, bounded by an upstream timeout. Records and cache
writes go through one writer thread that commits whatever has queued up together (group commit): an answer
reaches the evaluator only once its record line is written and its cache entry committed, so nothing the
evaluator was given is lost when the run is killed, and no request waits behind another's commit.
"""

from __future__ import annotations

import asyncio
import json
import resource
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple, Union

import aiohttp
from aiohttp import web

from bench_app.config.schema import CUT_IN_THINKING_POLICIES
from bench_app.records.cache import RequestCache
from bench_app.run.planning.repeats import RepeatSeeds
from bench_app.run.relay.answers import StreamedAnswer, empty_answer, record_line, server_error
from bench_app.run.relay.balancer import Balancer
from bench_app.run.relay.record_writer import RecordWriter

# Headers that belong to one connection, not to the request or response being relayed. Bodies are passed
# on decoded, so their encoding goes too.
_HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "host",
    "upgrade",
    "accept-encoding",
}
# AISBench opens batch_size + 1 connections at the start of a dataset: a short listen queue drops SYNs,
# and the client's retry after 1 s looks like a slow server.
LISTEN_BACKLOG = 4096
DEFAULT_UPSTREAM_TIMEOUT_S = 3600.0


def _raise_open_files_limit(wanted: int = 65536) -> None:
    """Thousands of connections both ways need more descriptors than a shell's default soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class Relay:
    """One relay per engine server: `with Relay(host, port) as relay:` ... `relay.record_to(path)`."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        cut_in_thinking: str = "no_answer",
        cache: Optional[RequestCache] = None,
        engine: str = "",
        start_upstream: Optional[Callable[[], Union[None, Tuple[str, int], List[Tuple[str, int]]]]] = None,
        upstream_timeout_s: float = DEFAULT_UPSTREAM_TIMEOUT_S,
        reasoning_in_cache: bool = False,
        upstream_base: Optional[str] = None,
        upstream_headers: Optional[Dict[str, str]] = None,
    ):
        # The server, or the replicas of one engine configuration (set_upstreams), requests spread by load.
        self.balancer = Balancer([(upstream_host, upstream_port)])
        # A server bench_app did not start: its own address (https, a path prefix) and what every request
        # to it carries (an API key; never recorded).
        self.upstream_base = upstream_base
        self.upstream_headers = dict(upstream_headers or {})
        # Set: the server is not started yet; the first request the cache cannot answer starts it
        # (returns its host and port, or None when it did not come up).
        self._start_upstream = start_upstream
        # Answers already given by this engine configuration (bench_app.records.cache), and its fingerprint.
        self.cache, self.engine = cache, engine
        if cut_in_thinking not in CUT_IN_THINKING_POLICIES:
            raise ValueError(f"cut_in_thinking {cut_in_thinking!r}: one of {CUT_IN_THINKING_POLICIES}")
        self.cut_in_thinking = cut_in_thinking
        # Added to the cache key of the dataset being recorded: a load level's answers are its own.
        self.cache_scope = ""
        self.upstream_timeout_s = float(upstream_timeout_s)
        # The cache is the run folder's own: a record refers to it for the reasoning's text.
        self.reasoning_in_cache = reasoning_in_cache and cache is not None
        self._port = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._writer: Optional[RecordWriter] = None
        self._runner: Optional[web.AppRunner] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._start_lock: Optional[asyncio.Lock] = None
        # The chat completions of the dataset being recorded, and those that failed, by cause (what its
        # reason says; the evaluator sees only an HTTP status). Counted on the event loop's thread.
        self._requests = 0
        self._failures: Counter = Counter()
        self._repeats = RepeatSeeds()  # the repeats of the dataset being recorded

    @property
    def port(self) -> int:
        return self._port

    @property
    def upstream(self) -> Tuple[str, int]:
        return self.balancer.first

    @upstream.setter
    def upstream(self, address: Tuple[str, int]) -> None:
        self.balancer.replace_all([address])

    def set_upstreams(self, addresses: Sequence[Tuple[str, int]]) -> None:
        """The replicas requests are spread over (each request to the one with fewest in flight)."""
        self.balancer.replace_all(addresses)

    @property
    def write_error(self) -> Optional[str]:
        """The last failure to write a record or a cache entry (None: every one was written)."""
        return self._writer.error if self._writer else None

    def __enter__(self) -> Relay:
        _raise_open_files_limit()
        self._writer = RecordWriter(self.cache)
        self._loop = _new_event_loop()
        ready = threading.Event()
        failure: List[BaseException] = []

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._open())
            except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
                failure.append(error)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._close())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="relay", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._writer.close()
            raise failure[0]
        return self

    def __exit__(self, *exc_info) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._writer.close()  # after the server: every answer given is written first

    async def _open(self) -> None:
        self._start_lock = asyncio.Lock()
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.upstream_timeout_s),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # The evaluator is done (or being stopped) when the relay closes: in-flight requests get 2 s, not 60.
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, keepalive_timeout=300, shutdown_timeout=2.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=LISTEN_BACKLOG)
        await site.start()
        self._port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _close(self) -> None:
        await self._runner.cleanup()
        await self._session.close()

    def record_to(
        self,
        path: Optional[Path],
        cut_in_thinking: Optional[str] = None,
        cache_scope: str = "",
        seeds: Sequence[int] = (),
    ) -> None:
        """Append the records of the requests that complete from now on to path (None: record nothing),
        with the dataset's cut_in_thinking policy, cache scope and repeats' seeds (more than one: each copy
        of a request is a repeat, sent with its seed). Returns once every record of the requests completed
        before it is written."""
        self.cut_in_thinking = cut_in_thinking or self.cut_in_thinking
        self.cache_scope = cache_scope
        if path is not None:  # a new dataset: its own count (late ends of the last one's go nowhere)
            self._requests, self._failures = 0, Counter()
            self._repeats = RepeatSeeds(seeds)
        if self._writer is None:
            raise RuntimeError("record_to: the relay is not running (use it as a context manager)")
        self._writer.call([("switch", path)])

    def failures(self) -> Tuple[int, Dict[str, int]]:
        """The chat completions relayed since the dataset's record_to(path), and those that failed (the
        relay's 502 or the server's error status) counted by cause."""
        return self._requests, dict(self._failures)

    def _failed(self, status: int, reason: str) -> web.Response:
        self._failures[reason] += 1
        return _error(status, reason)

    def ensure_upstream(self) -> bool:
        """Start the server if it waits for its first request; False when it did not come up."""
        if self._start_upstream is not None:
            started = self._start_upstream()
            if started is None:
                return False
            self.set_upstreams(started if isinstance(started, list) else [started])
            self._start_upstream = None
        return True

    def record(self, body: Dict[str, Any], status: int, response: Dict[str, Any], started: float, **facts):
        """One chat completion's record line (bench_app.run.relay.answers.record_line), and whether its answer
        must reach the evaluator empty (cut in its thinking, under the no_answer policy)."""
        stored = facts.get("key") is not None and self.reasoning_in_cache
        line, cut = record_line(body, status, response, started, reasoning_in_cache=stored, **facts)
        return line, cut and self.cut_in_thinking == "no_answer"

    # -- the event loop's side --------------------------------------------------------------------

    async def _written(self, operations: List[tuple]) -> None:
        """Wait until the writer thread has written these operations."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        self._writer.submit(operations, lambda: loop.call_soon_threadsafe(_resolve, done))
        await done

    async def _ensure_upstream(self) -> bool:
        if self._start_upstream is None:
            return True
        async with self._start_lock:  # one start, however many requests wait for it
            if self._start_upstream is None:
                return True
            return await asyncio.get_running_loop().run_in_executor(None, self.ensure_upstream)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        raw = await request.read()  # any framing: Content-Length or chunked
        body = None
        if raw and request.path.rstrip("/").endswith("chat/completions"):
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                body = None
        repeats = self._repeats
        if body is None or not repeats:
            return await self._relay(request, started, raw, body)
        same, repeat = repeats.take(body)  # on the loop's thread, before any await: no two alike
        response = None
        try:
            response = await self._relay(request, started, json.dumps(body).encode(), body, repeat)
            return response
        finally:
            if response is None or response.status != 200:
                repeats.give_back(same, repeat)  # failed or cut off: the evaluator's retry takes it again

    async def _relay(
        self,
        request: web.Request,
        started: float,
        raw: bytes,
        body: Optional[Dict[str, Any]],
        repeat: Optional[int] = None,
    ) -> web.StreamResponse:
        key = None
        if body is not None:
            self._requests += 1
        if body is not None and self.cache is not None and not body.get("stream"):
            key = self.cache.key(self.engine + self.cache_scope, body)
            cached = self.cache.lookup(key)
            if cached is not None:
                line, empty = self.record(body, 200, cached, started, cached=True, key=key, repeat=repeat)
                await self._written([("line", line), ("touch", key)])
                data = json.dumps(empty_answer(cached) if empty else cached).encode()
                return web.Response(status=200, body=data, content_type="application/json")
        if not await self._ensure_upstream():
            return self._failed(502, "the server did not start (see the engine log)")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        headers.update(self.upstream_headers)
        several = len(self.balancer) > 1
        tried: Set[int] = set()
        failure = "no replica of the server is up (see the engine logs)"
        while True:  # a replica that cannot be reached: the request goes to another live one
            target = self.balancer.pick(tried)
            if target is None:
                return self._failed(502, failure)
            tried.add(target.index)
            url = f"{self.upstream_base or f'http://{target.host}:{target.port}'}{request.rel_url}"
            replica = target.index if several else None
            try:
                async with self._session.request(
                    request.method, url, data=raw or None, headers=headers
                ) as reply:
                    reply_headers = {k: v for k, v in reply.headers.items() if k.lower() not in _HOP_HEADERS}
                    if body is not None and body.get("stream"):
                        return await self._stream(
                            request, reply, reply_headers, body, started, target, replica, repeat
                        )
                    data = await reply.read()
                    status = reply.status
            except asyncio.TimeoutError:  # a hung server: the request is not sent again
                target.end(answered=False)
                return self._failed(
                    502, f"no answer within execution.upstream_timeout_s ({self.upstream_timeout_s:g} s)"
                )
            except (aiohttp.ClientError, OSError) as error:  # the server is gone: the evaluator sees a 502
                target.end(answered=False)
                failure = f"the server failed: {type(error).__name__}: {error}"
                continue
            break
        answer: Dict[str, Any] = {}
        if body is not None:
            try:
                answer = json.loads(data)
            except ValueError:
                answer = {"error": data[:500].decode(errors="replace")}
            if not isinstance(answer, dict):
                answer = {"error": str(answer)[:500]}
        target.end(answered=True, usage=answer.get("usage"))
        if body is not None and status != 200:
            self._failures[f"the server answered {status}: {server_error(answer)}"] += 1
        if body is not None:
            keep = key is not None and status == 200 and bool(answer.get("choices"))
            line, empty = self.record(
                body, status, answer, started, key=key if keep else None, replica=replica, repeat=repeat
            )
            operations: List[tuple] = [("line", line)]
            if keep:
                operations.append(("put", key, self.engine, json.dumps(answer, ensure_ascii=False)))
            await self._written(operations)  # stored before the evaluator has it
            if empty:
                data = json.dumps(empty_answer(answer)).encode()
        return web.Response(status=status, body=data, headers=reply_headers)

    async def _stream(
        self, request, reply, headers, body, started, target, replica, repeat=None
    ) -> web.StreamResponse:
        """Pass the server-sent events through as they come; record the assembled answer at the end."""
        response = web.StreamResponse(status=reply.status, headers=headers)
        await response.prepare(request)
        events, status = StreamedAnswer(started), reply.status
        try:
            async for chunk in reply.content.iter_any():
                await response.write(chunk)
                events.feed(chunk)
        except (asyncio.TimeoutError, aiohttp.ClientError, OSError) as failure:  # cut off mid-stream
            status, events.error = 502, f"the stream broke off: {type(failure).__name__}: {failure}"
        answer = events.answer()
        target.end(answered=status < 502, usage=answer.get("usage"))
        if status != 200:
            self._failures[events.error or f"the server answered {status}"] += 1
        line, _ = self.record(
            body, status, answer, started, first_token_s=events.first_token_s, replica=replica, repeat=repeat
        )
        await self._written([("line", line)])  # before the evaluator has the end of the stream
        await response.write_eof()
        return response


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:  # libuv's loop: about twice the requests per second of asyncio's own on the same core
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _error(status: int, reason: str) -> web.Response:
    return web.Response(status=status, text=json.dumps({"error": reason}), content_type="application/json")
