"""The request relay between the evaluator and the server: requests pass unchanged, every answer is
recorded as it arrives (finish reason, answer and reasoning apart, usage), and an answer cut inside its
thinking reaches the evaluator empty."""

import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench_app.records.answers import split_reasoning
from bench_app.run.relay.proxy import Relay

ANSWERS = {
    # user text -> (content, reasoning_content, finish_reason)
    "parsed": ("answer:7", "3 + 4 = 7", "stop"),
    "tags": ("<think>3 + 4 = 7</think>answer:7", None, "stop"),
    "cut parsed": (None, "let me think: answer:7 maybe", "length"),
    "cut tags": ("<think>let me think: answer:7 maybe", None, "length"),
    "plain": ("answer:7", None, "length"),
}


class StandIn(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def _send(self, data: bytes, content_type="application/json"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(json.dumps({"data": [{"id": "m"}]}).encode())

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StandIn.seen.append(body)
        text = body["messages"][-1]["content"]
        content, reasoning, finish = ANSWERS.get(text, (f"echo:{text}", None, "stop"))
        if body.get("stream"):
            events = [{"choices": [{"delta": {"reasoning_content": reasoning}}]}] if reasoning else []
            events += [{"choices": [{"delta": {"content": c}}]} for c in (content or "")]
            events += [
                {"choices": [{"delta": {}, "finish_reason": finish}], "usage": {"completion_tokens": 9}}
            ]
            text = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            self._send(text.encode(), "text/event-stream")
            return
        message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
        answer = {
            "choices": [{"message": message, "finish_reason": finish}],
            "usage": {"completion_tokens": 9},
        }
        self._send(json.dumps(answer).encode())


class Upstream(ThreadingHTTPServer):
    request_queue_size = 2048  # as a real server's (uvicorn's): the relay passes the concurrency on
    daemon_threads = True


@pytest.fixture
def upstream():
    server = Upstream(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def post(port, text, **extra):
    body = {"model": "m", "messages": [{"role": "user", "content": text}], "temperature": 0.6, **extra}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


def test_answers_are_recorded_and_a_cut_in_thinking_reaches_the_evaluator_empty(upstream, tmp_path):
    out = tmp_path / "requests.jsonl"
    with Relay("127.0.0.1", upstream) as relay:
        relay.record_to(out)
        replies = {text: json.loads(post(relay.port, text)) for text in ANSWERS}
        assert json.loads(urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/v1/models").read())["data"]
    assert StandIn.seen[-1]["temperature"] == 0.6  # forwarded unchanged
    records = {r["messages"][-1]["content"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == set(ANSWERS)
    assert records["parsed"]["answer"] == "answer:7" and records["parsed"]["reasoning"] == "3 + 4 = 7"
    assert records["tags"]["answer"] == "answer:7" and records["tags"]["reasoning"] == "3 + 4 = 7"
    assert records["parsed"]["finish_reason"] == "stop" and records["parsed"]["usage"] == {
        "completion_tokens": 9
    }
    assert records["parsed"]["settings"] == {"temperature": 0.6}
    for cut in ("cut parsed", "cut tags"):
        assert records[cut]["cut_in_thinking"] is True and records[cut]["answer"] == ""
        message = replies[cut]["choices"][0]["message"]
        assert message["content"] == "" and not message.get("reasoning_content")
    assert records["plain"]["cut_in_thinking"] is False  # cut, but it was not thinking
    assert replies["parsed"]["choices"][0]["message"]["reasoning_content"] == "3 + 4 = 7"


def test_as_is_keeps_cut_answers_and_streams_pass_through(upstream, tmp_path):
    out = tmp_path / "requests.jsonl"
    with Relay("127.0.0.1", upstream, cut_in_thinking="as_is") as relay:
        relay.record_to(out)
        reply = json.loads(post(relay.port, "cut tags"))
        streamed = post(relay.port, "parsed", stream=True)
    assert reply["choices"][0]["message"]["content"].startswith("<think>")
    assert streamed.endswith("data: [DONE]\n\n") and '"reasoning_content": "3 + 4 = 7"' in streamed
    cut, stream = map(json.loads, out.read_text().splitlines())
    assert cut["cut_in_thinking"] is True
    assert (stream["answer"], stream["reasoning"], stream["finish_reason"]) == (
        "answer:7",
        "3 + 4 = 7",
        "stop",
    )
    # timing for the load levels: when it started, how long, and (streamed only) the first token
    assert 0 <= stream["first_token_s"] <= stream["seconds"] + 0.001 and cut["first_token_s"] is None
    assert abs(stream["started_at"] - time.time()) < 60


def test_a_server_that_is_gone_is_a_failed_request(tmp_path):
    with Relay("127.0.0.1", 9) as relay:  # nothing listens on the discard port
        with pytest.raises(urllib.error.HTTPError) as error:
            post(relay.port, "parsed")
    assert error.value.code == 502


def test_split_reasoning():
    assert split_reasoning("<think>a</think> b", "") == ("b", "a", True)
    assert split_reasoning("b", "a") == ("b", "a", True)
    assert split_reasoning("", "a") == ("", "a", False)
    assert split_reasoning("<think>a", "") == ("", "a", False)
    assert split_reasoning("plain", "") == ("plain", "", True)


def test_the_cache_answers_what_it_has_and_misses_on_any_change(upstream, tmp_path):
    from bench_app.records.cache import RequestCache

    cache = RequestCache(tmp_path / "requests.sqlite")
    out = tmp_path / "requests.jsonl"
    StandIn.seen.clear()
    with Relay("127.0.0.1", upstream, cache=cache, engine="engine-a") as relay:
        relay.record_to(out)
        first = post(relay.port, "parsed")
        again = post(relay.port, "parsed")
        post(relay.port, "parsed", temperature=0.7)  # another sampling setting: a miss
        post(relay.port, "parsed", seed=2)  # a repeat's seed: a miss
        post(relay.port, "parsed", chat_template_kwargs={"enable_thinking": False})  # thinking off: a miss
    with Relay("127.0.0.1", upstream, cache=cache, engine="engine-b") as relay:  # another engine config
        post(relay.port, "parsed")
    assert first == again and len(StandIn.seen) == 5  # the second request never reached the server
    cached = [json.loads(line)["cached"] for line in out.read_text().splitlines()]
    assert cached == [False, True, False, False, False]
    assert cache.stats()["answers"] == 5 and cache.stats()["engines"] == 2
    cache.close()


def test_a_cache_that_cannot_be_used_is_set_aside_with_a_warning(tmp_path):
    import sqlite3

    from bench_app.records.cache import CACHE_SCHEMA_VERSION, open_cache

    broken = tmp_path / "broken.sqlite"
    broken.write_bytes(b"not a database at all" * 100)
    said = []
    assert open_cache(broken, said.append) is None and "cannot be read" in said[0]
    newer = tmp_path / "newer.sqlite"
    with sqlite3.connect(newer) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(CACHE_SCHEMA_VERSION + 1),))
    assert open_cache(newer, said.append) is None and "written by a newer bench_app" in said[1]


def test_every_change_that_changes_an_answer_is_another_key(tmp_path):
    """max_out_len (max_tokens), temperature, seed, thinking: in the request; the rope override and the
    model files: in the engine's fingerprint."""

    from bench_app.records.cache import RequestCache
    from bench_app.run.planning.identity import engine_fingerprint

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"rope_theta": 100000}')
    (model / "model.safetensors").write_bytes(b"0" * 10)
    args = {"model_path": str(model), "max_model_len": 2048, "rope_scaling": None}
    engine = engine_fingerprint(args)
    body = {"messages": [{"role": "user", "content": "q"}], "max_tokens": 96, "temperature": 0.0, "seed": 1}
    key = RequestCache.key(engine, body)
    changed = [
        RequestCache.key(engine, {**body, "max_tokens": 128}),
        RequestCache.key(engine, {**body, "temperature": 0.6}),
        RequestCache.key(engine, {**body, "seed": 2}),
        RequestCache.key(engine, {**body, "chat_template_kwargs": {"enable_thinking": False}}),
        RequestCache.key(
            engine_fingerprint({**args, "rope_scaling": {"rope_type": "yarn", "factor": 2.0}}), body
        ),
    ]
    (model / "config.json").write_text('{"rope_theta": 1000000}')  # another model file
    changed.append(RequestCache.key(engine_fingerprint(args), body))
    (model / "model.safetensors").write_bytes(b"0" * 11)  # other weights
    changed.append(RequestCache.key(engine_fingerprint(args), body))
    # every file that shapes the prompt or the defaults: the server builds the prompt from the messages
    for name, text in (
        ("chat_template.jinja", "{{ messages }}"),
        ("tokenizer.json", '{"model": {}}'),
        ("tokenizer_config.json", '{"bos_token": "<s>"}'),
        ("generation_config.json", '{"temperature": 0.7}'),
    ):
        unchanged = RequestCache.key(engine_fingerprint(args), body)
        assert RequestCache.key(engine_fingerprint(args), body) == unchanged  # nothing changed: a hit
        (model / name).write_text(text)
        changed.append(RequestCache.key(engine_fingerprint(args), body))
    template = tmp_path / "template.jinja"  # --chat-template given as an engine argument
    template.write_text("{{ a }}")
    with_template = {**args, "extra_args": {"chat_template": str(template)}}
    changed.append(RequestCache.key(engine_fingerprint(with_template), body))
    template.write_text("{{ b }}")
    changed.append(RequestCache.key(engine_fingerprint(with_template), body))
    assert len({key, *changed}) == 1 + len(changed)
    assert RequestCache.key(engine, {**body, "stream_options": {"include_usage": True}}) == key


def test_two_processes_sharing_one_cache_lose_no_entry(tmp_path):
    """The jobs of a sweep write one shared cache at once."""
    from bench_app.records.cache import RequestCache

    script = (
        "import sys; from pathlib import Path; from bench_app.records.cache import RequestCache\n"
        "cache = RequestCache(Path(sys.argv[1]))\n"
        "for i in range(200):\n"
        "    cache.put(f'{sys.argv[2]}-{i}', 'engine', {'choices': [{'message': {'content': str(i)}}]})\n"
    )
    path = tmp_path / "requests.sqlite"
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), name]) for name in ("a", "b", "c")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    cache = RequestCache(path)
    assert (
        cache.stats()["answers"] == 600 and cache.lookup("b-199")["choices"][0]["message"]["content"] == "199"
    )
    cache.close()


# ------------------------------------------------------------------ at an evaluator's full concurrency


class Misbehaving(BaseHTTPRequestHandler):
    """An upstream that hangs (path /hang) or breaks off its answer half-way (any other path)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/hang"):
            time.sleep(30)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b'{"choices": [')  # and the connection closes
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def misbehaving():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def test_a_hung_or_broken_upstream_is_a_502_with_the_reason(misbehaving):
    import http.client

    with Relay("127.0.0.1", misbehaving, upstream_timeout_s=0.5) as relay:
        connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=10)
        started = time.monotonic()
        connection.request("POST", "/hang/v1/chat/completions", body=b"{}")
        hung = connection.getresponse()
        timed_out = "no answer within execution.upstream_timeout_s (0.5 s)"
        assert hung.status == 502 and timed_out in hung.read().decode()
        assert time.monotonic() - started < 5
        connection.request("POST", "/v1/chat/completions", body=b"{}")  # the same connection goes on
        broken = connection.getresponse()
        assert broken.status == 502 and "the server failed" in broken.read().decode()
        # Counted by cause for the dataset's reason: the evaluator itself sees only "Bad Gateway".
        total, failures = relay.failures()
        assert total == 2 and failures[timed_out] == 1 and len(failures) == 2, failures


def test_a_chunked_request_body_is_read_whole_and_the_connection_stays_usable(upstream, tmp_path):
    import http.client

    out = tmp_path / "requests.jsonl"
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "parsed"}]}).encode()
    with Relay("127.0.0.1", upstream) as relay:
        relay.record_to(out)
        connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=10)
        for _ in range(2):  # no Content-Length: chunked, then a second request on the same connection
            connection.request(
                "POST", "/v1/chat/completions", body=iter([body[:10], body[10:]]), encode_chunked=True
            )
            reply = connection.getresponse()
            assert reply.status == 200 and json.loads(reply.read())["choices"][0]["message"]["content"]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["answer"] for r in records] == ["answer:7", "answer:7"]


def test_a_restarted_server_on_another_port_takes_over(upstream, tmp_path):
    with Relay("127.0.0.1", 9) as relay:
        with pytest.raises(urllib.error.HTTPError):
            post(relay.port, "parsed")
        relay.upstream = ("127.0.0.1", upstream)  # what the run does after a restart
        assert json.loads(post(relay.port, "parsed"))["choices"][0]["message"]["content"] == "answer:7"


def _concurrent_posts(port, texts, concurrency):
    import asyncio

    import aiohttp

    async def main():
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:

            async def one(text):
                body = {"model": "m", "messages": [{"role": "user", "content": text}]}
                async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as r:
                    return r.status, (await r.json())["choices"][0]["message"]["content"]

            return await asyncio.gather(*(one(t) for t in texts))

    return asyncio.run(main())


def test_a_thousand_connections_at_once_are_all_answered_and_recorded(upstream, tmp_path):
    from bench_app.records.cache import RequestCache

    cache = RequestCache(tmp_path / "requests.sqlite")
    out = tmp_path / "requests.jsonl"
    texts = [f"q{i}" for i in range(1000)]
    with Relay("127.0.0.1", upstream, cache=cache, engine="e") as relay:
        relay.record_to(out)
        answers = _concurrent_posts(relay.port, texts, 1000)
        again = _concurrent_posts(relay.port, texts[:100], 100)  # all from the cache now
        assert relay.write_error is None
    assert answers == [(200, f"echo:{t}") for t in texts] and again == answers[:100]
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 1100 and sum(r["cached"] for r in records) == 100
    assert cache.stats()["answers"] == 1000
    cache.close()


RELAY_PROCESS = """
import sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_relay import StandIn, Upstream
from bench_app.records.cache import RequestCache
from bench_app.run.relay.proxy import Relay
server = Upstream(("127.0.0.1", 0), StandIn)
threading.Thread(target=server.serve_forever, daemon=True).start()
folder = Path(sys.argv[1])
with Relay("127.0.0.1", server.server_address[1], cache=RequestCache(folder / "requests.sqlite"),
           engine="e") as relay:
    relay.record_to(folder / "requests.jsonl")
    print(relay.port, flush=True)
    time.sleep(600)
"""


def test_kill_9_loses_no_answer_the_evaluator_was_given(tmp_path):
    """Every answer that reached the evaluator is in the cache and in requests.jsonl, whenever the relay's
    process is killed."""
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    from bench_app.records.cache import RequestCache

    relay = subprocess.Popen(
        [sys.executable, "-c", RELAY_PROCESS, str(tmp_path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = int(relay.stdout.readline())
    given, stop = [], threading.Event()

    def client(worker):
        for i in range(10_000):
            if stop.is_set():
                return
            try:
                text = f"w{worker}-{i}"
                if json.loads(post(port, text))["choices"][0]["message"]["content"] == f"echo:{text}":
                    given.append(text)
            except OSError:  # the relay is gone
                return

    with ThreadPoolExecutor(16) as pool:
        for worker in range(16):
            pool.submit(client, worker)
        wait_for = time.monotonic() + 30
        while len(given) < 300 and time.monotonic() < wait_for:
            time.sleep(0.05)
        os.kill(relay.pid, signal.SIGKILL)  # mid-flight: requests are in every stage of the relay
        relay.wait()
        stop.set()
    assert len(given) >= 300
    recorded = {
        json.loads(line)["messages"][-1]["content"]
        for line in (tmp_path / "requests.jsonl").read_text().splitlines()
        if line.endswith("}")  # a line cut by the kill was never acknowledged
    }
    assert set(given) <= recorded
    cache = RequestCache(tmp_path / "requests.sqlite")
    for text in given:
        body = {"model": "m", "messages": [{"role": "user", "content": text}], "temperature": 0.6}
        assert cache.lookup(RequestCache.key("e", body)) is not None, text
    cache.close()


def test_answers_are_stored_compressed_and_a_cache_of_plain_json_rows_still_reads(tmp_path):
    import sqlite3

    from bench_app.records.cache import CACHE_SCHEMA_VERSION, RequestCache

    old = tmp_path / "old.sqlite"  # as the first schema wrote it: the answer as JSON text
    with sqlite3.connect(old) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute(
            "CREATE TABLE answers (key TEXT PRIMARY KEY, engine TEXT, stored REAL, used REAL, response TEXT)"
        )
        db.execute("INSERT INTO answers VALUES ('k', 'e', 0, 0, ?)", (json.dumps({"choices": [1]}),))
    cache = RequestCache(old)
    assert cache.lookup("k") == {"choices": [1]}
    long_answer = {"choices": [{"message": {"reasoning_content": "step by step, " * 600}}]}
    cache.put("long", "e", long_answer)
    assert cache.lookup("long") == long_answer
    cache.close()
    with sqlite3.connect(old) as db:  # older readers must now refuse it: it holds compressed rows
        assert db.execute("SELECT value FROM meta").fetchone()[0] == str(CACHE_SCHEMA_VERSION)
        (stored,) = db.execute("SELECT response FROM answers WHERE key = 'long'").fetchone()
    assert isinstance(stored, bytes) and len(stored) < len(json.dumps(long_answer)) / 10


def test_with_the_runs_own_cache_a_record_refers_to_it_for_the_reasoning(upstream, tmp_path):
    """Each answer stored once in the run folder: the cache holds the text, the record its length and hash
    (and a cache off or shared: the record keeps the text)."""
    from bench_app.records.answers import reasoning_of, text_sha256
    from bench_app.records.cache import RequestCache

    cache = RequestCache(tmp_path / "requests.sqlite")
    own, shared = tmp_path / "own.jsonl", tmp_path / "shared.jsonl"
    with Relay("127.0.0.1", upstream, cache=cache, engine="e", reasoning_in_cache=True) as relay:
        relay.record_to(own)
        post(relay.port, "parsed")
        post(relay.port, "parsed")  # from the cache: the same reference
    with Relay("127.0.0.1", upstream, cache=cache, engine="e2") as relay:
        relay.record_to(shared)
        post(relay.port, "parsed")
    for record in map(json.loads, own.read_text().splitlines()):
        assert record["reasoning"] is None and record["answer"] == "answer:7"
        assert record["reasoning_chars"] == 9 and record["reasoning_sha256"] == text_sha256("3 + 4 = 7")
        assert reasoning_of(cache.lookup(record["cache_key"])) == "3 + 4 = 7"
    (kept,) = map(json.loads, shared.read_text().splitlines())
    assert kept["reasoning"] == "3 + 4 = 7" and "cache_key" not in kept
    cache.close()


def test_a_runs_own_cache_is_never_pruned(tmp_path):
    from conftest import run_cli

    from bench_app.records.cache import RequestCache

    run = tmp_path / "outputs" / "run"
    (run / "configs").mkdir(parents=True)
    cache = RequestCache(run / "requests.sqlite")
    cache.put("k", "e", {"choices": [{"message": {"content": "a"}}]})
    cache.close()
    refused = run_cli(["cache", "prune", str(run), "--older-than-days", "0"], tmp_path)
    assert refused.returncode == 2 and "is a run folder" in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr
    stats = run_cli(["cache", "stats", str(run)], tmp_path)
    assert stats.returncode == 0 and "1 answer(s)" in stats.stdout


def test_a_miss_says_what_changed_since_the_answers_it_did_not_reuse(tmp_path):
    from bench_app.records.cache import RequestCache
    from bench_app.run.planning.identity import engine_identity, fingerprint_of, why_not_reused

    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "chat_template.jinja").write_text("{{ messages }}")
    args = {"model_path": str(model), "max_model_len": 2048}
    cache = RequestCache(tmp_path / "requests.sqlite")
    before = engine_identity(args)
    cache.remember_engine(fingerprint_of(before), before)
    cache.put("k", fingerprint_of(before), {"choices": []})
    assert why_not_reused(cache, fingerprint_of(before), before) is None  # its own answers: reused
    (model / "chat_template.jinja").write_text("{{ other }}")
    after = engine_identity({**args, "max_model_len": 4096})
    said = why_not_reused(cache, fingerprint_of(after), after)
    assert "1 cached answer(s) of this model are not reused" in said
    assert "chat_template.jinja changed" in said and "engine_args.max_model_len: 2048 -> 4096" in said
    # The answers of another engine group of the same run are no news: nothing to say about them.
    assert why_not_reused(cache, fingerprint_of(after), after, siblings={fingerprint_of(before)}) is None
    cache.put("old", "an-earlier-release-fingerprint", {"choices": []})  # no identity recorded
    other = engine_identity({"model_path": str(tmp_path / "another"), "max_model_len": 2048})
    assert "come from an earlier bench_app" in why_not_reused(cache, fingerprint_of(other), other)
    cache.close()


def test_a_record_that_cannot_be_written_never_holds_an_answer_back(upstream, tmp_path):
    blocked = tmp_path / "is_a_folder"
    blocked.mkdir()
    with Relay("127.0.0.1", upstream) as relay:
        relay.record_to(blocked)  # cannot be opened as a file
        assert json.loads(post(relay.port, "parsed"))["choices"][0]["message"]["content"] == "answer:7"
        assert "IsADirectoryError" in relay.write_error
