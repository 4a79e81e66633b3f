"""docs/architecture.md's drawing of the layers is what the imports say.

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
# A module of the package itself, or of one of its packages (``layout/``, the wings' ``_cli/``, ``_process/``...).
MODULE = re.compile(r"(?<![\w/.])((?:[a-z_]+/)?[a-z_]+\.py|_shim)(?![\w.])")


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


def _package_modules() -> set[str]:
    """Every module of the package as a drawn name's module name: ``socket``, ``layout``, ``_values.errors``."""
    return {module_name(str(path.relative_to(PACKAGE))) for path in PACKAGE.rglob("*.py")}


def _resolve(dotted: str, known: set[str]) -> str:
    """The module ``janus_net.<dotted>`` names: the longest known prefix (``_values.ip`` for ``_values.ip.X``)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in known:
            return name
    return parts[0]


def imports_of(path: Path) -> set[str]:
    """What ``path`` imports from janus_net, as dotted names inside it (``socket.Server``, ``_cli.flags``...).

    `resolve` turns each into the drawn module it names: the longest drawn prefix, so
    ``from janus_net._cli import flags`` is ``_cli.flags`` and ``from janus_net.errors
    import SocketError`` is ``errors``.

    An import from a wing's package names the module inside it: ``from janus_net._values.errors import X``
    and ``from janus_net._values import errors`` both import ``_values.errors``.

    Imports under ``if TYPE_CHECKING:`` are left out: they name a type for the checker and never run
    (``ancillary`` and ``segments`` annotate their ``sock`` parameter with ``socket.Socket``, the type
    that calls them), so they are no dependency at load or at run time.
    """
    tree = ast.parse(path.read_text())
    for_the_checker = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for statement in node.body
        for inner in ast.walk(statement)
    }

    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in for_the_checker:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("janus_net"):
            inner = node.module.removeprefix("janus_net").removeprefix(".")
            found |= {f"{inner}.{alias.name}" if inner else alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("janus_net.") for a in node.names if a.name.startswith("janus_net.")}
    return found


def resolve(dotted: str, drawn: set[str]) -> str | None:
    """The drawn module ``dotted`` names: its longest prefix that is drawn (None: a name of the package itself)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in drawn:
            return ".".join(parts[:end])
    return None


def test_the_drawing_names_the_real_modules() -> None:
    drawn = [m for modules, _ in drawing() for m in modules]
    assert len(drawn) == len(set(drawn)), "a module drawn twice"
    for name in drawn:
        assert name == "_shim" or (PACKAGE / name).exists(), f"{name} is drawn but does not exist"
    real = {str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")}
    assert not real - set(drawn), "modules the drawing does not show (add them to docs/architecture.md)"


def test_imports_resolve_to_the_drawn_module_they_name() -> None:
    drawn = {"_values.errors", "layout", "_cli", "_cli.flags", "_process.notify", "platform"}
    assert resolve("_values.errors.SocketError", drawn) == "_values.errors"
    assert resolve("_cli.flags", drawn) == "_cli.flags" and resolve("_cli.main", drawn) == "_cli"
    assert resolve("_process.notify.receive", drawn) == "_process.notify"
    assert resolve("platform.HAS_ACCEPT4", drawn) == "platform" and resolve("SocketError", drawn) is None


def test_every_drawn_module_imports_only_downwards() -> None:
    rows = drawing()
    row_of = {module_name(m): i for i, (modules, _) in enumerate(rows) for m in modules}
    arrows = {(module_name(a), module_name(b)) for _, pairs in rows for a, b in pairs}
    for modules, _ in rows:
        for drawn in modules:
            if drawn == "_shim":
                continue
            name = module_name(drawn)
            for imported in imports_of(PACKAGE / drawn):
                target = resolve(imported, set(row_of))
                if target is None or target == name:
                    continue
                below = row_of[target] > row_of[name]
                assert below or (name, target) in arrows, (
                    f"{drawn} imports {target}, which the drawing shows above it or beside it without an arrow"
                )
