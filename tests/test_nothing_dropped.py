"""Nothing set is silently dropped: every key either reaches a tool / bench_app or is refused, naming the
valid keys; tool flags the schema does not model go through extra_args on purpose."""

import dataclasses

import pytest
from conftest import load, plan_for, run_cli

from bench_app.common.errors import UserError
from bench_app.config.schema import AisbenchConf, BenchAppConfig, DatasetConf, ExecutionConf, VllmArgs


@pytest.mark.parametrize(
    "override,message",
    [
        ("+vllm.foo=1", "vllm.foo: unknown setting. Valid keys of vllm: model_path"),
        ("+aisbench.merge_ds=true", "other ais_bench flags go under aisbench.extra_args"),
        ("+datasets.sample_gsm8k.bar=1", "Valid keys of datasets.sample_gsm8k: name, description"),
        ("+datasets.sample_gsm8k.model_config.top_k=3", "Valid keys of datasets.sample_gsm8k.model_config"),
        ("+datasets.sample_gsm8k.vllm_config_override.baz=1", "unknown engine argument(s) ['baz']"),
        ("+execution.retries=1", "execution.retries: unknown setting"),
        ("+engine.foo=1", "unknown setting(s) ['foo'] for VllmEngine"),
        ("+evaluator.bar=1", "unknown setting(s) ['bar'] for AisbenchEvaluator"),
    ],
)
def test_unknown_keys_are_refused_naming_the_valid_ones(override, message):
    with pytest.raises(UserError) as raised:
        plan_for([override])
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "override,flags",
    [
        ("+aisbench.extra_args.merge_ds=true", ["--merge-ds"]),
        ("+aisbench.extra_args.merge_ds=false", []),
        ("+aisbench.extra_args.pressure_time=30", ["--pressure-time", "30"]),
        ("+vllm.extra_args.block_size=32", ["--block-size", "32"]),
        ("+vllm.extra_args.enable_chunked_prefill=true", ["--enable-chunked-prefill"]),
    ],
)
def test_extra_args_reach_the_tools_command_line(override, flags):
    plan = plan_for(["dataset=[sample_gsm8k]", override])
    dataset = plan.datasets[0]
    argv = (
        plan.groups[0].argv
        if override.startswith("+vllm")
        else plan.evaluator.command_preview(dataset.short, dataset.evaluator)
    )
    tail = argv[len(argv) - len(flags) :] if flags else []
    assert tail == flags
    if not flags:
        assert not any("merge" in a for a in argv)


def _fields(schema):
    return {f.name for f in dataclasses.fields(schema)}


def test_every_key_of_the_snapshot_is_a_declared_setting(workdir):
    done = run_cli(
        ["benchmark.name=keys", "execution.dry_run=true", "+aisbench.extra_args.merge_ds=true"], workdir
    )
    assert done.returncode == 0, done.stderr
    snapshot = load(workdir / "outputs" / "keys" / "configs" / "config_snapshot.yaml")
    plan = plan_for(["+aisbench.extra_args.merge_ds=true"])
    assert set(snapshot["vllm"]) <= _fields(VllmArgs)
    assert set(snapshot["aisbench"]) <= _fields(AisbenchConf) | {"datasets"}
    assert set(snapshot["execution"]) <= _fields(ExecutionConf)
    assert set(snapshot["engine"]) <= _fields(type(plan.engine)) | {"_target_"}
    assert set(snapshot["evaluator"]) <= _fields(type(plan.evaluator)) | {"_target_"}
    for entry in snapshot["datasets"].values():
        assert set(entry) <= _fields(DatasetConf) | {"short"}
    top = set(snapshot) - {"snapshot_format"} - {"datasets"}
    assert top <= _fields(BenchAppConfig)
    per_dataset = load(workdir / "outputs" / "keys" / "configs" / "per_dataset" / "sample_gsm8k.yaml")
    assert per_dataset["aisbench"]["extra_args"] == {"merge_ds": True}
