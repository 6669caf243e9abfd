"""From Hydra's composed DictConfig to a typed, fully resolved BenchAppConfig (or a UserError)."""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, Dict, Tuple

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

from bench_app.common.errors import UserError
from bench_app.config.schema import BenchAppConfig


def resolve(cfg: DictConfig) -> BenchAppConfig:
    """Resolve every interpolation and check mandatory values; return dataclass instances."""
    return resolve_with_document(cfg)[0]


def resolve_with_document(cfg: DictConfig) -> Tuple[BenchAppConfig, Dict[str, Any]]:
    """resolve(), and the resolved config as plain containers (what the snapshot writes): one pass."""
    try:
        OmegaConf.resolve(cfg)
        document = OmegaConf.to_container(cfg)
        document.pop("hydra", None)
        _check_missing(document, "")
        check_known_keys(document, BenchAppConfig, "")
        return OmegaConf.to_object(cfg), document
    except MissingMandatoryValue as error:
        raise UserError(
            f"{error.full_key}: a value is required but not set. Set it on the command line, e.g. "
            f"{error.full_key}=..."
        ) from None
    except InterpolationResolutionError as error:
        raise UserError(f"{error.full_key}: cannot resolve {str(error).splitlines()[0]}") from None
    except OmegaConfBaseException as error:
        raise UserError(f"invalid configuration: {str(error).splitlines()[0]}") from None


# Where a key that bench_app does not model belongs instead.
_EXTRA_ARGS_HINT = {
    "vllm": "other `vllm serve` flags go under vllm.extra_args (+vllm.extra_args.block_size=32)",
    "aisbench": "other ais_bench flags go under aisbench.extra_args (+aisbench.extra_args.merge_ds=true)",
}


@functools.cache
def _type_hints(schema: type) -> Dict[str, Any]:
    return typing.get_type_hints(schema)  # evaluates the string annotations: slow, and never changes


def check_known_keys(data: Any, schema: type, path: str) -> None:
    """Refuse a key the schema does not declare (e.g. added with `+`): Hydra accepts it into the
    composed config, but no tool would ever see it, and the snapshot would claim a setting not used."""
    if not isinstance(data, dict):
        return
    hints = _type_hints(schema)
    names = [f.name for f in dataclasses.fields(schema)]
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in hints:
            hint = _EXTRA_ARGS_HINT.get(path, "")
            raise UserError(
                f"{where}: unknown setting. Valid keys of {path or 'the config'}: {', '.join(names)}"
                + (f"; {hint}." if hint else ".")
            )
        field_type = hints[key]
        if dataclasses.is_dataclass(field_type):
            check_known_keys(value, field_type, where)
        elif typing.get_origin(field_type) is dict:
            item_type = typing.get_args(field_type)[1]
            if dataclasses.is_dataclass(item_type) and isinstance(value, dict):
                for name, item in value.items():
                    check_known_keys(item, item_type, f"{where}.{name}")


def _check_missing(node: Any, prefix: str) -> None:
    """Name the first mandatory value (???) that nobody set; to_object's own message is less direct.
    Walks the plain containers: OmegaConf's unresolved copy keeps a missing value as the string ???."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        path = f"{prefix}.{key}" if prefix else str(key)
        if value == "???":
            raise UserError(
                f"{path}: a value is required but not set. Set it on the command line, e.g. {path}=..."
            )
        _check_missing(value, path)
