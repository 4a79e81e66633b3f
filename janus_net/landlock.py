"""Moved: see janus_net._policy.landlock and janus_net._policy.seccomp.

Testing switches (``MINIMUM_ABI``, ``_filtered``) are set on janus_net._policy.landlock
itself: a name re-exported here is a copy, and assigning it here changes nothing there.
"""

from janus_net._policy.landlock import (
    MINIMUM_ABI,
    abi,
    enforce,
    enforced_ports,
    filtered,
    kernel_denial,
    refuse_uncovered,
)
from janus_net._policy.seccomp import Program, filter_program

__all__ = [
    "MINIMUM_ABI",
    "Program",
    "abi",
    "enforce",
    "enforced_ports",
    "filter_program",
    "filtered",
    "kernel_denial",
    "refuse_uncovered",
]
