"""Builds janus_net._shim: cffi out-of-line API mode over the real system headers.

Each module beside this one declares one C header (pyca/cryptography's layout):
INCLUDES, TYPES, FUNCTIONS, CUSTOMIZATIONS. Struct layouts and constant values are
left to the C compiler (`...;`, `static const int X;`), so nothing about this
platform's ABI is written down in Python.
"""

from __future__ import annotations

import importlib.util
import pathlib

import cffi

_HERE = pathlib.Path(__file__).resolve().parent

# One module per header, named `<header>_h` so none shadows a stdlib module (fcntl).
# Order matters: a header's TYPES may use types declared by an earlier one. After the
# headers, the native fast paths (DESIGN §2), which use their types: `jn_*` modules.
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
    "spawn_h",
    "sys_random_h",
    "jn_process",
    "jn_steps",
    "jn_control",
)

# accept4, mmsghdr and friends are GNU extensions on glibc.
PRELUDE = """
#define _GNU_SOURCE 1
#include <errno.h>
#include <stdint.h>
"""


def _load(name: str) -> object:
    spec = importlib.util.spec_from_file_location(f"_jn_native_{name}", _HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_ffi() -> cffi.FFI:
    modules = [_load(name) for name in HEADERS]
    ffi = cffi.FFI()
    ffi.cdef("\n".join(m.TYPES + m.FUNCTIONS for m in modules))  # type: ignore[attr-defined]
    source = PRELUDE + "".join(m.INCLUDES for m in modules)  # type: ignore[attr-defined]
    source += "".join(m.CUSTOMIZATIONS for m in modules)  # type: ignore[attr-defined]
    ffi.set_source("janus_net._shim", source, extra_compile_args=["-Wall", "-Werror=incompatible-pointer-types"])
    return ffi


ffibuilder = build_ffi()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
