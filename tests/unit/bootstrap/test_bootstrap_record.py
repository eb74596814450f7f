"""record.py, the agent's light stand-in for dataclasses: the same behaviour for the uses the agent has."""

from __future__ import annotations

import dataclasses

import pytest

from nodeforge.bootstrap import record


@pytest.mark.parametrize("module", [record, dataclasses], ids=["record", "dataclasses"])
def test_behaves_as_dataclasses_does(module):
    @module.dataclass
    class Point:
        x: int
        y: int = 2
        tags: list = module.field(default_factory=list)

        def __post_init__(self) -> None:
            self.seen = True

    a, b = Point(1), Point(1)
    assert (a.x, a.y, a.tags, a.seen) == (1, 2, [], True)
    assert a == b and a.tags is not b.tags
    assert Point(1, 3, ["t"]) == Point(x=1, y=3, tags=["t"]) != Point(1)
    assert repr(Point(1)).endswith("Point(x=1, y=2, tags=[])")
    with pytest.raises(TypeError):
        hash(a)
    with pytest.raises(TypeError):
        Point()
    with pytest.raises(TypeError):
        Point(1, z=3)
    with pytest.raises(TypeError):
        Point(1, 2, [], 4)

    @module.dataclass(frozen=True)
    class Frozen:
        name: str
        size: int = 0

    frozen = Frozen("a")
    assert hash(frozen) == hash(Frozen("a")) and {frozen, Frozen("a")} == {frozen}
    with pytest.raises(AttributeError):
        frozen.name = "b"
