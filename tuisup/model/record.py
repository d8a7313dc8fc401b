"""Provides Record: a frozen, keyword-only record with slots, cheaper to define than a dataclass.

A frozen dataclass compiles six methods from source as its module is imported (0.55 ms a
class); the dozen events cost 7.5 ms of every start that way, and `tuisup ps` pays for
every class it loads. `Record` gives the same things (keyword-only fields with defaults,
slots, frozen, equality, a repr; type checkers read it as a dataclass through
`dataclass_transform`) with one `__init__` shared by every record. A default is shared by
every record that takes it: use immutable ones.
"""

from __future__ import annotations

from typing import Any, ClassVar, dataclass_transform

_MISSING: Any = object()


@dataclass_transform(kw_only_default=True, frozen_default=True)
class _RecordType(type):
    """Gives each record class its slots and its fields (its own after its bases')."""

    _fields: tuple[str, ...]
    _defaults: dict[str, Any]

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
        return cls


class Record(metaclass=_RecordType):
    """A frozen record: keyword-only fields, each with its default if it has one."""

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]]
    _defaults: ClassVar[dict[str, Any]]

    def __init__(self, **values: Any) -> None:
        for field in self._fields:
            value = values.pop(field, self._defaults.get(field, _MISSING))
            if value is _MISSING:
                raise TypeError(f"{type(self).__name__}() is missing {field!r}")
            object.__setattr__(self, field, value)
        if values:
            raise TypeError(f"{type(self).__name__}() has no field {', '.join(values)}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self._fields)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, f) for f in self._fields))

    def __repr__(self) -> str:
        shown = ", ".join(f"{field}={getattr(self, field)!r}" for field in self._fields)
        return f"{type(self).__name__}({shown})"
