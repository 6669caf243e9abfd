"""Engines and evaluators from their conf group: `_target_` names the class, the other keys are its
settings. The class is a dataclass, so its fields are the one declaration of those settings: unknown
keys and wrong types are refused here, before anything starts, with the valid keys named.
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any, Dict, Mapping, Type, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench_app.common.errors import UserError

T = TypeVar("T")


def component_class(target: str, base: Type[T], group: str) -> Type[T]:
    module_name, _, class_name = str(target).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise UserError(
            f"{group}._target_: cannot import {target!r} ({error}). "
            f"Give the dotted path of a {base.__name__} subclass."
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, base) and dataclasses.is_dataclass(cls)):
        raise UserError(f"{group}._target_: {target!r} is not an {base.__name__} dataclass.")
    return cls


def settings_of(cls: type) -> list:
    return [f.name for f in dataclasses.fields(cls)]


def instantiate_component(conf: Mapping[str, Any], base: Type[T], group: str) -> T:
    """Build the component `conf` describes; raises UserError naming the bad key and the valid ones."""
    conf = dict(conf)
    if "_target_" not in conf:
        raise UserError(f"{group}: no _target_ set; conf/{group}/*.yaml must name the {base.__name__} class.")
    cls = component_class(conf.pop("_target_"), base, group)
    valid = settings_of(cls)
    unknown = sorted(set(conf) - set(valid))
    if unknown:
        raise UserError(
            f"{group}: unknown setting(s) {unknown} for {cls.__name__}. "
            f"Valid {group} settings: {', '.join(valid)}."
        )
    try:
        # The typed merge checks every value; to_object then builds the class from it (what
        # hydra.utils.instantiate would do with the checked values, without converting them again).
        component = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), conf))
    except OmegaConfBaseException as error:
        key = f" ({group}.{error.full_key})" if getattr(error, "full_key", None) else ""
        raise UserError(
            f"{group}: invalid settings for {cls.__name__}{key}: {str(error).splitlines()[0]}"
        ) from None
    _check_string_maps(component, group)
    return component


def _check_string_maps(component: Any, group: str) -> None:
    """OmegaConf lets a list or a mapping into a Dict[str, str] field (env: {CUDA_VISIBLE_DEVICES: [0, 1]});
    an environment variable is a string, so refuse it now rather than when the process starts."""
    for item in dataclasses.fields(component):
        value = getattr(component, item.name)
        if not isinstance(value, dict):
            continue
        nested = [key for key, entry in value.items() if isinstance(entry, (list, dict))]
        if nested and typing.get_type_hints(type(component))[item.name] == Dict[str, str]:
            raise UserError(
                f"{group}.{item.name}.{nested[0]}: must be a string, got {value[nested[0]]!r} "
                f"(e.g. {group}.{item.name}.{nested[0]}='0,1')."
            )
