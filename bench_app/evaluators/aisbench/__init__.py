"""AISBench (ais-bench-benchmark): the evaluator, its dataset catalog, and the scripts that run in
AISBench's own environment (aisbench_host.py, aisbench_prompts.py, aisbench_samples.py)."""


def __getattr__(name: str):
    # Snapshots written before the evaluator had its own module name
    # `_target_: bench_app.evaluators.aisbench.AisbenchEvaluator`; they still replay.
    if name == "AisbenchEvaluator":
        from bench_app.evaluators.aisbench.evaluator import AisbenchEvaluator

        return AisbenchEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
