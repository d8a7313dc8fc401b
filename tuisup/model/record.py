"""Provides Record: a frozen, keyword-only record with slots, cheaper to define than a dataclass.

A frozen dataclass compiles six methods from source as its module is imported (0.55 ms a
class); the dozen events cost 7.5 ms of every start that way, and `tuisup ps` pays for
every class it loads. `Record` gives the same things (keyword-only fields with defaults,
slots, frozen, equality, a repr; type checkers read it as a dataclass through
`dataclass_transform`) with one `__init__` shared by every record. A default is shared by
every record that takes it: use immutable ones (`EMPTY` for an empty mapping).

`replace(record, **changes)` is `dataclasses.replace` for records. Fields named in a
class's `_uncompared` (its place in a file, say) are left out of equality and hashing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar, dataclass_transform

EMPTY: Mapping[Any, Any] = MappingProxyType({})
"""An empty mapping no one can change: the default of a record's mapping field."""
R = TypeVar("R", bound="Record")


@dataclass_transform(kw_only_default=True, frozen_default=True)
class _RecordType(type):
    """Gives each record class its slots and its fields (its own after its bases')."""

    _fields: tuple[str, ...]
    _compared: tuple[str, ...]
    _defaults: dict[str, Any]
    _setters: tuple[tuple[str, Callable[[Any, Any], None]], ...]

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kw: Any
    ) -> _RecordType:
        own = [
            field
            for field, annotation in namespace.get("__annotations__", {}).items()
            if not str(annotation).startswith("ClassVar")
        ]
        defaults = {field: namespace.pop(field) for field in own if field in namespace}
        namespace["__slots__"] = tuple(own)
        cls = super().__new__(mcs, name, bases, namespace, **kw)
        cls._fields = (*getattr(cls, "_fields", ()), *own)
        cls._defaults = {**getattr(cls, "_defaults", {}), **defaults}
        uncompared = getattr(cls, "_uncompared", ())
        cls._compared = tuple(field for field in cls._fields if field not in uncompared)
        cls._setters = tuple((field, getattr(cls, field).__set__) for field in cls._fields)
        return cls


class Record(metaclass=_RecordType):
    """A frozen record: keyword-only fields, each with its default if it has one."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]
    _compared: ClassVar[tuple[str, ...]]
    _defaults: ClassVar[dict[str, Any]]
    _setters: ClassVar[tuple[tuple[str, Callable[[Any, Any], None]], ...]]
    _uncompared: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **values: Any) -> None:
        # Through the slots' own setters (`__setattr__` refuses): 2x faster than a setattr
        # per field, which counts for an event on every change and a spec per service.
        merged = {**self._defaults, **values}
        try:
            for field, set_field in self._setters:
                set_field(self, merged[field])
        except KeyError as missing:
            raise TypeError(f"{type(self).__name__}() is missing {missing.args[0]!r}") from None
        if len(merged) != len(self._setters):
            unknown = ", ".join(key for key in values if key not in self._fields)
            raise TypeError(f"{type(self).__name__}() has no field {unknown}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._compared)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self._compared))

    def __repr__(self) -> str:
        shown = ", ".join(f"{field}={getattr(self, field)!r}" for field in self._fields)
        return f"{type(self).__name__}({shown})"


def replace(record: R, /, **changes: Any) -> R:
    """A copy of `record` with `changes` made (`dataclasses.replace` for records)."""
    values = {field: getattr(record, field) for field in record._fields}
    unknown = changes.keys() - values.keys()
    if unknown:
        raise TypeError(f"{type(record).__name__} has no field {', '.join(sorted(unknown))}")
    return type(record)(**{**values, **changes})
