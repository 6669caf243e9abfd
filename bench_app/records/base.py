"""The base of every run-folder document: a pydantic model that keeps what it does not declare.

`Record.from_dict(document)` reads a document as any release wrote it: a field it lacks is None (or empty),
and a key this release does not declare is kept (pydantic's extra="allow") and written back by `to_dict()`,
so nothing a newer writer added is lost. `from_dict(document, strict=True)` refuses undeclared keys, at any
depth: the tests read every document the writers produce that way, so a writer cannot emit a field the types
lack. A record is read by attribute only: there is no dict-style access, so a reader that drifts fails.
"""

from __future__ import annotations

from typing import Any, ClassVar, Dict, Mapping, Optional, Type, TypeVar

from pydantic import BaseModel, ConfigDict

R = TypeVar("R", bound="Record")


class UndeclaredFields(ValueError):
    """A document holds keys its record type does not declare (strict reading)."""


class Record(BaseModel):
    # Assignment is not validated: validating copies a list or mapping, and the run fills some (a server's
    # replicas, restarts) in place after assigning them. A writer assigns a sub-document as its record.
    model_config = ConfigDict(
        extra="allow", protected_namespaces=(), arbitrary_types_allowed=True, populate_by_name=True
    )
    # Keys written even when null (null says something there, e.g. metadata run.ended).
    KEEP_NULL: ClassVar[frozenset] = frozenset()
    # Values left out of the document (e.g. None, {} and "": an entry that says only what happened).
    LEAVE_OUT: ClassVar[tuple] = ()
    # Keys declared by another layer (e.g. an engine's launch details): kept, and not refused when strict.
    OPEN: ClassVar[bool] = False

    @classmethod
    def from_dict(cls: Type[R], document: Optional[Mapping[str, Any]], strict: bool = False) -> R:
        record = cls.model_validate(dict(document or {}))
        if strict:
            record.check_declared()
        return record

    @property
    def extra(self) -> Dict[str, Any]:
        """The keys of the document this release does not declare."""
        return self.__pydantic_extra__ if self.__pydantic_extra__ is not None else {}

    def check_declared(self) -> None:
        if self.extra and not self.OPEN:
            raise UndeclaredFields(
                f"{type(self).__name__} does not declare: {', '.join(map(str, self.extra))}"
            )
        for name in type(self).model_fields:
            _check_inside(getattr(self, name))

    def assign(self, values: Mapping[str, Any]) -> None:
        """Set these fields at once (e.g. a lease's port and devices); each must be declared."""
        undeclared = [name for name in values if name not in type(self).model_fields]
        if undeclared:
            raise UndeclaredFields(f"{type(self).__name__} does not declare: {', '.join(undeclared)}")
        for name, value in values.items():
            setattr(self, name, value)

    def to_dict(self) -> Dict[str, Any]:
        """The document: a field left None is written only when it was given or set (or is KEEP_NULL)."""
        given = self.model_fields_set
        out: Dict[str, Any] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None and name not in given and name not in self.KEEP_NULL:
                continue
            if value in self.LEAVE_OUT:
                continue
            out[field.alias or name] = _plain(value)  # alias: a key that is not a Python name
        out.update(self.extra)
        return out


def _check_inside(value: Any) -> None:
    if isinstance(value, Record):
        value.check_declared()
    elif isinstance(value, dict):
        for item in value.values():
            _check_inside(item)
    elif isinstance(value, list):
        for item in value:
            _check_inside(item)


def _plain(value: Any) -> Any:
    if isinstance(value, Record):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
