"""OmegaConf resolvers used by conf/: ${project_root:}, ${mul:a,b}, ${free_run_name:base}, ${cpu_dtype:}."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

from omegaconf import OmegaConf

# The checkout that holds conf/, models/ and the environments (bench_app is installed editable).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _multiply(a, b):
    product = float(a) * float(b)
    # Context lengths are integers; keep ints as ints so they reach --max-model-len unchanged.
    return int(product) if product.is_integer() else product


# base -> the name chosen for it in this process: every later resolution gives the same name.
_free_names: Dict[str, str] = {}


def free_run_name(base: str, outputs: Path = Path("outputs")) -> str:
    """A generated run name that no run folder holds yet: base, else base_2, base_3, ... (two runs
    started in the same second must not collide). Chosen once per process, so the run folder Hydra
    creates and the name the run records stay the same."""
    if base not in _free_names:
        name, suffix = str(base), 2
        while (outputs / name).exists():
            name, suffix = f"{base}_{suffix}", suffix + 1
        _free_names[base] = name
    return _free_names[base]


# CPU flags (/proc/cpuinfo) of native bfloat16 arithmetic. Without them bfloat16 values are widened to
# float32 to be computed, so bfloat16 only adds work: on AVX2 code paths the tiny model generated 63.3
# tokens/s in float32 against 45.3 in bfloat16; with avx512_bf16, 91.9 against 103.4 (benchmarks/README.md,
# cpu_dtype.py). AVX-512 without avx512_bf16 is taken to behave like AVX2 (not measured).
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_dtype(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The faster dtype for a model on this CPU with vLLM-CPU: bfloat16 where the CPU computes it natively,
    float32 elsewhere. Resolved once into the snapshot: a replay keeps the recorded value."""
    return "bfloat16" if cpu_flags(cpuinfo) & set(NATIVE_BF16_FLAGS) else "float32"


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("cpu_dtype"):
        OmegaConf.register_new_resolver("cpu_dtype", lambda: cpu_dtype())
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", _multiply)
    if not OmegaConf.has_resolver("free_run_name"):
        OmegaConf.register_new_resolver("free_run_name", lambda base: free_run_name(str(base)))
