"""The hand-over's control frames, read with bounds: the one parser for every frame `handoff` reads.

A frame is a 4-byte big-endian length, then that many bytes of UTF-8 JSON. Three
frames exist, and each reader knows which one it expects::

    {"ready": true}                                   successor -> predecessor
    {"given": true}                                   predecessor -> successor
    {"files": {NAME: {"path": PATH, "dev": N, "ino": N}, ...}}
                                                      predecessor -> successor

Anything else is `SocketError.ProtocolFailure` with a message saying what was
wrong, never another exception type. The bounds, each tested
(tests/test_handoff_hostile.py):

* **size**: the length prefix is at most `FRAME_MAX` (1 MiB); a larger one is
  refused before anything is read or allocated. A frame that ends early is
  `ConnectionResetByPeer` (the reader's, not this module's).
* **text**: strict UTF-8 (no UTF-16/32 guessing), strict JSON: no ``NaN`` or
  ``Infinity``, no key twice in one object, nothing after the value.
* **nesting**: at most `DEPTH_MAX` (3) objects deep -- the ``files`` frame is an
  object in an object in an object -- and no arrays at all. The depth is counted on
  the raw text before any JSON parser sees it, so a deeply nested frame costs one
  linear scan, never a recursion.
* **shapes**: exactly the keys shown above. ``ready`` and ``given`` are the JSON
  ``true`` and nothing else. ``dev`` and ``ino`` are optional (an older predecessor
  sends them; they are a hint the successor checks against the kernel, never a
  reason to remove a file) and, when present, integers in 0..2**64-1 -- a JSON
  ``true`` is not an integer, nor is ``1.0``.
* **names**: as `send_sockets` names them (`transfer.check_name`: 1..255 printable
  ASCII characters without ``:``).
* **paths**: a str that is absolute, holds no NUL, and encodes to file system bytes
  the way `os.fsencode` does (the file system encoding with ``surrogateescape``, so
  a path the predecessor read from the kernel as undecodable bytes travels intact,
  while a lone surrogate that stands for no byte is refused), and whose bytes fit
  ``sun_path`` with its NUL (at most ``platform.SUN_PATH_SIZE - 1`` bytes): a longer
  path cannot be a file any socket is bound to.
* **entries**: at most `FILES_MAX` (512) files. The bound is chosen so that the
  longest honest ``files`` frame (every name and path as long and as escaped as
  allowed) fits `FRAME_MAX`; `files_frame` refuses to build a longer one, so an
  honest predecessor never sends a frame its successor refuses.

The descriptors themselves travel in the binary chunks of `janus_net._process.transfer`,
which have their own bounded header (`transfer.check_header`).
"""

from __future__ import annotations

import json
import os
import re
import struct
from collections.abc import Mapping

from janus_net import platform
from janus_net._process.transfer import check_name
from janus_net._values.errors import SocketError

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from typing import Any

#: The length prefix of every frame.
HEADER = struct.Struct("!I")
#: The longest frame body, in bytes.
FRAME_MAX = 1 << 20
#: How deep objects may nest (the ``files`` frame: frame -> files -> entry).
DEPTH_MAX = 3
#: The most unix socket files one hand-over names.
FILES_MAX = 512
#: The longest path, in bytes: what ``sun_path`` holds besides its NUL.
PATH_MAX: int = platform.SUN_PATH_SIZE - 1
#: ``dev`` and ``ino`` are unsigned 64-bit numbers (st_dev, st_ino).
_ID_LIMIT = 1 << 64

_NOT_BRACE = re.compile(r"[^{}]")


class FileEntry:
    """One entry of the ``files`` frame: the path, and the (dev, ino) hint if one was sent."""

    __slots__ = ("hint", "path")

    def __init__(self, path: str, hint: tuple[int, int] | None) -> None:
        self.path = path
        self.hint = hint

    def __repr__(self) -> str:
        return f"FileEntry({self.path!r}, {self.hint!r})"


def protocol(why: str) -> SocketError:
    """The one error of a bad frame."""
    return SocketError.ProtocolFailure(None, f"hand-over: {why}")


# --- Writing


def encode(value: Mapping[str, Any]) -> bytes:
    """A frame: the length prefix and the JSON body (ASCII: every non-ASCII character escaped)."""
    body = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")
    if len(body) > FRAME_MAX:
        raise ValueError(f"a hand-over frame of {len(body)} bytes is longer than {FRAME_MAX}")
    return HEADER.pack(len(body)) + body


READY = encode({"ready": True})
GIVEN = encode({"given": True})


def files_frame(files: Mapping[str, tuple[str, tuple[int, int]]]) -> bytes:
    """The ``files`` frame for ``name -> (path, (dev, ino))``, checked as the successor will check it.

    Raises:
        ValueError: more than `FILES_MAX` files, or a name or path the successor would refuse.
    """
    if len(files) > FILES_MAX:
        raise ValueError(f"a hand-over names at most {FILES_MAX} unix socket files, not {len(files)}")
    entries = {}
    for name, (path, (dev, ino)) in files.items():
        check_name(name)
        try:
            _check_path(path)
        except SocketError as e:
            raise ValueError(str(e.args[-1] if e.args else e)) from None
        entries[name] = {"path": path, "dev": dev, "ino": ino}
    return encode({"files": entries})


# --- Reading


def body_size(header: bytes) -> int:
    """The body length a frame's prefix announces; ProtocolFailure beyond `FRAME_MAX`."""
    size: int = HEADER.unpack(header)[0]
    if size > FRAME_MAX:
        raise protocol(f"a control frame of {size} bytes (at most {FRAME_MAX})")
    return size


def ready(body: bytes) -> None:
    """Check a ``{"ready": true}`` frame."""
    _flag(body, "ready")


def given(body: bytes) -> None:
    """Check a ``{"given": true}`` frame."""
    _flag(body, "given")


def files(body: bytes) -> dict[str, FileEntry]:
    """The ``files`` frame: name -> `FileEntry`, every bound checked."""
    value = _object(decode(body), "the frame")
    _keys(value, {"files"}, set(), "the files frame")
    listed = _object(value["files"], "the file list")
    if len(listed) > FILES_MAX:
        raise protocol(f"{len(listed)} socket files listed, more than {FILES_MAX}")
    out: dict[str, FileEntry] = {}
    for name, raw in listed.items():
        try:
            check_name(name)
        except ValueError:
            raise protocol(f"a socket file for the invalid name {name!r}") from None
        entry = _object(raw, f"the entry of {name!r}")
        _keys(entry, {"path"}, {"dev", "ino"}, f"the entry of {name!r}")
        path = entry["path"]
        _check_path(path, name)
        hint = None
        if "dev" in entry or "ino" in entry:
            dev, ino = entry.get("dev"), entry.get("ino")
            if not (_is_id(dev) and _is_id(ino)):
                raise protocol(f"the entry of {name!r}: dev and ino must both be integers in 0..2**64-1")
            assert isinstance(dev, int) and isinstance(ino, int)
            hint = (dev, ino)
        out[name] = FileEntry(path, hint)
    return out


def decode(body: bytes) -> Any:
    """Strict, bounded JSON: UTF-8, at most `DEPTH_MAX` objects deep, no arrays, no repeated key, no NaN."""
    if len(body) > FRAME_MAX:
        raise protocol(f"a control frame of {len(body)} bytes (at most {FRAME_MAX})")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise protocol("a control frame that is not UTF-8") from None
    _check_nesting(text)
    try:
        return json.loads(text, object_pairs_hook=_no_repeats, parse_constant=_no_constant)
    except _Refused as e:
        raise protocol(str(e)) from None
    except ValueError:  # json.JSONDecodeError, and an integer too long to convert
        raise protocol("a control frame that is not JSON") from None


class _Refused(Exception):
    """A hook's refusal, turned into ProtocolFailure by `decode`."""


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Refused("a control frame names a key twice in one object")
    return out


def _no_constant(name: str) -> Any:
    raise _Refused(f"a control frame holds {name}, which is not JSON")


def _check_nesting(text: str) -> None:
    """Refuse arrays and objects nested deeper than `DEPTH_MAX`, by one linear scan of the text.

    Inside a JSON string a quote is always escaped, so once every escaped backslash and
    escaped quote is dropped (left to right, as a JSON reader reads escapes), the quotes
    left alternate between opening and closing strings. Up to the first character a
    JSON reader refuses, this agrees with the reader, so no nesting it would recurse
    into is missed; after it the frame is refused anyway.
    """
    outside = "".join(text.replace("\\\\", "").replace('\\"', "").split('"')[::2])
    if "[" in outside or "]" in outside:
        raise protocol("a control frame holds an array (no frame has one)")
    depth = 0
    for brace in _NOT_BRACE.sub("", outside):
        depth += 1 if brace == "{" else -1
        if depth > DEPTH_MAX:
            raise protocol(f"a control frame nests objects deeper than {DEPTH_MAX}")


def _flag(body: bytes, key: str) -> None:
    value = _object(decode(body), "the frame")
    _keys(value, {key}, set(), f"the {key} frame")
    if value[key] is not True:
        raise protocol(f'the {key} frame must be {{"{key}": true}}, not {{"{key}": {value[key]!r:.40}}}')


def _object(value: object, what: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise protocol(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _keys(value: dict[str, Any], required: set[str], optional: set[str], what: str) -> None:
    keys = set(value)
    if not required <= keys or not keys <= required | optional:
        want = sorted(required) + [f"{k}?" for k in sorted(optional)]
        got = sorted(repr(k)[:40] for k in keys)
        raise protocol(f"{what} must have the keys {want}, not [{', '.join(got[:8])}]")


def _is_id(value: object) -> bool:
    return type(value) is int and 0 <= value < _ID_LIMIT


def _check_path(path: object, name: str | None = None) -> bytes:
    """The file system bytes of an absolute socket path, or ProtocolFailure."""
    what = "a socket file path" if name is None else f"the path of {name!r}"
    if type(path) is not str:
        raise protocol(f"{what} must be a str, not {type(path).__name__}")
    try:
        raw = os.fsencode(path)  # the file system encoding with surrogateescape
    except UnicodeEncodeError:
        raise protocol(f"{what} has characters that stand for no file system bytes: {path[:64]!r}") from None
    if b"\0" in raw:
        raise protocol(f"{what} holds a NUL byte: {path[:64]!r}")
    if not raw.startswith(b"/"):
        raise protocol(f"{what} is not absolute: {path[:64]!r}")
    if len(raw) > PATH_MAX:
        raise protocol(f"{what} is {len(raw)} bytes long; a socket path holds at most {PATH_MAX}")
    return raw


__all__ = [
    "DEPTH_MAX",
    "FILES_MAX",
    "FRAME_MAX",
    "PATH_MAX",
    "FileEntry",
    "body_size",
    "decode",
    "files",
    "given",
    "ready",
]
