"""native/: janus_net's own C lives in native/src and is declared once; the declaration modules hold a header's API.

The builder (native/build_shim.py) hands the cdef section of native/src/janus_net.h to
cffi and includes the header and every .c file in the shim's one translation unit, so a
struct or function of janus_net declared anywhere else would be a second copy that can
drift; a .c file the builder does not list, or the sdist does not carry, is not compiled.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType

from janus_net._shim import ffi, lib

ROOT = Path(__file__).resolve().parent.parent
NATIVE = ROOT / "native"
SRC = NATIVE / "src"


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_jn_build_shim_under_test", NATIVE / "build_shim.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILDER = _builder()
CDEF = BUILDER.header_cdef((SRC / BUILDER.HEADER).read_text())


def test_the_builder_compiles_every_file_of_native_src() -> None:
    assert sorted(p.name for p in SRC.glob("*.c")) == sorted(BUILDER.SOURCES)
    assert sorted(p.name for p in SRC.glob("*.h")) == [BUILDER.HEADER]
    assert sorted(p.stem for p in NATIVE.glob("*_h.py")) == sorted(BUILDER.HEADERS)
    manifest = (ROOT / "MANIFEST.in").read_text()
    assert "include native/src/*.h native/src/*.c" in manifest


def test_each_struct_and_function_of_janus_net_is_declared_once() -> None:
    structs = re.findall(r"^struct (jn_\w+) \{", CDEF, re.MULTILINE)
    functions = re.findall(r"^static [\w ]+?\**\b(jn_\w+)\(", CDEF, re.MULTILINE)
    assert structs and functions
    assert len(structs) == len(set(structs)) and len(functions) == len(set(functions))
    for name, module in zip(BUILDER.HEADERS, map(BUILDER._load, BUILDER.HEADERS), strict=True):
        code = re.sub(r"/\*.*?\*/", " ", module.TYPES + module.FUNCTIONS + module.CUSTOMIZATIONS, flags=re.S)
        for declared in structs + functions:
            assert not re.search(rf"\b{declared}\b", code), f"{name}.py declares {declared} a second time"
    for name in structs:
        definitions = [p.name for p in SRC.glob("*.c") if re.search(rf"^struct {name} \{{", p.read_text(), re.M)]
        assert definitions == [], f"struct {name} is defined again in {definitions}"
    for name in functions:
        definitions = [p.name for p in SRC.glob("*.c") if re.search(rf"\b{name}\([^;]*\)\s*\{{", p.read_text())]
        assert len(definitions) == 1, f"{name} is defined in {definitions or 'no file'} of native/src"


def test_the_cdef_section_has_no_preprocessor_line_cffi_cannot_read() -> None:
    for line in CDEF.splitlines():
        if line.lstrip().startswith("#"):
            assert re.fullmatch(r"#define \w+ (0x[0-9a-fA-F]+|\d+)", line.strip()), line


def test_the_emitted_c_is_the_shims_and_compiles_without_a_warning(tmp_path: Path) -> None:
    """`build_shim.py --emit-c` (what make cross compiles for other systems) writes the shim's whole
    translation unit, and this machine's compiler reads it with -Wall -Wextra -Werror: a warning the
    cross compilers would report starts here too."""

    out = tmp_path / "_shim.c"
    subprocess.run([sys.executable, str(NATIVE / "build_shim.py"), "--emit-c", str(out)], check=True, cwd=tmp_path)
    text = out.read_text()
    assert "PyInit__shim" in text
    assert all(f'#include "{name}"' in text for name in (BUILDER.HEADER, *BUILDER.SOURCES))
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler is not None, "the shim itself was built with a C compiler"
    done = subprocess.run(
        [
            compiler,
            "-fsyntax-only",
            "-Wall",
            "-Werror",
            "-I",
            str(SRC),
            "-I",
            sysconfig.get_paths()["include"],
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_platform_flags_a_header_lacks_are_zero_and_the_others_are_the_kernels() -> None:
    """SO_PASSCRED reaches Python as the JN_ flag (0 where the header lacks it), equal to the stdlib's here."""
    assert lib.JN_SO_PASSCRED == socket.SO_PASSCRED
    # The msghdr/cmsghdr/mmsghdr field widths are the platform's own types, whatever they are.
    for typedef, (struct, field) in {
        "jn_msg_iovlen_t": ("struct msghdr", "msg_iovlen"),
        "jn_msg_controllen_t": ("struct msghdr", "msg_controllen"),
        "jn_cmsg_len_t": ("struct cmsghdr", "cmsg_len"),
        "jn_mmsg_len_t": ("struct mmsghdr", "msg_len"),
    }.items():
        assert ffi.sizeof(typedef) == ffi.sizeof(dict(ffi.typeof(struct).fields)[field].type)
