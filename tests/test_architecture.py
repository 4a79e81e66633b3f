"""docs/architecture.md's drawing of the layers is what the imports say (issue 10 item 8).

Each row of the drawing may import modules on rows below it, and the one module a ``─▶`` on its
own row points at. Every module of the package is drawn, so every module is checked.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "janus_net"
DOC = ROOT / "docs" / "architecture.md"
MODULE = re.compile(r"(?<![\w/.])((?:layout/|_[a-z]+/)?[a-z_]+(?:/__init__|/__main__)?\.py|_shim)(?![\w.])")


def drawing() -> list[tuple[list[str], set[tuple[str, str]]]]:
    """Rows of the drawing, top first: (modules, arrows within the row)."""
    text = DOC.read_text()
    block = text.split("## The layers", 1)[1].split("```", 2)[1]
    rows = []
    for line in block.splitlines()[3:]:  # after the fence line and the two header lines
        cells = line[17:]  # past the row's name
        found = [m.group(1) for m in MODULE.finditer(cells)]
        arrows = set(re.findall(r"([\w/]+\.py) ─▶ (?=([\w/]+\.py))", cells))
        if found:
            rows.append((found, arrows))
    return rows


def module_name(drawn: str) -> str:
    return drawn.removesuffix(".py").removesuffix("/__init__").replace("/", ".")


def _drawn_name(dotted: str) -> str:
    """The drawn module a dotted name below ``janus_net`` means: ``socket``, ``layout``, ``_sockets.owner``.

    A wing's private package (``_sockets``...) is drawn module by module, so its modules keep
    two parts; ``layout``'s submodules are drawn as the package.
    """
    parts = dotted.split(".")
    if parts[0].startswith("_") and parts[0] != "_shim" and len(parts) > 1:
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def imports_of(path: Path, for_the_checker_too: bool = False) -> set[str]:
    """The janus_net modules ``path`` imports, as drawn names' module names (``layout``, ``_sockets.owner``...).

    Imports under ``if TYPE_CHECKING:`` are left out unless ``for_the_checker_too``: they name a
    type for the checker and never run, so they are no dependency at load or at run time.
    """
    tree = ast.parse(path.read_text())
    for_the_checker = (
        set()
        if for_the_checker_too
        else {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for statement in node.body
            for inner in ast.walk(statement)
        }
    )
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in for_the_checker:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("janus_net"):
            if node.module == "janus_net":
                found |= {alias.name for alias in node.names}
            else:
                inner = node.module.split(".", 1)[1]
                if "." not in inner and inner.startswith("_") and inner != "_shim":
                    found |= {f"{inner}.{alias.name}" for alias in node.names}  # from janus_net._wing import m
                else:
                    found.add(_drawn_name(inner))
        elif isinstance(node, ast.Import):
            found |= {_drawn_name(a.name.split(".", 1)[1]) for a in node.names if a.name.startswith("janus_net.")}
    return found


def test_the_drawing_names_the_real_modules() -> None:
    drawn = [m for modules, _ in drawing() for m in modules]
    assert len(drawn) == len(set(drawn)), "a module drawn twice"
    for name in drawn:
        assert name == "_shim" or (PACKAGE / name).exists(), f"{name} is drawn but does not exist"
    real = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")}
    assert not real - set(drawn), "modules the drawing does not show (add them to docs/architecture.md)"


def test_every_drawn_module_imports_only_downwards() -> None:
    rows = drawing()
    row_of = {module_name(m): i for i, (modules, _) in enumerate(rows) for m in modules}
    arrows = {(module_name(a), module_name(b)) for _, pairs in rows for a, b in pairs}
    for modules, _ in rows:
        for drawn in modules:
            if drawn == "_shim":
                continue
            name = module_name(drawn)
            for target in imports_of(PACKAGE / drawn):
                if target not in row_of or target == name:
                    continue
                below = row_of[target] > row_of[name]
                assert below or (name, target) in arrows, (
                    f"{drawn} imports {target}, which the drawing shows above it or beside it without an arrow"
                )


# --- The sockets wing (DESIGN §2): a socket does not know how it was made, and policy knows no socket.

#: Modules of the wings above the sockets, by their old paths and their packages: no module of
#: ``janus_net/_sockets/`` may name one, not even for the checker (the unix file duty is typed by a
#: small Protocol of the sockets' own).
ABOVE_THE_SOCKETS = {
    "_cli", "_process", "_profiles", "layout", "cli", "cliopts", "cliout", "stops", "demo", "handoff", "fdpass",
    "frames", "activation", "notify", "supervisor", "listen", "connect", "adopt", "steps", "unixfile", "sockopts",
    "options",
    # The old paths of the sockets wing: the shims point down into the package, never back up.
    "socket", "batch", "segments", "ancillary", "coalesced", "wrap", "scratch",
}  # fmt: skip
#: The policy wing, by old paths and package: none of it imports a socket module.
POLICY = {"context", "capability", "landlock", "netns", "waiting", "wakeup", "audit"}
SOCKETS = {"_sockets", "socket", "batch", "segments", "ancillary", "coalesced", "wrap", "scratch"}


def _wing_of(name: str) -> str:
    return name.split(".")[0]


def test_the_sockets_package_is_drawn_module_by_module() -> None:
    drawn = {module_name(m) for modules, _ in drawing() for m in modules}
    real = {module_name(str(p.relative_to(PACKAGE))) for p in (PACKAGE / "_sockets").glob("*.py")}
    assert "_sockets.owner" in real and "_sockets.datagram" in real  # the walk sees the package
    assert real <= drawn


def test_no_socket_module_imports_a_wing_above_it_even_for_the_checker() -> None:
    for path in sorted((PACKAGE / "_sockets").glob("*.py")):
        names = imports_of(path, for_the_checker_too=True)
        above = sorted(n for n in names if _wing_of(n) in ABOVE_THE_SOCKETS)
        assert not above, f"_sockets/{path.name} imports {above}, above the sockets (DESIGN §2)"


def test_policy_imports_no_socket_module() -> None:
    policy = [PACKAGE / f"{name}.py" for name in sorted(POLICY)] + sorted((PACKAGE / "_policy").glob("*.py"))
    for path in policy:
        if not path.exists():
            continue  # moved into _policy/ (listed by the glob)
        names = imports_of(path, for_the_checker_too=True)
        assert not {n for n in names if _wing_of(n) in SOCKETS}, f"{path.name} imports the sockets (DESIGN §2)"


def test_the_import_reader_sees_a_wing_package_module_by_module(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from janus_net._sockets import batching, segments\nfrom janus_net._sockets.owner import Owner\n"
        "import janus_net._values.kinds\nfrom janus_net._shim import lib\nfrom janus_net.layout import x\n"
        "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from janus_net.unixfile import UnixFile\n"
    )
    run_time = {"_sockets.batching", "_sockets.segments", "_sockets.owner", "_values.kinds", "_shim", "layout"}
    assert imports_of(source) == run_time
    assert imports_of(source, for_the_checker_too=True) == run_time | {"unixfile"}
