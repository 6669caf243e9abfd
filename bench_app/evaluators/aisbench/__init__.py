"""AISBench (ais-bench-benchmark): the evaluator, its dataset catalog, and the scripts that run in
AISBench's own environment (aisbench_host.py, aisbench_prompts.py, aisbench_samples.py)."""


def __getattr__(name: str):
    # The evaluator's public name (conf/evaluator/aisbench.yaml `_target_`, and every snapshot's),
    # imported on first use so the catalog alone stays light.
    if name == "AisbenchEvaluator":
        from bench_app.evaluators.aisbench.evaluator import AisbenchEvaluator

        return AisbenchEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
