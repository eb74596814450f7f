"""A light stand-in for :func:`dataclasses.dataclass` and :func:`dataclasses.field`, for the agent's start-up time.

The agent runs at every boot and ``dataclasses`` costs more to import than the rest of a run (it pulls in
``inspect``, ``ast``, ``tokenize`` ...). This covers what the agent's records use: fields in annotation order
(base classes first), defaults and ``default_factory``, ``frozen``, ``__post_init__``, ``__eq__``,
``__repr__`` and ``__hash__`` (frozen records only, as dataclasses does). Type checkers see the real
dataclasses (the ``TYPE_CHECKING`` branch), so both must keep behaving alike for these uses.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from dataclasses import dataclass, field
else:
    _MISSING = object()

    class FrozenInstanceError(AttributeError):
        """Assignment to a field of a frozen record."""

    class _Field:
        __slots__ = ("default", "default_factory")

        def __init__(self, default: object, default_factory: object) -> None:
            self.default = default
            self.default_factory = default_factory

    def field(*, default: object = _MISSING, default_factory: object = _MISSING) -> object:
        """A field with a default value or a factory of default values."""
        return _Field(default, default_factory)

    def _fields(cls: type) -> dict[str, object]:
        names: dict[str, object] = {}
        for klass in reversed(cls.__mro__[:-1]):
            own = klass.__dict__.get("__record_fields__")
            if own is not None and klass is not cls:
                names.update(own)
                continue
            own_annotations = klass.__dict__.get("__annotations__", {})  # noqa: RUF063 - this class's only, as text
            for name, annotation in own_annotations.items():
                if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
                    continue
                names[name] = klass.__dict__.get(name, _MISSING)
        return names

    def _frozen_setattr(self: object, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def _frozen_delattr(self: object, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def _process(cls: type, frozen: bool) -> type:
        fields = _fields(cls)
        cls.__record_fields__ = fields  # type: ignore[attr-defined]
        names = tuple(fields)
        defaults: dict[str, object] = {}
        factories: dict[str, Callable[[], object]] = {}
        for name, declared in fields.items():
            spec = declared
            if isinstance(spec, _Field) and spec.default_factory is _MISSING:
                spec = spec.default
            if isinstance(spec, _Field):
                factories[name] = spec.default_factory  # type: ignore[assignment]
            elif spec is not _MISSING:
                defaults[name] = spec
            elif defaults or factories:
                raise TypeError(f"{cls.__name__}: non-default field {name!r} follows a default one")
            if isinstance(declared, _Field) and name in cls.__dict__:
                delattr(cls, name)
        assign = object.__setattr__
        post_init = hasattr(cls, "__post_init__")
        title = cls.__name__

        # One generic __init__ (not code generated per class as dataclasses does: compiling it costs more at
        # start-up than all the records of a run ever spend in __init__).
        def __init__(self: object, *args: object, **kwargs: object) -> None:
            if len(args) > len(names):
                raise TypeError(f"{title}() takes {len(names)} positional arguments but {len(args)} were given")
            for name, value in zip(names, args):
                if name in kwargs:
                    raise TypeError(f"{title}() got multiple values for argument {name!r}")
                assign(self, name, value)
            for name in names[len(args) :]:
                if name in kwargs:
                    value = kwargs.pop(name)
                elif name in factories:
                    value = factories[name]()
                elif name in defaults:
                    value = defaults[name]
                else:
                    raise TypeError(f"{title}() missing required argument: {name!r}")
                assign(self, name, value)
            if kwargs:
                raise TypeError(f"{title}() got an unexpected keyword argument {next(iter(kwargs))!r}")
            if post_init:
                self.__post_init__()  # type: ignore[attr-defined]

        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__  # type: ignore[misc]

        def __repr__(self: object) -> str:
            values = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
            return f"{type(self).__qualname__}({values})"

        def __eq__(self: object, other: object) -> bool:
            if type(other) is not type(self):
                return NotImplemented
            return all(getattr(self, name) == getattr(other, name) for name in names)

        cls.__repr__ = __repr__  # type: ignore[method-assign]
        cls.__eq__ = __eq__  # type: ignore[method-assign]
        if frozen:

            def __hash__(self: object) -> int:
                return hash(tuple(getattr(self, name) for name in names))

            cls.__hash__ = __hash__  # type: ignore[method-assign]
            cls.__setattr__ = _frozen_setattr  # type: ignore[method-assign, assignment]
            cls.__delattr__ = _frozen_delattr  # type: ignore[method-assign, assignment]
        else:
            cls.__hash__ = None  # type: ignore[assignment]
        return cls

    def dataclass(cls: type | None = None, *, frozen: bool = False) -> object:
        """``@dataclass`` or ``@dataclass(frozen=True)``."""
        if cls is None:
            return lambda klass: _process(klass, frozen)
        return _process(cls, frozen)


__all__ = ["dataclass", "field"]
