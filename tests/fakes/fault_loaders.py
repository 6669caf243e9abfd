"""A dataset loader that fails on purpose, the way its data folder's `fault` file says: `raise` (an exception
in AISBench's task), `kill` (the task's process dies by SIGKILL), `hang` (it never returns). Only for the
tests of how an evaluation's failures are reported (tests/test_task_host.py)."""

import json
import os
import signal
import time

from ais_bench.benchmark.datasets.base import BaseDataset
from ais_bench.benchmark.registry import LOAD_DATASET
from datasets import Dataset, DatasetDict


@LOAD_DATASET.register_module()
class FaultyGSM8K(BaseDataset):
    @staticmethod
    def load(path):
        with open(os.path.join(path, "fault"), encoding="utf-8") as handle:
            fault = handle.read().strip()
        if fault == "raise":
            raise ValueError(f"the loader cannot read {path}: broken on purpose")
        if fault == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == "hang":
            time.sleep(3600)
        with open(os.path.join(path, "test.jsonl"), encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
        return DatasetDict({"train": Dataset.from_list(rows[:1]), "test": Dataset.from_list(rows)})
