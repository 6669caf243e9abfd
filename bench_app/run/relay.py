"""A loopback relay between the evaluator and the engine server that records every chat completion.

The evaluator talks to the relay exactly as it would to the server (the same OpenAI API, the same
paths); the relay forwards each request unchanged and writes what the server answered, one JSON line
per request, flushed as it arrives, to the file of the dataset being evaluated (`<dataset>/requests.jsonl`):
the messages, the sampling settings, the server's finish_reason, the answer and the reasoning apart
(vLLM's reasoning parser, or `<think>...</think>` inside the answer) and the token usage.

An answer cut off inside its thinking (finish_reason `length` before the reasoning ended) reaches the
evaluator as an empty answer when `cut_in_thinking` is `no_answer` (the default): a draft inside the
thinking is never credited. Streamed responses are passed through chunk by chunk and only recorded.
Perf mode does not use the relay: latency is what it measures.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

from bench_app.config.schema import CUT_IN_THINKING_POLICIES
from bench_app.run.cache import RequestCache

REQUESTS_FILE = "requests.jsonl"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# Headers that belong to one connection, not to the request or response being relayed.
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}
# Request keys that are not sampling settings (recorded apart or not at all).
_NOT_SETTINGS = {"messages", "model", "stream", "stream_options"}


def split_reasoning(content: str, reasoning: str) -> Tuple[str, str, bool]:
    """(answer, reasoning, reasoning_ended): from a parser's separate field, or from <think> tags
    left in the answer. A reasoning that never closed is all reasoning and no answer."""
    if reasoning:
        return content, reasoning, bool(content) or THINK_CLOSE in content
    if THINK_CLOSE in content:
        before, _, after = content.rpartition(THINK_CLOSE)
        return after.strip(), before.replace(THINK_OPEN, "", 1).strip(), True
    if THINK_OPEN in content:
        before, _, after = content.partition(THINK_OPEN)
        return before.strip(), after.strip(), False
    return content, "", True


class Relay:
    """One relay per engine server: `with Relay(host, port) as relay:` ... `relay.record_to(path)`."""

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        cut_in_thinking: str = "no_answer",
        cache: Optional[RequestCache] = None,
        engine: str = "",
        start_upstream: Optional[Callable[[], Optional[Tuple[str, int]]]] = None,
    ):
        self.upstream = (upstream_host, upstream_port)
        # Set: the server is not started yet; the first request the cache cannot answer starts it
        # (returns its host and port, or None when it did not come up).
        self._start_upstream = start_upstream
        self._starting = threading.Lock()
        # Answers already given by this engine configuration (bench_app.run.cache), and its fingerprint.
        self.cache, self.engine = cache, engine
        self.cut_in_thinking = cut_in_thinking
        if cut_in_thinking not in CUT_IN_THINKING_POLICIES:
            raise ValueError(f"cut_in_thinking {cut_in_thinking!r}: one of {CUT_IN_THINKING_POLICIES}")
        self._file = None
        # Added to the cache key of the dataset being recorded: a load level's answers are its own.
        self.cache_scope = ""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.relay = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="relay", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def __enter__(self) -> Relay:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.record_to(None)
        self._server.shutdown()
        self._server.server_close()

    def record_to(
        self, path: Optional[Path], cut_in_thinking: Optional[str] = None, cache_scope: str = ""
    ) -> None:
        """Append the records of the requests that complete from now on to path (None: record nothing),
        with the dataset's cut_in_thinking policy and cache scope."""
        with self._lock:
            self.cut_in_thinking = cut_in_thinking or self.cut_in_thinking
            self.cache_scope = cache_scope
            if self._file is not None:
                self._file.close()
            self._file = None
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by record_to

    def ensure_upstream(self) -> bool:
        """Start the server if it waits for its first request; False when it did not come up."""
        with self._starting:
            if self._start_upstream is not None:
                started = self._start_upstream()
                if started is None:
                    return False
                self.upstream, self._start_upstream = started, None
        return True

    def write(self, record: Dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self._file.flush()

    def answered(
        self,
        body: Dict[str, Any],
        status: int,
        response: Dict[str, Any],
        started: float,
        cached: bool = False,
        first_token_s: Optional[float] = None,
    ) -> bool:
        """Record one non-streamed chat completion; True when its answer must reach the evaluator empty."""
        choice = (response.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content = message.get("content") or ""
        answer, reasoning, ended = split_reasoning(
            content, message.get("reasoning_content") or message.get("reasoning") or ""
        )
        finish_reason = choice.get("finish_reason")
        cut = finish_reason == "length" and bool(reasoning) and not ended
        self.write(
            {
                "messages": body.get("messages"),
                "settings": {k: v for k, v in body.items() if k not in _NOT_SETTINGS},
                "status": status,
                "finish_reason": finish_reason,
                "answer": answer,
                "reasoning": reasoning,
                "cut_in_thinking": cut,
                "usage": response.get("usage"),
                "error": None if status == 200 else (response.get("error") or response.get("message")),
                # when it arrived (epoch s) and how long it took: throughput and concurrency per load level
                "started_at": round(time.time() - (time.monotonic() - started), 3),
                "seconds": round(time.monotonic() - started, 3),
                "first_token_s": first_token_s,  # streamed answers: time to the first token
                "cached": cached,  # answered from the request cache, not by the server
            }
        )
        return cut and self.cut_in_thinking == "no_answer"


def _empty_answer(response: Dict[str, Any]) -> Dict[str, Any]:
    for choice in response.get("choices") or []:
        message = choice.get("message") or {}
        message["content"] = ""
        for key in ("reasoning_content", "reasoning"):
            if key in message:
                message[key] = None
    return response


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # the engine's own log has every request
        pass

    def do_GET(self) -> None:
        self._relay(None)

    def do_POST(self) -> None:
        self._relay(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

    def _relay(self, raw: Optional[bytes]) -> None:
        relay: Relay = self.server.relay  # type: ignore[attr-defined]
        started = time.monotonic()
        try:
            body = json.loads(raw) if raw and self.path.rstrip("/").endswith("chat/completions") else None
        except ValueError:
            body = None
        key = None
        if body is not None and relay.cache is not None and not body.get("stream"):
            key = relay.cache.key(relay.engine + relay.cache_scope, body)
            cached = relay.cache.get(key)
            if cached is not None:
                if relay.answered(body, 200, cached, started, cached=True):
                    cached = _empty_answer(cached)
                self._send(200, {"Content-Type": "application/json"}, json.dumps(cached).encode())
                return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        if not relay.ensure_upstream():
            message = json.dumps({"error": "the server did not start (see the engine log)"}).encode()
            self._send(502, {"Content-Type": "application/json"}, message)
            return
        try:
            upstream = http.client.HTTPConnection(*relay.upstream)
            upstream.request(self.command, self.path, body=raw, headers=headers)
            response = upstream.getresponse()
        except OSError as error:  # the server is gone: the evaluator sees a failed request
            self._send(502, {"Content-Type": "application/json"}, json.dumps({"error": str(error)}).encode())
            return
        reply_headers = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_HEADERS}
        if body is not None and body.get("stream"):
            self._stream(response, reply_headers, relay, body, started)
            return
        data = response.read()
        upstream.close()
        if body is not None:
            try:
                answer = json.loads(data)
            except ValueError:
                answer = {"error": data[:500].decode(errors="replace")}
            if key is not None and response.status == 200 and answer.get("choices"):
                relay.cache.put(key, relay.engine, answer)  # stored before the evaluator has it
            if relay.answered(body, response.status, answer, started):
                data = json.dumps(_empty_answer(json.loads(data))).encode()
        self._send(response.status, reply_headers, data)

    def _send(self, status: int, headers: Dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, response, headers: Dict[str, str], relay: Relay, body: Dict[str, Any], started: float):
        """Pass the server-sent events through as they come; record the assembled answer at the end."""
        self.send_response(response.status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        content, reasoning, finish_reason, usage, pending = [], [], None, None, b""
        first_token_s = None
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace").strip()
                if not text.startswith("data:") or text == "data: [DONE]":
                    continue
                try:
                    event = json.loads(text[5:])
                except ValueError:
                    continue
                usage = event.get("usage") or usage
                for choice in event.get("choices") or []:
                    delta = choice.get("delta") or {}
                    if first_token_s is None and (delta.get("content") or delta.get("reasoning_content")):
                        first_token_s = round(time.monotonic() - started, 3)
                    content.append(delta.get("content") or "")
                    reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
                    finish_reason = choice.get("finish_reason") or finish_reason
        assembled = {"content": "".join(content), "reasoning_content": "".join(reasoning)}
        answer = {"choices": [{"message": assembled, "finish_reason": finish_reason}], "usage": usage}
        relay.answered(
            body, response.status, answer, started, first_token_s=first_token_s
        )  # before the evaluator
        self.wfile.write(b"0\r\n\r\n")
