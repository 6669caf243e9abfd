"""From Hydra's composed DictConfig to a typed, fully resolved BenchAppConfig (or a UserError)."""

from __future__ import annotations

from typing import Any, Dict

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue, OmegaConfBaseException

from .errors import UserError
from .schema import BenchAppConfig


def resolve(cfg: DictConfig) -> BenchAppConfig:
    """Resolve every interpolation and check mandatory values; return dataclass instances."""
    try:
        OmegaConf.resolve(cfg)
        _check_missing(cfg, "")
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as error:
        raise UserError(
            f"{error.full_key}: a value is required but not set. Set it on the command line, e.g. "
            f"{error.full_key}=..."
        ) from None
    except InterpolationResolutionError as error:
        raise UserError(f"{error.full_key}: cannot resolve {str(error).splitlines()[0]}") from None
    except OmegaConfBaseException as error:
        raise UserError(f"invalid configuration: {str(error).splitlines()[0]}") from None


def _check_missing(node: Any, prefix: str) -> None:
    """Name the first mandatory value (???) that nobody set; to_object's own message is less direct."""
    if isinstance(node, DictConfig):
        for key in node.keys():
            path = f"{prefix}.{key}" if prefix else str(key)
            if OmegaConf.is_missing(node, key):
                raise UserError(
                    f"{path}: a value is required but not set. Set it on the command line, e.g. {path}=..."
                )
            _check_missing(node._get_node(key), path)


def plain(cfg: DictConfig) -> Dict[str, Any]:
    return OmegaConf.to_container(cfg, resolve=True)
