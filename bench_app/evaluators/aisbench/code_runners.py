"""Which AISBench datasets are scored by running the code the model wrote, and how AISBench runs it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from bench_app.config.schema import EvaluatorSettings

# AISBench's evaluators that run the model's code -> whether they start each program as a process of its
# own (the sandbox holds those: evaluators/overlay/sitecustomize.py); the others `exec` it in-process.
CODE_EVALUATORS = {
    "LCBCodeGenerationEvaluator": True,
    "LCBCodeExecutionEvaluator": False,
    "LCBTestOutputEvaluator": False,
    "HumanEvalEvaluator": False,
    "HumanEvalPlusEvaluator": False,
    "HumanevalXEvaluator": False,
    "MBPPEvaluator": False,
    "MBPPEvaluator2": False,
    "MBPPPassKEvaluator": False,
}


def code_runners(
    stock_folder: Optional[Path], datasets: Sequence[Tuple[str, str, EvaluatorSettings]]
) -> Dict[str, Tuple[str, bool]]:
    """short -> (the evaluator that runs the model's code, whether each program is a process of its own),
    read from each config's `type=<Evaluator>`: a stock config's file (in stock_folder), or your own config
    with the files beside it that it may take its eval_cfg from."""
    found = {}
    for short, name, settings in datasets:
        if settings.config_file:
            files = sorted(Path(settings.config_file).parent.glob("*.py"))
        else:
            files = sorted(stock_folder.glob(f"*/{name}.py"))[:1] if stock_folder else []
        types = {
            t for f in files for t in re.findall(r"\btype\s*=\s*['\"]?(\w+)", f.read_text(errors="replace"))
        }
        runners = sorted(t for t in types if t in CODE_EVALUATORS)
        if runners:
            runner = ([t for t in runners if not CODE_EVALUATORS[t]] or runners)[0]  # the weakest decides
            found[short] = (runner, CODE_EVALUATORS[runner])
    return found
