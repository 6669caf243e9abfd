"""End to end with the real vLLM (CPU build) and the real AISBench on the sample datasets (~4 min)."""

from pathlib import Path

from conftest import load, run_cli


def processes_with(text: str):
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


def test_embedded_default_end_to_end(workdir):
    done = run_cli(["benchmark.name=e2e", "aisbench.num_prompts=1"], workdir, timeout=1500)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    run_dir = workdir / "outputs/e2e"
    results = load(run_dir / "results.yaml")
    assert results["status"] == "completed" and results["server_starts"] == 2
    for short in ("sample_ceval", "sample_mmlu", "sample_gsm8k", "sample_longbenchv2"):
        entry = results["datasets"][short]
        assert entry["status"] == "ok", entry
        assert (
            isinstance(entry["metrics"]["accuracy"], float) and 0.0 <= entry["metrics"]["accuracy"] <= 100.0
        )
        assert list((run_dir / short).glob("*/results/bench_app/*.json")), short
    # Read back from the servers, not assumed: base context and the YaRN long context.
    base, long = results["servers"]
    assert base["max_model_len"] == 2048 and long["max_model_len"] == 4096
    assert base["version"] == "0.32.0" and base["port"] != 0
    assert "--hf-overrides" in long["argv"] and "--hf-overrides" not in base["argv"]
    per_long = load(run_dir / "configs/per_dataset/sample_longbenchv2.yaml")
    assert per_long["server"]["max_model_len"] == 4096 and per_long["result"]["status"] == "ok"
    assert per_long["vllm_config_override_applied"]["rope_scaling"]["factor"] == 2.0
    metadata = load(run_dir / "configs/metadata.yaml")
    assert metadata["run"]["status"] == "completed"
    assert (
        metadata["versions"]["vllm"] == "0.32.0"
        and metadata["versions"]["vllm_server"]["group_0"] == "0.32.0"
    )
    assert "| sample_longbenchv2 |" in (run_dir / "summary.md").read_text()
    for server in results["servers"]:
        assert not processes_with(f"--port {server['port']} "), "a server process survived"
