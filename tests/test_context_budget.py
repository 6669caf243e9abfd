"""The context budget: prompts rendered as AISBench sends them (chat template applied by the model's
tokenizer) are counted and compared with max_model_len before any server starts."""

from conftest import load, run_cli

DRY = ["execution.dry_run=true"]


def test_dry_run_shows_the_budget_table_and_records_it_per_dataset(workdir):
    done = run_cli(["benchmark.name=fit", *DRY], workdir)
    assert done.returncode == 0, done.stderr
    assert "context budget" in done.stdout and "headroom" in done.stdout
    budget = load(workdir / "outputs/fit/configs/per_dataset/sample_longbenchv2.yaml")["context_budget"]
    # ~3,500-token contexts against the YaRN-extended 4096: they fit, with the chat template counted.
    assert budget["prompts"] == 2 and 3300 < budget["longest_prompt_tokens"] < 4096 - 32
    assert budget["max_model_len"] == 4096 and budget["not_fitting"] == 0
    assert budget["headroom"] == 4096 - budget["longest_prompt_tokens"] - budget["max_out_len"]
    gsm8k = load(workdir / "outputs/fit/configs/per_dataset/sample_gsm8k.yaml")["context_budget"]
    assert gsm8k["prompts"] == 4 and gsm8k["max_model_len"] == 2048


def test_prompts_that_do_not_fit_stop_the_run_before_any_server_naming_the_fixes(workdir):
    args = ["dataset=[sample_gsm8k,sample_longbenchv2]", "vllm.max_model_len=1024"]  # YaRN x2 -> 2048
    refused = run_cli(["benchmark.name=nofit", *args], workdir)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 2 and "Traceback" not in output
    assert (
        "dataset sample_longbenchv2: 2 of 2 prompt(s) do not fit" in output
        and "> max_model_len 2048" in output
    )
    assert "vllm_config_override" in output and "max_out_len" in output
    assert not (workdir / "outputs" / "nofit").exists()  # nothing started, nothing written
    dry = run_cli(["benchmark.name=nofit_dry", *DRY, *args], workdir)
    assert dry.returncode == 2 and "do not fit" in dry.stdout + dry.stderr
    warned = run_cli(["benchmark.name=warned", *DRY, *args, "execution.context_check=warn"], workdir)
    assert warned.returncode == 0, warned.stderr
    budget = load(workdir / "outputs/warned/configs/per_dataset/sample_longbenchv2.yaml")["context_budget"]
    assert budget["not_fitting"] == 2 and budget["headroom"] < 0
    off = run_cli(["benchmark.name=off", *DRY, *args, "execution.context_check=off"], workdir)
    assert off.returncode == 0 and "context budget" not in off.stdout


def test_a_tokenizer_that_is_not_available_offline_skips_the_check_with_the_reason(workdir):
    env = {"HF_HOME": str(workdir / "empty_hf"), "HF_HUB_CACHE": str(workdir / "empty_hf" / "hub")}
    done = run_cli(
        ["benchmark.name=nohub", *DRY, "model=qwen3_30b", "dataset=[sample_gsm8k]"], workdir, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "not checked: cannot load the tokenizer of 'Qwen/Qwen3-30B-A3B' offline" in done.stdout
    budget = load(workdir / "outputs/nohub/configs/per_dataset/sample_gsm8k.yaml")["context_budget"]
    assert "cannot load the tokenizer" in budget["skipped"]


def test_only_the_prompts_that_will_be_sent_are_budgeted(workdir):
    done = run_cli(["benchmark.name=two", *DRY, "dataset=[sample_gsm8k]", "aisbench.num_prompts=2"], workdir)
    assert done.returncode == 0, done.stderr
    assert (
        load(workdir / "outputs/two/configs/per_dataset/sample_gsm8k.yaml")["context_budget"]["prompts"] == 2
    )


def test_answers_cut_at_max_out_len_are_counted_and_shown_as_a_reason(workdir, vllm_server):
    args = vllm_server.args(
        "benchmark.name=cut",
        "dataset=[sample_gsm8k]",
        "aisbench.num_prompts=2",
        "datasets.sample_gsm8k.model_config.max_out_len=4",
        "execution.progress=false",
    )
    done = run_cli(args, workdir, env=vllm_server.env(), timeout=600)
    results = load(workdir / "outputs/cut/results.yaml")
    entry = results["datasets"]["sample_gsm8k"]
    assert entry["finished_requests"] == {"length": 2}, (done.stdout[-2000:], entry)
    assert "2 of 2 answer(s) were cut at max_out_len" in entry["reason"]
    assert "cut at max_out_len" in (workdir / "outputs/cut/summary.md").read_text()


def test_num_prompts_keeps_the_first_prompts_of_each_subset_as_aisbench_does():
    from bench_app.run.planning.budget import summarise

    counts = {"prompt_tokens": [10, 11, 12, 50, 51], "max_out_len": [4] * 5, "subset_sizes": [3, 2]}
    one_each = summarise(counts, 100, num_prompts=1)
    assert one_each.prompts == 2 and one_each.longest_prompt_tokens == 50  # the 2nd subset's first
    assert summarise(counts, 100, num_prompts=2).prompts == 4
    assert summarise(counts, 100).prompts == 5
    legacy = {"prompt_tokens": [10, 11, 50], "max_out_len": [4] * 3}  # no subset boundaries recorded
    assert summarise(legacy, 100, num_prompts=2).prompts == 2
