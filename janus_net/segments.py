"""Moved: see janus_net._sockets.segments."""

from janus_net._sockets.segments import MAX_SEGMENT_SIZE, MAX_SEGMENTS, send_segments, split

__all__ = ["MAX_SEGMENTS", "MAX_SEGMENT_SIZE", "send_segments", "split"]
