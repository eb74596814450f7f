"""The agent's light stand-ins for standard library modules, for its start-up time: record.py for dataclasses (the
same behaviour for the uses the agent has), merge.copy_data for copy.deepcopy."""

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


def test_copy_data_is_a_deep_copy_of_parsed_data():
    """merge.copy_data stands in for copy.deepcopy on YAML/JSON/TOML data: equal, nothing mutable shared."""
    import copy
    import datetime

    from nodeforge.bootstrap.merge import copy_data

    data = {
        "a": [1, 2.5, {"b": None, "c": [True, "x"]}],
        "d": {"e": {"f": datetime.date(2024, 1, 2)}, "g": {1, 2}, "h": (1, [2])},
        "i": b"bytes",
    }
    copied = copy_data(data)
    assert copied == data == copy.deepcopy(data)
    copied["a"][2]["c"].append("y")
    copied["d"]["e"]["f"] = "changed"
    copied["d"]["g"].add(3)
    copied["d"]["h"][1].append(3)
    assert data == {
        "a": [1, 2.5, {"b": None, "c": [True, "x"]}],
        "d": {"e": {"f": datetime.date(2024, 1, 2)}, "g": {1, 2}, "h": (1, [2])},
        "i": b"bytes",
    }
