"""Every AISBench dataset config as a dataset option, `dataset=ais/<config name>`, with no YAML to write.

AISBench ships its dataset configs as Python files (ais_bench/benchmark/configs/datasets/<family>/<name>.py,
268 in the pinned version). Each becomes an entry `dataset/ais/<name>` of Hydra's ConfigStore that writes
`datasets.<name>` like a curated file does: `name: <name>`, a max_out_len by kind (long reasoning and
code: 4096; synthetic perf requests: 512; else 1024), temperature 0 and seed 42. Entries are stored only
that a command line (or the experiment it picks) names, so other runs pay nothing; the
curated files in conf/dataset/ remain for what needs a description, subsets or an engine override.

    bench-app catalog [TEXT]     # the options (those containing TEXT), family, max_out_len, file
    bench-app catalog --models   # AISBench's model configs, the names aisbench.model takes
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence

PREFIX = "ais/"
# Families whose answers are long reasoning or code: a 1024-token budget would cut most answers.
LONG_ANSWER_FAMILIES = frozenset(
    {"aime2024", "aime2025", "aime2026", "dapo_math", "math", "gpqa", "hle", "livecodebench", "humaneval",
     "humanevalx", "mbpp", "bbh", "gsm8k", "mgsm", "mmlu_pro", "drop", "BFCL"}
)  # fmt: skip


@lru_cache(maxsize=8)
def configs_dir(env_root: Optional[Path] = None, kind: str = "datasets") -> Optional[Path]:
    """AISBench's config folder of a kind (datasets, models), found without importing AISBench: in the
    virtual environment at env_root (e.g. the evaluator's), or in this one."""
    if env_root is not None:
        found = sorted(env_root.glob(f"lib/python3*/site-packages/ais_bench/benchmark/configs/{kind}"))
        return found[0] if found else None
    spec = importlib.util.find_spec("ais_bench")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "benchmark" / "configs" / kind
    return folder if folder.is_dir() else None


@lru_cache(maxsize=8)
def stock_configs(folder: Optional[Path] = None) -> Dict[str, Path]:
    """config name -> its file, for every AISBench dataset config (of this environment, or of `folder`)."""
    folder = folder or configs_dir()
    if folder is None:
        return {}
    return {
        path.stem: path
        for path in sorted(folder.rglob("*.py"))
        if not path.name.startswith("_") and "__pycache__" not in path.parts
    }


# ------------------------------------------------------------------ model configs (aisbench.model)
def model_configs(folder: Optional[Path] = None) -> Dict[str, Path]:
    """config name -> its file, for every AISBench model config (configs/models/**/<name>.py)."""
    return stock_configs(folder or configs_dir(kind="models"))


def model_module(config: Path, folder: Path) -> str:
    """The Python module of a model config file in the models folder, as a task file imports it."""
    parts = config.relative_to(folder).with_suffix("").parts
    return "ais_bench.benchmark.configs.models." + ".".join(parts)


def _streams(path: Path) -> bool:
    return bool(re.search(r"\bstream\s*=\s*True\b", path.read_text(encoding="utf-8", errors="replace")))


def stream_variant(name: str, known: Dict[str, Path]) -> Optional[str]:
    """The streaming config of a model config's family among the known ones (model_configs()): perf mode
    measures streamed requests. Itself if it streams, else vllm_api_general_chat -> vllm_api_stream_chat,
    vllm_api_general -> vllm_api_general_stream."""
    candidates = [name, name.replace("general", "stream", 1), f"{name}_stream"]
    return next((c for c in candidates if c in known and _streams(known[c])), None)


def model_table(text: str = "") -> List[str]:
    """The model configs as printed lines: name, whether it streams, file."""
    folder = configs_dir(kind="models")
    rows = [(n, "stream" if _streams(p) else "-", p) for n, p in model_configs(folder).items() if text in n]
    width = max((len(r[0]) for r in rows), default=10)
    lines = [f"{'aisbench.model':<{width}}  stream  file (under {folder})"]
    lines += [f"{name:<{width}}  {stream:<6}  {path.relative_to(folder)}" for name, stream, path in rows]
    total = len(model_configs(folder))
    lines.append(f"{len(rows)} of {total} AISBench model configs; use as aisbench.model=<name>")
    return lines


def family(name: str) -> str:
    path = stock_configs().get(name)
    return path.parent.name if path is not None else ""


def default_max_out_len(name: str) -> int:
    if family(name) == "synthetic":
        return 512
    return 4096 if family(name) in LONG_ANSWER_FAMILIES or "cot" in name else 1024


def options() -> List[str]:
    return [PREFIX + name for name in stock_configs()]


def entry(name: str) -> Dict[str, object]:
    return {
        "name": name,
        "description": f"AISBench's stock config {family(name)}/{name}.py",
        "model_config": {
            "max_out_len": default_max_out_len(name),
            "generation_kwargs": {"temperature": 0.0, "seed": 42},
        },
        "vllm_config_override": {},
    }


def register(names: Optional[Sequence[str]] = None) -> int:
    """Store the entries (all, or the given config names) in Hydra's ConfigStore; returns how many."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    chosen = [n for n in (names if names is not None else stock_configs()) if n in stock_configs()]
    for name in chosen:
        store.store(group="dataset/ais", name=name, node=entry(name), package=f"datasets.{name}")
    return len(chosen)


def register_for(argv: Sequence[str], config_dirs: Sequence[Path] = ()) -> int:
    """The entries a command line uses: those it names, and those the experiment it picks names."""
    text = " ".join(argv)
    for option in re.findall(r"experiment=([\w./-]+)", text):
        for folder in config_dirs:
            path = Path(folder) / "experiment" / f"{option}.yaml"
            if path.is_file():
                text += " " + path.read_text(encoding="utf-8", errors="replace")
                break
    named = sorted(set(re.findall(PREFIX + r"([\w.-]+)", text)))
    return register(named) if named else 0


def table(text: str = "") -> List[str]:
    """The catalog as printed lines: option, family, max_out_len and file, for names containing text."""
    folder = configs_dir()
    rows = [
        (PREFIX + n, family(n), default_max_out_len(n), p) for n, p in stock_configs().items() if text in n
    ]
    width = max((len(r[0]) for r in rows), default=10)
    lines = [f"{'option':<{width}}  {'family':<16} max_out_len  file (under {folder})"]
    for option, fam, budget, path in rows:
        lines.append(f"{option:<{width}}  {fam:<16} {budget:>11}  {path.relative_to(folder)}")
    lines.append(
        f"{len(rows)} of {len(stock_configs())} AISBench dataset configs; use as dataset=[{PREFIX}<name>,...]"
    )
    return lines
