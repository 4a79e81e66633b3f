"""Seconds a caller hands janus_net, and the deadlines made of them: the one conversion (DESIGN §3).

Every timeout or deadline a user gives -- ``Context.with_timeout``, ``with_deadline``,
``child(timeout=)``, and the command line's ``--timeout``-style options -- goes through
`seconds`, so all of them treat the extremes alike:

* a bool, or anything that is not an int or a float: `TypeError`;
* NaN: `ValueError`;
* +inf, or an int too large for a float (``10**400``): never;
* -inf, or an int too negative for a float: already passed;
* anything else: that many seconds, as a float.

A deadline that is never is `None` inside janus_net (a `Context` without one), so no
arithmetic on it can overflow and every wait reads it the same way.
"""

from __future__ import annotations

import math
import time


def seconds(value: object, what: str = "seconds") -> float:
    """``value`` as a float number of seconds: ``math.inf`` for never (beyond the float range, or +inf).

    Args:
        what: how the message names the value (``"timeout"``, ``"deadline"``).

    Raises:
        TypeError: a bool, or not an int or a float.
        ValueError: NaN.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {value!r}")
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:  # beyond the float range: never (or, below it, long passed)
            return math.inf if value > 0 else -math.inf
    if math.isnan(value):
        raise ValueError(f"{what} must not be NaN")
    return float(value)


def deadline_at(monotonic_seconds: object, what: str = "deadline") -> float | None:
    """A point on the `time.monotonic` clock as a deadline: None when it is never.

    Raises:
        TypeError, ValueError: as `seconds`.
    """
    at = seconds(monotonic_seconds, what)
    return None if at == math.inf else at


def deadline_after(timeout: object, what: str = "timeout") -> float | None:
    """The deadline ``timeout`` seconds from now on the `time.monotonic` clock: None when it is never.

    A timeout of 0 or less gives a deadline already passed.

    Raises:
        TypeError, ValueError: as `seconds`.
    """
    span = seconds(timeout, what)
    if span == math.inf:
        return None
    at = time.monotonic() + span
    return None if at == math.inf else at


__all__ = ["deadline_after", "deadline_at", "seconds"]
