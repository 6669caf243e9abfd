"""Composition and planning: pure, no server."""

import json

import pytest
from conftest import plan_for

from bench_app.common.errors import UserError

DOC = ["model=qwen3_30b", "engine=vllm"]


def test_default_plan_has_sample_datasets_and_two_engine_groups():
    plan = plan_for([])
    assert [d.short for d in plan.datasets] == [
        "sample_ceval",
        "sample_mmlu",
        "sample_gsm8k",
        "sample_longbenchv2",
    ]
    assert [g.datasets for g in plan.groups] == [
        ["sample_ceval", "sample_mmlu", "sample_gsm8k"],
        ["sample_longbenchv2"],
    ]
    base, long = plan.groups
    assert base.engine_args["max_model_len"] == 2048 and base.engine_args["rope_scaling"] is None
    assert long.engine_args["max_model_len"] == 4096
    assert long.engine_args["rope_scaling"] == {
        "rope_type": "yarn",
        "factor": 2.0,
        "original_max_position_embeddings": 2048,
    }
    assert "--max-model-len" in long.argv and long.argv[long.argv.index("--max-model-len") + 1] == "4096"


@pytest.mark.parametrize("order", [["ceval", "longbenchv2"], ["longbenchv2", "ceval"]])
def test_document_worked_example_in_both_orders(order):
    plan = plan_for(DOC + [f"dataset=[{','.join(order)}]"])
    ceval, longbench = plan.dataset("ceval"), plan.dataset("longbenchv2")
    assert ceval.engine_args["max_model_len"] == 32768
    assert ceval.engine_args["rope_scaling"] is None
    assert ceval.override_applied == {}
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    assert longbench.engine_args["max_model_len"] == 131072
    assert longbench.engine_args["rope_scaling"] == yarn
    assert longbench.override_applied == {"max_model_len": 131072, "rope_scaling": yarn}
    for key in ("model_path", "tensor_parallel_size", "dtype", "gpu_memory_utilization", "trust_remote_code"):
        assert ceval.engine_args[key] == longbench.engine_args[key]
    assert (
        ceval.engine_args["tensor_parallel_size"] == 2
        and ceval.engine_args["model_path"] == "Qwen/Qwen3-30B-A3B"
    )
    assert ceval.evaluator.max_out_len == 2048 and longbench.evaluator.max_out_len == 256
    assert ceval.evaluator.generation_kwargs == {"temperature": 0.0, "seed": 42}
    assert len(plan.groups) == 2


def test_override_never_leaks_whatever_the_order():
    for order in (["longbenchv2", "ceval", "mmlu", "gsm8k"], ["ceval", "longbenchv2", "gsm8k", "mmlu"]):
        plan = plan_for(DOC + [f"dataset=[{','.join(order)}]"])
        for short in ("ceval", "mmlu", "gsm8k"):
            assert plan.dataset(short).engine_args["max_model_len"] == 32768
            assert plan.dataset(short).engine_args["rope_scaling"] is None
        assert len(plan.groups) == 2
        assert sorted(len(g.datasets) for g in plan.groups) == [1, 3]


def test_restart_per_dataset_gives_one_group_per_dataset():
    plan = plan_for(["execution.restart_per_dataset=true"])
    assert len(plan.groups) == 4


def test_yarn_translates_to_hf_overrides_with_current_key():
    plan = plan_for(DOC + ["dataset=[longbenchv2]"])
    argv = plan.groups[0].argv
    overrides = json.loads(argv[argv.index("--hf-overrides") + 1])
    assert overrides == {
        "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
        "max_position_embeddings": 131072,
    }
    assert "--rope-scaling" not in argv


def test_rope_scaling_as_json_string_and_older_key():
    value = '{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768}'
    plan = plan_for(
        DOC
        + [
            "dataset=[ceval]",
            f"+datasets.ceval.vllm_config_override.rope_scaling='{value}'",
            "engine.hf_rope_field=rope_scaling",
        ]
    )
    dataset = plan.dataset("ceval")
    assert dataset.engine_args["rope_scaling"] == value  # recorded as written
    argv = plan.groups[0].argv
    assert json.loads(argv[argv.index("--hf-overrides") + 1])["rope_scaling"]["factor"] == 4.0


def test_tiny_model_keeps_its_rope_theta():
    plan = plan_for([])
    assert plan.groups[1].launch_details["hf_overrides"]["rope_parameters"]["rope_theta"] == 100000.0


@pytest.mark.parametrize(
    "value,message",
    [
        ('{"rope_type":"yarn","factor":4.0', "not valid JSON"),
        ('{"factor":4.0}', "needs a rope_type"),
        ('{"rope_type":"yarn","factor":-1}', "positive number"),
    ],
)
def test_malformed_rope_scaling_is_a_user_error(value, message):
    with pytest.raises(UserError, match=message):
        plan_for(DOC + ["dataset=[ceval]", f"vllm.rope_scaling='{value}'"])


def test_extra_engine_args_without_code_changes():
    plan = plan_for(
        [
            "vllm.max_num_seqs=128",
            "vllm.enable_prefix_caching=false",
            "+vllm.extra_args.block_size=32",
            "+vllm.extra_args.enable_chunked_prefill=true",
            "vllm.quantization=fp8",
        ]
    )
    argv = plan.groups[0].argv
    assert argv[argv.index("--max-num-seqs") + 1] == "128"
    assert "--no-enable-prefix-caching" in argv and "--enable-chunked-prefill" in argv
    assert argv[argv.index("--block-size") + 1] == "32" and argv[argv.index("--quantization") + 1] == "fp8"


def test_override_with_unknown_engine_key_is_rejected():
    with pytest.raises(UserError, match="max_model_lenn"):
        plan_for(["+datasets.sample_ceval.vllm_config_override.max_model_lenn=5"])


def test_overrides_are_typed_like_the_model_args_once_per_distinct_override():
    # Two datasets with the same override: one check; a numeric string becomes the schema's int.
    same = "+datasets.{}.vllm_config_override.max_num_seqs='8'"
    plan = plan_for([same.format("sample_ceval"), same.format("sample_mmlu")])
    assert [plan.dataset(s).engine_args["max_num_seqs"] for s in ("sample_ceval", "sample_mmlu")] == [8, 8]
    assert plan.dataset("sample_gsm8k").engine_args["max_num_seqs"] is None  # no override, no leak
    assert plan.dataset("sample_ceval").engine_args is not plan.dataset("sample_mmlu").engine_args
    with pytest.raises(UserError, match="sample_mmlu .*invalid engine argument max_num_seqs: Value .many"):
        plan_for(["+datasets.sample_mmlu.vllm_config_override.max_num_seqs=many"])


def test_run_wide_generation_kwargs_win_over_dataset_values():
    plan = plan_for(["+aisbench.generation_kwargs.temperature=0.7"])
    assert all(d.evaluator.generation_kwargs == {"temperature": 0.7, "seed": 42} for d in plan.datasets)


def test_subsets_and_num_prompts():
    plan = plan_for(["aisbench.num_prompts=3", "datasets.sample_mmlu.num_prompts=1"])
    assert plan.dataset("sample_ceval").evaluator.subsets == ["computer_network", "high_school_physics"]
    assert plan.dataset("sample_ceval").evaluator.num_prompts == 3
    assert plan.dataset("sample_mmlu").evaluator.num_prompts == 1


def test_a_new_engine_is_one_module_and_one_conf_file():
    plan = plan_for(["engine=sglang", "model=qwen3_30b", "dataset=[ceval,longbenchv2]"])
    assert plan.engine.name == "sglang" and len(plan.groups) == 2
    argv = plan.groups[1].argv
    assert argv[:4] == ["python", "-m", "sglang.launch_server", "--model-path"]
    assert argv[argv.index("--context-length") + 1] == "131072" and argv[argv.index("--tp-size") + 1] == "2"
    overrides = json.loads(argv[argv.index("--json-model-override-args") + 1])
    assert overrides["rope_scaling"] == {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32768,
    }
    assert "--json-model-override-args" not in plan.groups[0].argv


@pytest.mark.parametrize(
    "override,message",
    [
        ("+engine.foo=1", "unknown setting(s) ['foo'] for VllmEngine. Valid engine settings: command, env"),
        ("engine._target_=bench_app.nowhere.Engine", "cannot import 'bench_app.nowhere.Engine'"),
        ("evaluator._target_=bench_app.engines.vllm.VllmEngine", "is not an Evaluator dataclass"),
        ("engine.command=5", "invalid settings for VllmEngine (engine.command)"),
        ("+engine.env.CUDA_VISIBLE_DEVICES=[0,1]", "env.CUDA_VISIBLE_DEVICES: must be a string, got [0, 1]"),
        ("+evaluator.env.X={a:1}", "evaluator.env.X: must be a string"),
    ],
)
def test_components_refuse_bad_targets_and_settings_naming_the_valid_keys(override, message):
    with pytest.raises(UserError) as raised:
        plan_for([override])
    assert message in str(raised.value)


def _hf_cache_with(root, repo, config):
    folder = root / "hub" / ("models--" + repo.replace("/", "--"))
    (folder / "snapshots" / "abc123").mkdir(parents=True)
    (folder / "snapshots" / "abc123" / "config.json").write_text(json.dumps(config))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("abc123")


DOC_EXAMPLE = ["model=qwen3_30b", "dataset=[ceval,longbenchv2]", "engine=vllm"]


def test_hub_model_rope_parameters_come_from_the_local_hf_cache(tmp_path, monkeypatch):
    own = {"rope_type": "default", "rope_theta": 1000000.0, "partial_rotary_factor": 0.5}
    _hf_cache_with(tmp_path, "Qwen/Qwen3-30B-A3B", {"rope_parameters": own, "max_position_embeddings": 40960})
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    plan = plan_for(DOC_EXAMPLE)
    rope = plan.groups[1].launch_details["hf_overrides"]["rope_parameters"]
    assert rope == {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "partial_rotary_factor": 0.5,
    }
    assert not plan.problems and plan.groups[0].launch_details["hf_overrides"] is None


def test_hub_model_missing_from_the_cache_is_a_problem_unless_rope_theta_is_given(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    plan = plan_for(DOC_EXAMPLE)
    assert len(plan.problems) == 1 and "Give it inside rope_scaling" in plan.problems[0]
    given = plan_for(
        [*DOC_EXAMPLE, "+datasets.longbenchv2.vllm_config_override.rope_scaling.rope_theta=1000000"]
    )
    assert not given.problems
    assert given.groups[1].launch_details["hf_overrides"]["rope_parameters"]["rope_theta"] == 1000000


def test_the_embedded_default_computes_in_the_dtype_fastest_on_this_cpu(tmp_path):
    """bfloat16 only where the CPU computes it natively; elsewhere float32, which vLLM-CPU runs faster. The
    choice is resolved into the plan (and so the snapshot) like any other setting."""
    from bench_app.config.resolvers import cpu_dtype

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n")  # a 2-core EPYC without AVX-512
    assert cpu_dtype(cpuinfo) == "float32"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512bw\n")  # AVX-512 without its bf16 instructions
    assert cpu_dtype(cpuinfo) == "float32"
    cpuinfo.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_dtype(cpuinfo) == "bfloat16"
    assert cpu_dtype(tmp_path / "missing") == "float32"
    plan = plan_for([])
    assert {d.engine_args["dtype"] for d in plan.datasets} == {cpu_dtype()}
    assert plan_for(["vllm.dtype=bfloat16"]).datasets[0].engine_args["dtype"] == "bfloat16"  # yours wins


@pytest.mark.parametrize("size", ["0", "100001"])
def test_a_concurrency_aisbench_refuses_is_refused_at_planning(size):
    with pytest.raises(
        UserError, match=rf"aisbench.batch_size={size} .* outside 1..100000 \(TINFER-PARAM-001\)"
    ):
        plan_for([f"aisbench.batch_size={size}"])
