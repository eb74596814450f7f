"""Small record classes (what ``@dataclass`` gives the catalog) without importing dataclasses.

``dataclasses`` imports ``inspect`` (and with it ``ast``, ``dis``, ``tokenize``): about as much start-up time as a
whole catalog read. The read commands must start fast (docs/catalog.md), so their records use this instead.

Fields are the class's annotations in order (bases first); a class attribute is the default, ``factory(f)`` a
default made per instance. Records compare by their fields, ``replace(**changes)`` copies with changes, and are
frozen unless the class says ``frozen=False``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Self


class factory:
    """A default built per instance, e.g. ``extra: dict[str, str] = factory(dict)``."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


class Record:
    _fields: tuple[str, ...] = ()
    _defaults: dict[str, Any] = {}  # noqa: RUF012 (filled per subclass)
    _frozen: bool = True

    def __init_subclass__(cls, frozen: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: list[str] = []
        defaults: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            for name in klass.__dict__.get("__annotations__", {}):  # noqa: RUF063 (inspect is what we avoid)
                if name.startswith("_"):
                    continue
                if name not in fields:
                    fields.append(name)
                if name in klass.__dict__:
                    defaults[name] = klass.__dict__[name]
        cls._fields, cls._defaults, cls._frozen = tuple(fields), defaults, frozen
        cls.__init__ = _make_init(cls)  # type: ignore[method-assign]

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise AttributeError(f"cannot assign to field {name!r} of a frozen {type(self).__name__}")
        object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, field) for field in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Record)
        return self._values() == other._values()

    def __hash__(self) -> int:
        if not self._frozen:
            raise TypeError(f"unhashable type: {type(self).__name__!r}")
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{field}={getattr(self, field)!r}" for field in self._fields)
        return f"{type(self).__name__}({inner})"

    def replace(self, **changes: Any) -> Self:
        values = {field: getattr(self, field) for field in self._fields}
        values.update(changes)
        return type(self)(**values)


_MISSING = object()


def _make_init(cls: type[Record]) -> Callable[..., None]:
    """A specialised __init__ (as dataclasses generate one): records are built 100k at a time by ingest."""
    params, body = [], []
    namespace: dict[str, Any] = {"_MISSING": _MISSING, "_set": object.__setattr__, "factory": factory}
    for field in cls._fields:
        if field in cls._defaults:
            default = cls._defaults[field]
            namespace[f"_default_{field}"] = default
            if isinstance(default, factory):
                params.append(f"{field}=_MISSING")
                body.append(f"    if {field} is _MISSING: {field} = _default_{field}.make()")
            else:
                params.append(f"{field}=_default_{field}")
        else:
            params.append(field)
        body.append(f"    _set(self, {field!r}, {field})")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, namespace)  # noqa: S102 (source built from the class's own field names)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init  # type: ignore[no-any-return]
