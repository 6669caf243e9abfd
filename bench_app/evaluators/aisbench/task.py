"""The AISBench task bench_app writes: the task config file and AISBench's command line for it."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Sequence

from bench_app.common.errors import EvaluationError
from bench_app.common.files import copy_with_siblings
from bench_app.config.schema import EvaluatorSettings
from bench_app.evaluators.aisbench.install import AisbenchInstall

TASK_FILE = "aisbench_task.py"
PROMPTS_SCRIPT = "aisbench_prompts.py"  # runs in the evaluator's environment (context budget)
HOST_SCRIPT = "aisbench_host.py"  # runs in the evaluator's environment (task host)
SAMPLES_SCRIPT = "aisbench_samples.py"  # runs in the evaluator's environment (per-sample records)
LOG_FILE = "aisbench.log"
MODEL_ABBR = "bench_app"

# Loads users' own dataset config files the way AISBench does (mmengine), every lazy import built, and says
# which `*_datasets` lists each defines, or what failed where (run with the evaluator environment's python).
_CHECK_CONFIGS_SCRIPT = r"""
import json, os, re, sys, traceback, warnings
warnings.filterwarnings("ignore")
from mmengine.config import Config

def walk(value):
    if isinstance(value, dict):
        for key in list(value.keys()):
            walk(value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            walk(item)

def where(path, error):
    # (file, line) of the failure: mmengine's lazy imports name them (in FILE, line N), else the
    # deepest frame in the config, else a line the message points at.
    found = re.search(r" in (\S+), line (\d+)", str(error))
    if found and os.path.isfile(found.group(1)):
        return found.group(1), int(found.group(2))
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename == path:
            return path, frame.lineno
    found = re.search(r"line (\d+)", str(error))
    if found:
        return path, int(found.group(1))
    for module in re.findall(r"from (\S+) import", str(error)):
        for number, text in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
            if module in text:
                return path, number
    return path, None

out = {}
for path in sys.argv[1:]:
    try:
        cfg = Config.fromfile(path)
        names = sorted(k for k in cfg.keys() if k.endswith("_datasets") and isinstance(cfg[k], (list, tuple)))
        for name in names:
            walk(cfg[name])
        names = [name for name in names if cfg[name]]
        missing = {"error": "it defines no `*_datasets` list", "line": None}
        out[path] = {"variables": names} if names else missing
    except BaseException as error:
        first = (str(error).splitlines() or [""])[0][:300]
        file, line = where(path, error)
        out[path] = {"error": f"{type(error).__name__}: {first}", "file": file, "line": line}
print(json.dumps(out))
"""
CUSTOM_CONFIG_FOLDER = "dataset_config"  # <work dir>/dataset_config/: a dataset's own config and its siblings


def check_config_files(install: AisbenchInstall, paths: Sequence[str]) -> Dict[str, dict]:
    """{path: {"variables": [...]}} or {path: {"error": ..., "file": where, "line": N}} for each config
    file (the file that failed may be one it imports), loaded in the evaluator's environment."""
    done = subprocess.run(
        [install.python, "-c", _CHECK_CONFIGS_SCRIPT, *paths],
        capture_output=True,
        text=True,
        timeout=300,
        env=install.env,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise EvaluationError(
            "cannot load dataset config files in the evaluator environment (is AISBench installed?)",
            done.stderr[-2000:],
        )
    return json.loads(lines[-1])


def copy_config_folder(config_file: Path, into: Path) -> Dict[str, Any]:
    """The config file with the .py files beside it (what its relative imports may name), copied into
    `into`; the stock-config entry a task file imports it by, relative to the task file."""
    copy_with_siblings(config_file, into)
    return {"module": f".{into.name}.{config_file.stem}"}


def evaluator_python(command: List[str]) -> str:
    """The interpreter of the evaluator's environment (next to its console script)."""
    candidate = Path(command[0]).parent / "python"
    return str(candidate) if candidate.exists() else "python3"


def request_kwargs(settings: EvaluatorSettings) -> Dict[str, Any]:
    """What every request of the dataset carries beside its messages: the generation kwargs, and the
    thinking switch as chat_template_kwargs.enable_thinking when it is set."""
    kwargs = copy.deepcopy(settings.generation_kwargs)
    if settings.thinking is not None:
        template = dict(kwargs.get("chat_template_kwargs") or {})
        template["enable_thinking"] = bool(settings.thinking)
        kwargs["chat_template_kwargs"] = template
    return kwargs


def task_config_text(
    stock: Dict[str, Any],
    model_module: str,
    settings: EvaluatorSettings,
    host: str,
    port: int,
    served_model: str,
    tokenizer_path: str,
) -> str:
    """The AISBench config file for one dataset: literal values only (mmengine's lazy import forbids
    calls). The model is AISBench's own model config (aisbench.model: its type, stream, postprocessors)
    with bench_app's values over it. generation_kwargs replace the stock ones whole, so that what the
    snapshot records is all the requests carry."""
    perf = settings.mode == "perf"
    model = {
        "abbr": MODEL_ABBR,
        "path": tokenizer_path if perf else "",
        "model": served_model,
        "retry": settings.retry,
        "host_ip": host,
        "host_port": port,
        "url": "",
        "max_out_len": settings.max_out_len,
        "batch_size": settings.batch_size,
        "generation_kwargs": request_kwargs(settings),
    }
    lines = [
        "# Written by bench_app for one dataset; literal values only.",
        "from mmengine.config import read_base",
        "with read_base():",
        f"    from {stock['module']} import {', '.join(stock['variables'])}",
        f"    from {model_module} import models as _stock_models",
        "",
        f"models = [dict(_stock_models[0], **{model!r})]",
        f"_stock = {' + '.join(stock['variables'])}",
    ]
    if settings.subsets is not None:
        lines.append(f"_stock = [d for d in _stock if d.get('name') in {settings.subsets!r}]")
    if settings.data_path:
        lines.append(f"_stock = [dict(d, path={settings.data_path!r}) for d in _stock]")
    if settings.sample_ids is not None:  # the drawn probe: AISBench's test_range as an index list
        ranges = [f"[0:0] + {ids!r}" for ids in settings.sample_ids]
        lines.append(f"_ranges = {ranges!r}")
        lines.append(
            "_stock = [dict(d, reader_cfg=dict(d['reader_cfg'], test_range=r))"
            " for d, r in zip(_stock, _ranges)]"
        )
    if settings.repeats > 1:  # AISBench's own repeats: each question n times in one task, scored per replica
        lines.append(f"_stock = [dict(d, n={settings.repeats}, k={settings.repeats}) for d in _stock]")
    lines += ["datasets = _stock", "summarizer = dict(attr='accuracy')", ""]
    return "\n".join(lines)


def evaluator_argv(
    command: List[str], task_file: str, work_dir: str, settings: EvaluatorSettings
) -> List[str]:
    argv = [
        *command,
        task_file,
        "--work-dir",
        work_dir,
        "--mode",
        settings.mode,
        "--max-num-workers",
        str(settings.max_num_workers),
    ]
    if settings.num_prompts is not None:
        argv += ["--num-prompts", str(settings.num_prompts)]
    # Always: AISBench's own default is one warmup request, in every mode.
    argv += ["--num-warmups", str(settings.num_warmups)]
    if settings.dump_eval_details:
        argv.append("--dump-eval-details")
    for key, value in sorted(settings.extra_args.items()):
        flag = "--" + str(key).replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value not in (False, None):
            argv += [flag, *(str(v) for v in value)] if isinstance(value, list) else [flag, str(value)]
    return argv
