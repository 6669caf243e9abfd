"""OmegaConf resolvers used by conf/: ${project_root:} and ${mul:a,b}."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

# The checkout that holds conf/, models/ and the environments (bench_app is installed editable).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _multiply(a, b):
    product = float(a) * float(b)
    # Context lengths are integers; keep ints as ints so they reach --max-model-len unchanged.
    return int(product) if product.is_integer() else product


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("project_root"):
        OmegaConf.register_new_resolver("project_root", lambda: str(PROJECT_ROOT))
    if not OmegaConf.has_resolver("mul"):
        OmegaConf.register_new_resolver("mul", _multiply)
