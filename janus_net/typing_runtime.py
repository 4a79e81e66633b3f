"""Cheap runtime stand-ins for the few `typing` constructs janus_net uses outside annotations.

`import typing` costs about a fifth of `import janus_net` (it brings `re`, `contextlib` and
`collections` with it), and with ``from __future__ import annotations`` no annotation is ever
evaluated, so every module imports `typing` for the checker only::

    TYPE_CHECKING = False
    if TYPE_CHECKING:
        from typing import Any, NamedTuple
    else:
        from janus_net.typing_runtime import NamedTuple

(mypy reads ``TYPE_CHECKING = False`` as `typing.TYPE_CHECKING` and checks the first branch
only.) What is left at runtime are class bases and calls, and those are here:
`NamedTuple` builds the same class `typing.NamedTuple` builds (a `collections.namedtuple`
with the annotated fields, their defaults, and the class body's methods and docstring),
`Generic[...]` is an empty base, and `cast` returns its value.
"""

from __future__ import annotations

import collections

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# What typing.NamedTuple also refuses to copy from a class body onto the tuple class.
_NOT_COPIED = frozenset(
    {"__module__", "__qualname__", "__annotations__", "__classcell__", "__slots__", "__orig_bases__"}
)


class _NamedTupleMeta(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> Any:
        if not bases:  # NamedTuple itself
            return super().__new__(mcs, name, bases, namespace)
        fields = list(namespace.get("__annotations__", {}))
        defaults = [namespace[field] for field in fields if field in namespace]
        cls = collections.namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])  # type: ignore[misc]
        cls.__qualname__ = namespace.get("__qualname__", name)
        for key, value in namespace.items():
            if key not in _NOT_COPIED and key not in fields:
                setattr(cls, key, value)
        return cls


class NamedTuple(metaclass=_NamedTupleMeta):
    """Base for ``class X(NamedTuple): field: type = default`` (the class becomes a namedtuple)."""


class Generic:
    """``class X(Generic[T])`` at runtime: subscription gives the plain base back."""

    __slots__ = ()

    def __class_getitem__(cls, item: object) -> type[Generic]:
        return cls


def cast(kind: object, value: Any) -> Any:
    """`typing.cast`: the value, unchanged."""
    return value
