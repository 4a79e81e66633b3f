"""A small file's content kept while the file stays the same version: resolv.conf and hosts, stat'ed per lookup.

glibc checks /etc/resolv.conf at each lookup with one stat(2) and parses it again only
when its identity or change times moved (resolv/resolv_conf.c, ``file_is_unchanged``).
`read_kept` does the same for every small file a lookup reads: one stat(2) of the path;
when its `janus_net._kernel.files.Stat.version` -- (dev, inode, size, mtime_ns,
ctime_ns) -- equals the version of the content read last time, that content (and
whatever the caller derived from it, ``derive``) is answered again; else the file is
read again, and the fstat of the open file being read names what is kept.

This is not an answer cache (DESIGN §17 has none): what is kept is the file's own
content, and a lookup never answers from anything the file no longer says. A write
that keeps the size and lands within one tick of the file system's clock after the
read would keep the same version; so, as git does with its "racily clean" entries, a
file changed less than `RACY_NS` before it was read is not kept: the next lookup reads
it again. That window is widened by the time stamps' own granularity, read from the
ctime (which no one can set): a file system that stamps whole seconds (ext4 with 128-byte
inodes, FAT, HFS+, some NFS servers) gives every write within one second the same
version, however long after the first write the file was read.

Thread-safe without a lock: each path's entry is one immutable tuple, replaced whole
(a dict assignment is atomic); two threads that read the same new version at once
both parse it, and either result is right.
"""

from __future__ import annotations

import time

from janus_net._kernel import files

TYPE_CHECKING = False  # `typing` for the checker only: it costs import time (docs/performance.md)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: A file whose last change is closer than this to the instant it was read is read again at
#: the next lookup: file systems stamp times at the kernel's coarse clock (a few ms a tick).
RACY_NS = 100_000_000
#: Paths kept at most; more (a program naming many files) starts over, so memory stays bounded.
MAX_KEPT = 16
#: A file larger than this is read at every lookup, as before, rather than held in memory for
#: the process's life (an ad-blocking hosts file of several MiB, twice with its folded copy).
MAX_KEPT_BYTES = 1024 * 1024

#: The coarsest time stamps assumed: FAT's mtime counts in two seconds.
COARSEST_NS = 2_000_000_000

# path -> (version, limit, key, content, derived)
_kept: dict[str, tuple[tuple[int, int, int, int, int], int, object, bytes, object]] = {}


def read_kept(path: str, limit: int, key: object = None, derive: Callable[[bytes], Any] | None = None) -> Any:
    """``derive(content)`` of the regular file at ``path`` (the bytes without ``derive``); one stat if unchanged.

    Args:
        path: the file's path.
        limit: the largest content accepted (bytes), as `files.read_small_file`.
        key: whatever else ``derive``'s result depends on (the environment, say): a
            different key derives again from the kept content.
        derive: the function of the content to keep beside it (a parse).

    Raises:
        Whatever `files.stat_version` and `files.read_small_file_stat` raise (FileNotFound,
        AccessDenied, SystemResources...): nothing is kept for a file that failed.
    """
    version = files.stat_version(path, path)
    kept = _kept.get(path)
    if kept is not None and kept[0] == version and kept[1] == limit:
        if kept[2] == key:
            return kept[4]
        content = kept[3]  # the same file; only what the result depends on changed
        kept_version = version
    else:
        content, st = files.read_small_file_stat(path, limit)
        kept_version = st.version
        # Racily clean: changed within the clock's tick of this read, the same version could
        # name newer content later. Keep nothing; the next lookup reads the file again.
        racy = RACY_NS + _granule(st.ctime_ns)
        if time.time_ns() - max(st.mtime_ns, st.ctime_ns) < racy or len(content) > MAX_KEPT_BYTES:
            return content if derive is None else derive(content)
    derived = content if derive is None else derive(content)
    if len(_kept) >= MAX_KEPT and path not in _kept:
        _kept.clear()
    _kept[path] = (kept_version, limit, key, content, derived)
    return derived


def _granule(stamp_ns: int) -> int:
    """The granularity ``stamp_ns`` shows: the largest power of ten up to a second that divides it; a whole
    second counts as `COARSEST_NS`. A fine stamp that happens to end in zeros only costs a read more."""
    granule = 1
    while granule < 1_000_000_000 and stamp_ns % (granule * 10) == 0:
        granule *= 10
    return COARSEST_NS if granule == 1_000_000_000 else granule


def forget() -> None:
    """Drop every kept content (tests; a program that wants the next lookups to read the files)."""
    _kept.clear()


__all__ = ["COARSEST_NS", "MAX_KEPT", "MAX_KEPT_BYTES", "RACY_NS", "forget", "read_kept"]
