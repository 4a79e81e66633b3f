"""`bounded_put`: the one way janus_net's small caches stay bounded.

Parsed addresses, decoded sources, step-sequence plans, control messages per source
address: each is a dict that must not grow without bound when a caller feeds it
endless distinct keys. They all evict the same way, here.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def bounded_put(cache: dict[Any, Any], limit: int, key: object, value: object) -> None:
    """Store ``key: value``, first dropping the oldest entry if ``cache`` holds ``limit``.

    Lock-free: each dict operation is atomic under the GIL. Two threads may both
    evict, or one may find the entry already gone or the dict resized mid-step;
    either way the bound still holds, give or take an entry per racing thread.
    """
    if len(cache) >= limit:
        try:
            del cache[next(iter(cache))]
        except (KeyError, RuntimeError, StopIteration):
            pass  # another thread evicted or resized it first
    cache[key] = value


__all__ = ["bounded_put"]
