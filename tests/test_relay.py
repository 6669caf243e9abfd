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

import pytest

from bench_app.run.relay import Relay, split_reasoning

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
        content, reasoning, finish = ANSWERS[body["messages"][-1]["content"]]
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


@pytest.fixture
def upstream():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
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
    from bench_app.run.cache import RequestCache

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

    from bench_app.run.cache import CACHE_SCHEMA_VERSION, open_cache

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

    from bench_app.run.cache import RequestCache, engine_fingerprint

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
    assert len({key, *changed}) == 1 + len(changed)
    assert RequestCache.key(engine, {**body, "stream_options": {"include_usage": True}}) == key


def test_two_processes_sharing_one_cache_lose_no_entry(tmp_path):
    """The jobs of a sweep write one shared cache at once."""
    from bench_app.run.cache import RequestCache

    script = (
        "import sys; from pathlib import Path; from bench_app.run.cache import RequestCache\n"
        "cache = RequestCache(Path(sys.argv[1]))\n"
        "for i in range(200):\n"
        "    cache.put(f'{sys.argv[2]}-{i}', 'engine', {'choices': [{'message': {'content': str(i)}}]})\n"
    )
    path = tmp_path / "requests.sqlite"
    writers = [subprocess.Popen([sys.executable, "-c", script, str(path), name]) for name in ("a", "b", "c")]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    cache = RequestCache(path)
    assert cache.stats()["answers"] == 600 and cache.get("b-199")["choices"][0]["message"]["content"] == "199"
    cache.close()
