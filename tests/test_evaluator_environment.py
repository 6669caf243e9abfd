"""The evaluator's environment is looked into once per run (AisbenchEvaluator.install): planning's checks and
every dataset's task share what was found, and one process locates the stock configs the run needs."""

import subprocess

from conftest import plan_for

from bench_app.evaluators.base import Endpoint


def test_one_process_locates_the_stock_configs_and_the_tasks_ask_no_more(monkeypatch, tmp_path):
    plan = plan_for(["dataset=[sample_gsm8k,sample_mmlu]"])
    evaluator, names = plan.evaluator, [dataset.name for dataset in plan.datasets]
    launched = []
    run = subprocess.run

    def counted_run(argv, *args, **kwargs):
        launched.append(argv)
        return run(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "run", counted_run)
    evaluator.prepare_run(names)
    endpoint = Endpoint("127.0.0.1", 1, "served", str(tmp_path))
    tasks = [
        evaluator.prepare(dataset.short, dataset.name, dataset.evaluator, endpoint, tmp_path / dataset.short)
        for dataset in plan.datasets
    ]
    evaluator.prepare_run(names)  # asked again: nothing left to locate
    assert len(launched) == 1 and sorted(launched[0][3:]) == sorted(names)
    assert all(task.argv[0] == evaluator.command[0] for task in tasks)
    assert [task.env["HF_HOME"] for task in tasks] == [str(task.work_dir / ".hf_home") for task in tasks]
