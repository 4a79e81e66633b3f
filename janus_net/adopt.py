"""Moved: see janus_net._profiles.adoption."""

from __future__ import annotations

from janus_net._profiles.adoption import (
    Seen,
    Verdict,
    admit,
    adopt,
    adopt_bound,
    adopt_listener,
    announce,
    authorize,
    examine,
    judge,
    judge_received,
    look,
    own,
    refuse_held,
    require,
)

__all__ = [
    "Seen",
    "Verdict",
    "admit",
    "adopt",
    "adopt_bound",
    "adopt_listener",
    "announce",
    "authorize",
    "examine",
    "judge",
    "judge_received",
    "look",
    "own",
    "refuse_held",
    "require",
]
