"""Strict values (DESIGN §3): the one check of a flag or an integer a caller hands janus_net.

Options (``reuse_port=``, ``backlog=``, ``incoming_cpu=``...) and the sizes and counts of
reads and receives go through these two functions, so every one refuses the same
things the same way: a bool where an int is meant (``receive(True)`` would mean one
byte), a float or a str that ``int()`` would quietly coerce, a truthy string where a
bool is meant (``reuse_port="false"`` would mean True).
"""

from __future__ import annotations

#: The largest C int: the bound of every count and size janus_net passes to the kernel.
INT_MAX = 2**31 - 1


class BadOptionType(TypeError, ValueError):
    """An option or argument of the wrong type (``reuse_port="false"``, ``mode=1.0``, ``receive(True)``).

    A `TypeError`, as Python raises for a wrong type; also a `ValueError`, which is what
    janus_net raised for every bad option value before types were checked strictly, so
    handlers written then keep working. (Also importable as ``janus_net._values.strict.BadOptionType``.)
    """


def flag(name: str, value: object) -> bool:
    """``value`` if it is ``True`` or ``False``; else `BadOptionType`."""
    if type(value) is not bool:
        raise BadOptionType(f"{name} must be True or False, not {value!r}")
    return value


def integer(name: str, value: object, low: int = 0, high: int = INT_MAX, what: str | None = None) -> int:
    """``value`` as a plain int if it is an int (not a bool) in ``low``..``high``.

    Args:
        what: how the message describes the range (default ``"in LOW..HIGH"``).

    Raises:
        BadOptionType: not an int, or a bool.
        ValueError: outside ``low``..``high``.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise BadOptionType(
            f"{name} must be an int {what or f'in {low}..{high}'}, not {type(value).__name__} {value!r}"
        )
    number = int.__int__(value)  # the value itself, whatever an int subclass says __int__ is
    if not low <= number <= high:
        raise ValueError(f"{name} must be an int {what or f'in {low}..{high}'}, not {value!r}")
    return number
