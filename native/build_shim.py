"""Builds janus_net._shim: cffi out-of-line API mode over the real system headers.

Two kinds of input, each read once:

* **Declaration modules**, one per system header (pyca/cryptography's ``_cffi_src``
  layout): ``native/<header>_h.py`` with INCLUDES, TYPES, FUNCTIONS, CUSTOMIZATIONS.
  They declare the libc API janus_net calls, as the header has it: struct layouts and
  constant values are left to the C compiler (``...;``, ``static const int X;``), so
  nothing about this platform's ABI is written down in Python. CUSTOMIZATIONS holds only
  what makes a header uniform across platforms: ``JN_HAS_*`` feature flags and ``JN_*``
  constants that are 0 where the platform lacks the thing, stand-in structs, and a libc
  call's portable stand-in (a CMSG_* macro as a function, an ENOSYS stub where the call
  does not exist).

* **janus_net's own C**, in real files under ``native/src``: ``janus_net.h`` declares
  every struct, constant and function of it that Python sees, once; each ``jn_*.c``
  holds one idea (the owned-descriptor cell, wake pairs, the step sequence, ...).
  The part of ``janus_net.h`` between its two ``cffi cdef`` marker lines is handed to
  ``cdef()`` unchanged (it is written in the subset of C both cffi and the compiler read:
  see the header's opening comment), and the compiler reads the whole header and the
  ``.c`` files through ``#include`` lines in the ``set_source`` preamble, so its
  diagnostics name the real file and line. No declaration exists in a second copy.

The preamble is one translation unit: the prelude, every module's INCLUDES, every
module's CUSTOMIZATIONS, then ``janus_net.h`` and the ``.c`` files in SOURCES order (a
file may use what an earlier one defines: every helper stays ``static``, so only the
module's init is exported). After it cffi appends its generated glue.

Warnings: everything janus_net wrote (the CUSTOMIZATIONS and native/src) is compiled
between ``#pragma GCC diagnostic push`` and ``pop`` with ``-Wall``, ``-Wextra`` and the
warnings compilers give by default for C type errors turned into errors (STRICT: pragmas
gcc and clang both read), so a warning there stops the build, naming the file and line.
cffi's generated glue after it gets ``-Wall -Wextra`` as plain warnings, and an
incompatible pointer type as an error (where a cdef that disagrees with the C declaration
shows): it is cffi's code, and a warning a future cffi adds must not stop a user's build
from the sdist. (Compiling native/src as separate objects with -Werror on the command line
would need per-file flags, which setuptools does not have, and would make the helpers extern.)
"""

from __future__ import annotations

import importlib.util
import pathlib

import cffi

_HERE = pathlib.Path(__file__).resolve().parent
SRC = _HERE / "src"

# One module per header, named `<header>_h` so none shadows a stdlib module (fcntl).
# Order matters: a header's TYPES may use types declared by an earlier one.
HEADERS = (
    "sys_uio_h",
    "sys_socket_h",
    "netinet_in_h",
    "netinet_udp_h",
    "time_h",
    "arpa_inet_h",
    "sys_un_h",
    "fcntl_h",
    "unistd_h",
    "pthread_h",
    "sys_eventfd_h",
    "sys_stat_h",
    "net_if_h",
    "poll_h",
    "linux_landlock_h",
    "sched_h",
    "linux_sockopts_h",
    "linux_seccomp_h",
    "sys_file_h",
    "linux_unix_diag_h",
    "signal_h",
    "sys_wait_h",
    "sys_random_h",
    "sys_resource_h",
)

# janus_net's own C (native/src), in translation-unit order: a file may call a static
# function of an earlier one (jn_desc.c uses jn_wake.c's pairs; the others, the cell).
HEADER = "janus_net.h"
SOURCES = (
    "jn_wake.c",
    "jn_desc.c",
    "jn_steps.c",
    "jn_process.c",
    "jn_spawn.c",
    "jn_control.c",
    "jn_landlock.c",
    "jn_seccomp.c",
    "jn_unix_diag.c",
    "jn_netns.c",
    "jn_datagram.c",
)

CDEF_BEGIN = "/* ---- cffi cdef begin ---- */"
CDEF_END = "/* ---- cffi cdef end ---- */"

# accept4, mmsghdr and friends are GNU extensions on glibc.
PRELUDE = """
#define _GNU_SOURCE 1
#include <errno.h>
#include <stdint.h>
"""

# Warnings in janus_net's C are errors. Beyond -Wall and -Wextra: what gcc and clang warn
# about by default when a C type is wrong (errors in recent gcc, warnings in older ones).
STRICT = (
    "-Wall",
    "-Wextra",
    "-Wincompatible-pointer-types",
    "-Wint-conversion",
    "-Wimplicit-int",
    "-Wint-to-pointer-cast",
    "-Wpointer-to-int-cast",
)
STRICT_BEGIN = "#pragma GCC diagnostic push\n" + "".join(f'#pragma GCC diagnostic error "{w}"\n' for w in STRICT)
STRICT_END = "#pragma GCC diagnostic pop\n"


def _load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"_jn_native_{name}", _HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def header_cdef(text: str) -> str:
    """The part of janus_net.h between its two marker lines: what cffi's cdef() reads."""
    if text.count(CDEF_BEGIN) != 1 or text.count(CDEF_END) != 1:
        raise ValueError(f"{HEADER} must hold each cffi cdef marker line exactly once")
    return text.split(CDEF_BEGIN, 1)[1].split(CDEF_END, 1)[0]


def build_ffi() -> cffi.FFI:
    modules = [_load(name) for name in HEADERS]
    ffi = cffi.FFI()
    cdef = "".join(m.TYPES + m.FUNCTIONS for m in modules)  # type: ignore[attr-defined]
    ffi.cdef(cdef + header_cdef((SRC / HEADER).read_text()))
    source = PRELUDE + "".join(m.INCLUDES for m in modules)  # type: ignore[attr-defined]
    source += STRICT_BEGIN
    source += "".join(m.CUSTOMIZATIONS for m in modules)  # type: ignore[attr-defined]
    source += "".join(f'#include "{name}"\n' for name in (HEADER, *SOURCES))
    source += STRICT_END
    ffi.set_source(
        "janus_net._shim",
        source,
        include_dirs=[str(SRC)],
        # A change to native/src rebuilds the shim (its generated .c only #includes them).
        depends=[str(SRC / name) for name in (HEADER, *SOURCES)],
        extra_compile_args=["-Wall", "-Wextra", "-Werror=incompatible-pointer-types"],
    )
    return ffi


ffibuilder = build_ffi()

if __name__ == "__main__":
    import sys

    # `build_shim.py --emit-c FILE`: the generated C only, not compiled (scripts/cross compiles it
    # for other platforms; it #includes native/src, so compile with -I native/src).
    if sys.argv[1:2] == ["--emit-c"] and len(sys.argv) == 3:
        ffibuilder.emit_c_code(sys.argv[2])
    else:
        ffibuilder.compile(verbose=True)
