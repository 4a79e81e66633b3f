"""janus_net/_shim.pyi, the typed facade of the compiled cffi module, matches the module.

mypy reads the .pyi instead of the .so, so a name declared in native/ but missing
from the stub (or a stub name the shim does not have) would go unchecked: compare
them, and compare each name's kind (int constant or C function).
"""

from __future__ import annotations

import ast
from pathlib import Path

from janus_net._shim import ffi, lib

STUB = Path(__file__).resolve().parent.parent / "janus_net" / "_shim.pyi"


def _class_members(name: str) -> tuple[set[str], set[str]]:
    """(annotated attributes, methods) of a class in the stub."""
    tree = ast.parse(STUB.read_text())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name]
    attributes = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    methods = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)}
    return attributes, methods


def test_lib_stub_declares_exactly_what_the_shim_has() -> None:
    constants, functions = _class_members("_Lib")
    real = set(dir(lib))
    assert constants | functions == real, {
        "missing from the stub": sorted(real - constants - functions),
        "not in the shim": sorted((constants | functions) - real),
    }
    for name in constants:
        assert type(getattr(lib, name)) is int, name
    for name in functions:
        assert callable(getattr(lib, name)) and not isinstance(getattr(lib, name), int), name


def test_ffi_stub_names_exist() -> None:
    attributes, methods = _class_members("FFI")
    for name in attributes | methods:
        assert hasattr(ffi, name), name
