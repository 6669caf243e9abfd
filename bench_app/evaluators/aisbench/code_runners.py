"""Which AISBench datasets are scored by running the code the model wrote, and whether bench_app can run
that code in the sandbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

from bench_app.config.schema import EvaluatorSettings

# AISBench's evaluators that run the model's code -> None where each program runs in the sandbox
# (evaluators/overlay/sitecustomize.py), else why it cannot.
CODE_EVALUATORS: Dict[str, Optional[str]] = {
    "LCBCodeGenerationEvaluator": None,
    "LCBCodeExecutionEvaluator": None,
    "LCBTestOutputEvaluator": None,
    "HumanEvalEvaluator": None,
    "MBPPEvaluator": None,
    "MBPPEvaluator2": None,
    "MBPPPassKEvaluator": None,
    "HumanEvalPlusEvaluator": "it hands the programs to evalplus, which runs them its own way",
    "HumanevalXEvaluator": "it compiles and runs programs of five languages with the machine's toolchains",
}
EVALPLUS = "MBPPEvaluator(metric='MBPPPlus')"  # MBPP+ is scored by evalplus too
CODE_EVALUATORS[EVALPLUS] = CODE_EVALUATORS["HumanEvalPlusEvaluator"]


def code_runners(
    stock_folder: Optional[Path], datasets: Sequence[Tuple[str, str, EvaluatorSettings]]
) -> Dict[str, Tuple[str, Optional[str]]]:
    """short -> (the evaluator that runs the model's code, None where the sandbox holds it, else why not),
    read from each config's `type=<Evaluator>`: a stock config's file (in stock_folder), or your own config
    with the files beside it that it may take its eval_cfg from."""
    found = {}
    for short, name, settings in datasets:
        if settings.config_file:
            files = sorted(Path(settings.config_file).parent.glob("*.py"))
        else:
            files = sorted(stock_folder.glob(f"*/{name}.py"))[:1] if stock_folder else []
        texts = [f.read_text(errors="replace") for f in files]
        types = {t for text in texts for t in re.findall(r"\btype\s*=\s*['\"]?(\w+)", text)}
        if any(re.search(r"\bmetric\s*=\s*['\"]MBPPPlus", text) for text in texts):
            types.add(EVALPLUS)
        runners = sorted(t for t in types if t in CODE_EVALUATORS)
        if runners:
            runner = ([t for t in runners if CODE_EVALUATORS[t]] or runners)[0]  # one the sandbox cannot hold
            found[short] = (runner, CODE_EVALUATORS[runner])
    return found
