"""*real*. The tiny model on vLLM-CPU in float32 and in bfloat16, with vLLM's default thread binding (on 2
cores it reserves one: one OpenMP thread) and with every core bound: generated tokens per second for 8
requests of 128 tokens, 4 at once (after one warm-up request), one server per configuration, back to back.

    .venv/bin/python benchmarks/cpu_dtype.py             # this CPU as it is
    .venv/bin/python benchmarks/cpu_dtype.py --as-avx2   # this CPU limited to its AVX2 code paths
    .venv/bin/python benchmarks/cpu_dtype.py --as-avx2 --make-run   # `make run`'s run in each dtype instead

--make-run: the embedded default end to end (what `make run` runs: `bench-app`, every sample prompt) with
vllm.dtype=float32 and then bfloat16, back to back, in a temporary folder: wall time and each dataset's
evaluation time.

--as-avx2 approximates a CPU without AVX-512 on one that has it: torch's kernels (ATEN_CPU_CAPABILITY=avx2),
oneDNN's (ONEDNN_MAX_CPU_ISA=AVX2) and vLLM-CPU's own (its _C_AVX2 library, chosen by telling vLLM the CPU
has no AVX-512) all take their AVX2 paths. The cores, caches and memory stay this machine's: it measures the
code paths, not another CPU.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench_app.common.net import free_port, http_status  # noqa: E402
from bench_app.config.resolvers import cpu_dtype, cpu_flags  # noqa: E402

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct"
REQUESTS, TOKENS, AT_ONCE = 8, 128, 4
# Imported first by every Python of the server (PYTHONPATH): vLLM asks torch whether the CPU has AVX-512.
AVX2_ONLY = """import torch.cpu
torch.cpu._is_avx512_supported = lambda: False
torch.cpu._is_avx512_bf16_supported = lambda: False
"""


def measure(dtype: str, all_cores: bool, as_avx2: bool, log: Path) -> dict:
    port = free_port("127.0.0.1")
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", HF_HUB_OFFLINE="1", VLLM_NO_USAGE_STATS="1")
    if all_cores:
        env["VLLM_CPU_OMP_THREADS_BIND"] = f"0-{os.cpu_count() - 1}"
    if as_avx2:
        env.update(PYTHONPATH=str(avx2_only_folder()), ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    argv = [
        str(ROOT / ".venv-engine/bin/vllm"),
        "serve",
        str(MODEL),
        "--port",
        str(port),
        "--dtype",
        dtype,
        "--max-model-len",
        "2048",
        "--enforce-eager",
        "--seed",
        "0",
        "--served-model-name",
        "m",
    ]
    with open(log, "w") as out:
        server = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        started = time.monotonic()
        while http_status(f"http://127.0.0.1:{port}/health") != 200:
            if server.poll() is not None or time.monotonic() - started > 600:
                raise RuntimeError(f"the server did not start; see {log}")
            time.sleep(0.5)
        ready_s = time.monotonic() - started

        def ask(n: int, tokens: list) -> None:
            body = {
                "model": "m",
                "messages": [{"role": "user", "content": f"Tell a long story, number {n}."}],
                "max_tokens": TOKENS,
                "ignore_eos": True,
                "temperature": 0.0,
            }
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                json.dumps(body).encode(),
                {"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=600) as reply:
                tokens.append(json.loads(reply.read())["usage"]["completion_tokens"])

        ask(-1, [])  # warm-up
        tokens: list = []
        begun = time.monotonic()
        for wave in range(0, REQUESTS, AT_ONCE):
            threads = [threading.Thread(target=ask, args=(n, tokens)) for n in range(wave, wave + AT_ONCE)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        seconds = time.monotonic() - begun
        text = log.read_text(errors="replace")
        binding = next(
            (
                line.split("INFO", 1)[-1].strip()
                for line in text.splitlines()
                if "core ids" in line or "OMP threads" in line
            ),
            "",
        )
        return {
            "tokens_per_s": round(sum(tokens) / seconds, 1),
            "tokens": sum(tokens),
            "seconds": round(seconds, 1),
            "ready_s": round(ready_s, 1),
            "binding": binding[:160],
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def avx2_only_folder() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="avx2_only_"))
    (folder / "sitecustomize.py").write_text(AVX2_ONLY)
    return folder


def make_run(as_avx2: bool) -> None:
    import yaml

    where = Path(tempfile.mkdtemp(prefix="cpu_dtype_runs_"))
    extra = []
    if as_avx2:
        folder = avx2_only_folder()
        extra = [
            f"++engine.env.PYTHONPATH={folder}",
            "++engine.env.ATEN_CPU_CAPABILITY=avx2",
            "++engine.env.ONEDNN_MAX_CPU_ISA=AVX2",
        ]
    for dtype in ("float32", "bfloat16"):
        started = time.monotonic()
        done = subprocess.run(
            [str(ROOT / ".venv/bin/bench-app"), f"benchmark.name={dtype}", f"vllm.dtype={dtype}", *extra],
            cwd=where,
            capture_output=True,
            text=True,
        )
        wall = time.monotonic() - started
        results = yaml.safe_load((where / "outputs" / dtype / "results.yaml").read_text())
        each = ", ".join(
            f"{short} {entry.get('evaluation_s')} s {entry['status']}"
            for short, entry in results["datasets"].items()
        )
        print(f"make run, {dtype:9s} exit {done.returncode}, wall {wall:.1f} s: {each}", flush=True)
    print(f"runs: {where / 'outputs'}")


def main() -> None:
    as_avx2 = "--as-avx2" in sys.argv
    flags = sorted(f for f in cpu_flags() if f.startswith(("avx512", "amx", "avx2")))
    print(f"CPU: {os.cpu_count()} cores, flags {' '.join(flags) or 'none of avx2/avx512/amx'}")
    print(f"as AVX2 only: {as_avx2}; the embedded default's dtype here: {cpu_dtype()}")
    if "--make-run" in sys.argv:
        make_run(as_avx2)
        return
    logs = Path(tempfile.mkdtemp(prefix="cpu_dtype_"))
    for dtype in ("float32", "bfloat16"):
        for all_cores in (False, True):
            name = f"{dtype}_{'all_cores' if all_cores else 'default_binding'}"
            found = measure(dtype, all_cores, as_avx2, logs / f"{name}.log")
            print(
                f"{name:28s} {found['tokens_per_s']:6.1f} tokens/s  ({found['tokens']} tokens in "
                f"{found['seconds']} s; ready in {found['ready_s']} s)  {found['binding']}",
                flush=True,
            )
    print(f"server logs: {logs}")


if __name__ == "__main__":
    main()
