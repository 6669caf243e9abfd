"""What the relay (bench_app.run.relay.proxy) costs at an evaluator's concurrency, against a FAST STAND-IN
server: bench_app's own overhead only; no model answers here.

    .venv/bin/python benchmarks/relay_throughput.py [--requests N] [--levels 16,256,1024]

Three processes, as in a run: a stand-in OpenAI server (aiohttp, one canned answer, no model), the relay
as a run has it (request cache and requests.jsonl recording on, every request a cache miss), and an
aiohttp load generator holding C requests in flight. For each concurrency C, N requests straight to the
stand-in and N through the relay, back to back: requests/s, p50/p95 latency, the relay's added p50,
failed requests. Targets: 0 failed at 1,024; >= 0.8x direct requests/s at 256; <= 1 ms added p50 at 16.
`--profile` also runs the relay under cProfile at the highest level and prints where its time goes.
On a 2-core machine the client, the relay and the server share the cores; the figures say so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ANSWER = {
    "id": "stand-in",
    "object": "chat.completion",
    "model": "stand-in",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "answer:7"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 60, "completion_tokens": 3, "total_tokens": 63},
}


def serve_stand_in() -> None:
    """The fast stand-in server: every chat completion answered at once with the same answer."""
    import uvloop
    from aiohttp import web

    data = json.dumps(ANSWER).encode()
    delay_s = float(sys.argv[3]) / 1000

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        if delay_s:
            await asyncio.sleep(delay_s)
        return web.Response(body=data, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), backlog=4096, access_log=None, print=None)


def serve_relay() -> None:
    """The relay as a run has it: cache and recording on, in a folder of its own."""
    from bench_app.records.cache import RequestCache
    from bench_app.run.relay.proxy import Relay

    upstream, folder, port_file = int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    profile = len(sys.argv) > 5
    if profile:
        import cProfile

        profiler = cProfile.Profile()
    with Relay("127.0.0.1", upstream, cache=RequestCache(folder / "requests.sqlite"), engine="e") as relay:
        relay.record_to(folder / "requests.jsonl")
        port_file.write_text(str(relay.port))
        if profile:  # the relay's event loop thread is where its time goes
            relay._loop.call_soon_threadsafe(profiler.enable)
        sys.stdin.read()  # until the benchmark closes our stdin
        if profile:
            relay._loop.call_soon_threadsafe(profiler.disable)
            time.sleep(0.5)
            profiler.dump_stats(sys.argv[5])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(port: int, requests: int, concurrency: int, tag: str):
    import aiohttp

    latencies, failed = [], 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        counter = iter(range(requests))

        async def worker():
            nonlocal failed
            for i in counter:
                body = {"model": "m", "messages": [{"role": "user", "content": f"{tag} question {i}"}]}
                started = time.perf_counter()
                try:
                    async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as r:
                        await r.read()
                        ok = r.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    failed += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    latencies.sort()

    def pick(share: float) -> float:
        return latencies[min(len(latencies) - 1, int(share * len(latencies)))] * 1000 if latencies else 0.0

    return {"rps": len(latencies) / wall, "p50": pick(0.5), "p95": pick(0.95), "failed": failed}


def describe(figures: dict) -> str:
    text = (
        f"{figures['rps']:7.0f} req/s p50 {figures['p50']:6.1f} ms p95 {figures['p95']:6.1f} ms "
        f"failed {figures['failed']}"
    )
    if "relay_cpu_us" in figures:
        relay, server = figures["relay_cpu_us"], figures["server_cpu_us"]
        text += f", CPU per request: relay {relay:.0f} us, stand-in {server:.0f} us"
    return text


def cpu(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    return sum(map(int, Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]))


def wait_listening(port: int) -> None:
    import socket

    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--levels", default="16,256,1024")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=0,
        help="the stand-in's time per answer (0: at once; a model takes longer)",
    )
    options = parser.parse_args()
    levels = [int(x) for x in options.levels.split(",")]
    import uvloop

    upstream_port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, __file__, "--serve-stand-in", str(upstream_port), str(options.delay_ms)]
    )
    wait_listening(upstream_port)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        argv = [sys.executable, __file__, "--serve-relay", str(upstream_port), tmp, str(port_file)]
        if options.profile:
            argv.append(str(Path(tmp) / "relay.prof"))
        relay = subprocess.Popen(argv, stdin=subprocess.PIPE)
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        relay_port = int(port_file.read_text())
        try:
            for level in levels:
                n = max(options.requests, level)
                uvloop.run(load(upstream_port, min(n, 500), level, "warm"))
                direct = uvloop.run(load(upstream_port, n, level, f"d{level}"))
                before = cpu(relay.pid), cpu(upstream.pid)
                relayed = uvloop.run(load(relay_port, n, level, f"r{level}"))
                ticks = os.sysconf("SC_CLK_TCK")
                relayed["relay_cpu_us"] = (cpu(relay.pid) - before[0]) / ticks / n * 1e6
                relayed["server_cpu_us"] = (cpu(upstream.pid) - before[1]) / ticks / n * 1e6
                rows.append((level, n, direct, relayed))
                print(
                    f"c={level:5d} n={n}: direct {describe(direct)} | relay {describe(relayed)}", flush=True
                )
        finally:
            relay.stdin.close()
            relay.wait(timeout=60)
            upstream.terminate()
            upstream.wait()
        records = sum(1 for _ in open(Path(tmp) / "requests.jsonl"))
        print(
            f"relay recorded {records} requests; cache {os.path.getsize(Path(tmp) / 'requests.sqlite')} bytes"
        )
        if options.profile:
            import pstats

            pstats.Stats(str(Path(tmp) / "relay.prof")).sort_stats("tottime").print_stats(25)
    print(
        f"\nmachine: {os.cpu_count()} cores shared by the load generator, the relay and the stand-in server "
        f"(which answers in {options.delay_ms:g} ms)"
    )
    for level, n, direct, relayed in rows:
        print(
            f"  concurrency {level}: relay/direct {relayed['rps'] / direct['rps']:.2f}x requests/s, "
            f"added p50 {relayed['p50'] - direct['p50']:.2f} ms, failed {relayed['failed']} of {n} "
            f"(direct {direct['failed']}); the relay's CPU per request {relayed['relay_cpu_us']:.0f} us "
            f"(one core: {1e6 / max(relayed['relay_cpu_us'], 1):.0f} requests/s at most)"
        )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-stand-in":
        serve_stand_in()
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve-relay":
        serve_relay()
    else:
        main()
