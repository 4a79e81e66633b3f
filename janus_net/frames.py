"""Moved: see janus_net._process.frames."""

from janus_net._process.frames import (
    DEPTH_MAX,
    FILES_MAX,
    FRAME_MAX,
    GIVEN,
    HEADER,
    PATH_MAX,
    READY,
    FileEntry,
    body_size,
    decode,
    encode,
    files,
    files_frame,
    given,
    protocol,
    ready,
)

__all__ = [
    "DEPTH_MAX",
    "FILES_MAX",
    "FRAME_MAX",
    "GIVEN",
    "HEADER",
    "PATH_MAX",
    "READY",
    "FileEntry",
    "body_size",
    "decode",
    "encode",
    "files",
    "files_frame",
    "given",
    "protocol",
    "ready",
]
