"""Record: the frozen, keyword-only records the manifest, the model and the engine are made of."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import pytest

from tuisup.model.record import EMPTY, Record, replace
from tuisup.spec import GroupSpec


class Point(Record):
    x: int
    y: int = 0
    tags: Mapping[str, str] = EMPTY


class Placed(Record):
    name: str
    line: int = 0

    _uncompared: ClassVar[tuple[str, ...]] = ("line",)


def test_fields_defaults_and_keywords_only() -> None:
    p = Point(x=1)
    assert (p.x, p.y, p.tags) == (1, 0, {})
    assert repr(p) == "Point(x=1, y=0, tags=mappingproxy({}))"
    with pytest.raises(TypeError, match="missing 'x'"):
        Point()
    with pytest.raises(TypeError, match="no field z"):
        Point(x=1, z=2)
    with pytest.raises(TypeError):
        Point(1)  # type: ignore[misc]


def test_frozen_and_its_shared_default_cannot_be_changed() -> None:
    p = Point(x=1)
    with pytest.raises(AttributeError, match="frozen"):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.tags["a"] = "b"  # type: ignore[index]


def test_replace_makes_a_copy_with_the_changes() -> None:
    p = Point(x=1, y=2, tags={"a": "b"})
    q = replace(p, y=5)
    assert q == Point(x=1, y=5, tags={"a": "b"})
    assert p.y == 2  # the original is untouched
    assert type(q) is Point
    with pytest.raises(TypeError, match="Point has no field z"):
        replace(p, z=3)


def test_uncompared_fields_are_left_out_of_equality_and_hash() -> None:
    assert Placed(name="a", line=3) == Placed(name="a", line=9)
    assert hash(Placed(name="a", line=3)) == hash(Placed(name="a", line=9))
    assert Placed(name="a") != Placed(name="b")
    assert Point(x=1, y=1) != Point(x=1, y=2)  # every field counts by default
    # A group's table that only moved in the file is the same group.
    assert GroupSpec(name="g", services=("a",), line=3) == GroupSpec(
        name="g", services=("a",), line=8
    )


def test_a_record_equals_only_records_of_its_own_class() -> None:
    class Other(Record):
        x: int
        y: int = 0
        tags: Mapping[str, str] = EMPTY

    assert Point(x=1) != Other(x=1)
