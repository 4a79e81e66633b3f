"""The layout tool against the C compiler itself.

The oracle is a tiny C program compiled here with the system headers: it prints
sizeof/_Alignof of every struct and offsetof/sizeof of every field the tool reports,
and whether the C type the tool names is the field's type. The tool's JSON must equal
it exactly. Encoded addresses are checked byte for byte against the stdlib (`socket`
constants, `ipaddress` packing), sliced at the offsets the compiler gave.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from janus_net import layout

# The declared members each struct must report: the ones janus_net's shim declares
# and uses (anything else is a hole, by design).
DECLARED = {
    "sockaddr": ["sa_family", "sa_data"],
    "sockaddr_in": ["sin_family", "sin_port", "sin_addr"],
    "sockaddr_in6": ["sin6_family", "sin6_port", "sin6_flowinfo", "sin6_addr", "sin6_scope_id"],
    "sockaddr_un": ["sun_family", "sun_path"],
    "sockaddr_storage": ["ss_family"],
}


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "janus_net", "layout", *args], capture_output=True, text=True, timeout=60
    )


def tool_json(*addresses: str) -> dict[str, Any]:
    result = run_tool("--json", *addresses)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    data: dict[str, Any] = json.loads(result.stdout)  # exactly one JSON document, nothing else
    return data


def compile_oracle(tmp_path: Path, structs: dict[str, Any]) -> dict[str, Any]:
    """Compile and run a C program that reports what the compiler says about each field."""
    lines = [
        "#define _GNU_SOURCE 1",
        "#include <stdio.h>",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#include <sys/types.h>",
        "#include <sys/socket.h>",
        "#include <netinet/in.h>",
        "#include <sys/un.h>",
        "int main(void) {",
    ]
    for name, struct in structs.items():
        lines.append(f'printf("S {name} %zu %zu\\n", sizeof(struct {name}), (size_t)_Alignof(struct {name}));')
        for field in struct["fields"]:
            member = f"((struct {name} *)0)->{field['name']}"
            # The type the tool names must be the member's type, not merely one of the same size.
            same_type = f"__builtin_types_compatible_p(__typeof__({member}), {field['type']})"
            lines.append(
                f'printf("F {name} {field["name"]} %zu %zu %d\\n", offsetof(struct {name}, {field["name"]}),'
                f" sizeof({member}), {same_type});"
            )
    lines += ["return 0;", "}"]
    source = tmp_path / "layout_oracle.c"
    source.write_text("\n".join(lines) + "\n")
    binary = tmp_path / "layout_oracle"
    compiler = shutil.which("cc") or shutil.which("gcc")
    assert compiler is not None, "a C compiler is needed to build the shim, so it is here"
    subprocess.run([compiler, "-std=c11", "-Wall", "-Werror", "-o", str(binary), str(source)], check=True)
    output = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout

    oracle: dict[str, Any] = {}
    for row in output.splitlines():
        kind, struct_name, *rest = row.split()
        if kind == "S":
            oracle[struct_name] = {"size": int(rest[0]), "align": int(rest[1]), "fields": []}
        else:
            field_name, offset, size, same_type = rest
            oracle[struct_name]["fields"].append(
                {"name": field_name, "offset": int(offset), "size": int(size), "same_type": same_type == "1"}
            )
    return oracle


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return tool_json("[::1]:443", "127.0.0.1:9000", "unix:/tmp/x.sock", "unix:@name", "[fe80::1%1]:80")


@pytest.fixture(scope="module")
def oracle(report: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return compile_oracle(tmp_path_factory.mktemp("oracle"), report["structs"])


def addresses(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["text"]: a for a in report["addresses"]}


def offset(oracle: dict[str, Any], struct: str, field: str) -> int:
    (found,) = [f["offset"] for f in oracle[struct]["fields"] if f["name"] == field]
    return int(found)


def test_json_shape(report: dict[str, Any]) -> None:
    assert set(report) >= {"platform", "structs", "addresses"}
    assert isinstance(report["platform"], str) and report["platform"]
    assert list(report["structs"]) == list(DECLARED)
    for name, struct in report["structs"].items():
        assert set(struct) >= {"size", "align", "fields", "holes"}
        assert [f["name"] for f in struct["fields"]] == DECLARED[name]
        for field in struct["fields"]:
            assert set(field) >= {"name", "offset", "size", "type"}
    for entry in report["addresses"]:
        assert set(entry) >= {"text", "struct", "length", "hex"}


def test_sizes_offsets_and_types_equal_the_compiler(report: dict[str, Any], oracle: dict[str, Any]) -> None:
    assert set(oracle) == set(report["structs"])
    for name, struct in report["structs"].items():
        c = oracle[name]
        assert (struct["size"], struct["align"]) == (c["size"], c["align"]), name
        tool_fields = [(f["name"], f["offset"], f["size"]) for f in struct["fields"]]
        c_fields = [(f["name"], f["offset"], f["size"]) for f in c["fields"]]
        assert tool_fields == c_fields, name
        wrong_types = [f["name"] for f in c["fields"] if not f["same_type"]]
        assert wrong_types == [], f"{name}: the C compiler disagrees with the type of {wrong_types}"


def test_holes_are_exactly_the_bytes_no_field_covers(report: dict[str, Any], oracle: dict[str, Any]) -> None:
    for name, struct in report["structs"].items():
        covered = [False] * oracle[name]["size"]
        for f in oracle[name]["fields"]:
            for i in range(f["offset"], f["offset"] + f["size"]):
                covered[i] = True
        uncovered = {i for i, c in enumerate(covered) if not c}
        holes = struct["holes"]
        in_holes = {i for h in holes for i in range(h["offset"], h["offset"] + h["size"])}
        assert in_holes == uncovered, name
        assert sum(h["size"] for h in holes) == len(uncovered), f"{name}: holes overlap"
        for before, after in itertools.pairwise(holes):
            assert before["offset"] + before["size"] < after["offset"], f"{name}: adjacent holes not merged"


def test_a_sockaddr_in_has_room_after_sin_addr(report: dict[str, Any], oracle: dict[str, Any]) -> None:
    # sin_zero on Linux: undeclared in the shim, so it shows up as a hole at the end.
    struct = report["structs"]["sockaddr_in"]
    end_of_addr = offset(oracle, "sockaddr_in", "sin_addr") + 4
    assert {"offset": end_of_addr, "size": oracle["sockaddr_in"]["size"] - end_of_addr} in struct["holes"]


def family_bytes(family: int, oracle: dict[str, Any], struct: str, field: str) -> bytes:
    (size,) = [f["size"] for f in oracle[struct]["fields"] if f["name"] == field]
    return family.to_bytes(size, sys.byteorder)


def test_ip6_encoding(report: dict[str, Any], oracle: dict[str, Any]) -> None:
    entry = addresses(report)["[::1]:443"]
    data = bytes.fromhex(entry["hex"])
    assert entry["struct"] == "sockaddr_in6"
    assert entry["length"] == len(data) == oracle["sockaddr_in6"]["size"]
    fam = offset(oracle, "sockaddr_in6", "sin6_family")
    port = offset(oracle, "sockaddr_in6", "sin6_port")
    addr = offset(oracle, "sockaddr_in6", "sin6_addr")
    scope = offset(oracle, "sockaddr_in6", "sin6_scope_id")
    expected_family = family_bytes(socket.AF_INET6, oracle, "sockaddr_in6", "sin6_family")
    assert data[fam : fam + len(expected_family)] == expected_family
    assert data[port : port + 2] == bytes([0x01, 0xBB])
    assert data[addr : addr + 16] == ipaddress.IPv6Address("::1").packed
    assert data[scope : scope + 4] == bytes(4)


def test_ip4_encoding(report: dict[str, Any], oracle: dict[str, Any]) -> None:
    entry = addresses(report)["127.0.0.1:9000"]
    data = bytes.fromhex(entry["hex"])
    assert entry["struct"] == "sockaddr_in"
    assert entry["length"] == len(data) == oracle["sockaddr_in"]["size"]
    fam = offset(oracle, "sockaddr_in", "sin_family")
    port = offset(oracle, "sockaddr_in", "sin_port")
    addr = offset(oracle, "sockaddr_in", "sin_addr")
    expected_family = family_bytes(socket.AF_INET, oracle, "sockaddr_in", "sin_family")
    assert data[fam : fam + len(expected_family)] == expected_family
    assert data[port : port + 2] == (9000).to_bytes(2, "big")
    assert data[addr : addr + 4] == ipaddress.IPv4Address("127.0.0.1").packed
    assert data[addr + 4 :] == bytes(len(data) - addr - 4)  # sin_zero


def test_unix_path_encoding(report: dict[str, Any], oracle: dict[str, Any]) -> None:
    entry = addresses(report)["unix:/tmp/x.sock"]
    data = bytes.fromhex(entry["hex"])
    path = offset(oracle, "sockaddr_un", "sun_path")
    assert entry["struct"] == "sockaddr_un"
    assert entry["length"] == len(data) == path + len(b"/tmp/x.sock") + 1
    fam = offset(oracle, "sockaddr_un", "sun_family")
    expected_family = family_bytes(socket.AF_UNIX, oracle, "sockaddr_un", "sun_family")
    assert data[fam : fam + len(expected_family)] == expected_family
    assert data[path:] == b"/tmp/x.sock\0"


def test_unix_abstract_encoding(report: dict[str, Any], oracle: dict[str, Any]) -> None:
    entry = addresses(report)["unix:@name"]
    data = bytes.fromhex(entry["hex"])
    path = offset(oracle, "sockaddr_un", "sun_path")
    assert entry["length"] == len(data) == path + 1 + len(b"name")
    assert data[path:] == b"\0name"  # leading NUL, no trailing NUL


def test_zone_goes_into_the_scope_id(report: dict[str, Any], oracle: dict[str, Any]) -> None:
    entry = addresses(report)["[fe80::1%1]:80"]
    data = bytes.fromhex(entry["hex"])
    scope = offset(oracle, "sockaddr_in6", "sin6_scope_id")
    addr = offset(oracle, "sockaddr_in6", "sin6_addr")
    assert data[scope : scope + 4] == (1).to_bytes(4, sys.byteorder)  # host order, unlike the port
    assert data[addr : addr + 16] == ipaddress.IPv6Address("fe80::1").packed


def field_line(output: str, block_start: str, field: str) -> str:
    block = output[output.index(block_start) :]
    (line,) = [ln for ln in block.splitlines() if ln.split()[1:2] == [field]][:1]
    return line


def test_human_output_shows_each_field() -> None:
    result = run_tool("[::1]:443", "127.0.0.1:9000", "unix:/tmp/x.sock", "unix:@name")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for name in DECLARED:
        assert f"struct {name}: size " in out
    port = field_line(out, "[::1]:443  struct", "sin6_port")
    assert "01 bb" in port and port.endswith("= 443")
    family = field_line(out, "[::1]:443  struct", "sin6_family")
    assert f"AF_INET6 ({socket.AF_INET6})" in family
    addr = field_line(out, "[::1]:443  struct", "sin6_addr")
    assert " ".join(f"{b:02x}" for b in ipaddress.IPv6Address("::1").packed) in addr
    assert addr.endswith("= ::1")
    assert "23 28" in field_line(out, "127.0.0.1:9000  struct", "sin_port")
    assert "padding/undeclared" in out  # sockaddr_in's tail and sockaddr_storage's body
    path = field_line(out, "unix:/tmp/x.sock  struct", "sun_path")
    assert " ".join(f"{b:02x}" for b in b"/tmp/x.sock\0") in path
    abstract = field_line(out, "unix:@name  struct", "sun_path")
    assert "00 6e 61 6d 65" in abstract and "00 6e 61 6d 65 00" not in abstract
    assert "abstract" in abstract


def test_render_is_the_human_output() -> None:
    result = run_tool("[::1]:443")
    assert result.stdout == layout.render(["[::1]:443"]) + "\n"


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "janus_net.layout"],
        [str(Path(__file__).resolve().parent.parent / "scripts" / "sockaddr-layout")],
    ],
    ids=["python -m janus_net.layout", "scripts/sockaddr-layout"],
)
def test_other_entry_points(command: list[str], tmp_path: Path) -> None:
    # Same output, from an unrelated working directory, and the same error contract.
    ok = subprocess.run([*command, "--json", "[::1]:443"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == layout.describe(["[::1]:443"])
    bad = subprocess.run([*command, "[::1]:8_080"], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2  # a refused command-line value is a usage error (DESIGN §12)
    assert bad.stdout == ""
    assert bad.stderr.startswith("janus-net: InvalidPort: ") and bad.stderr.count("\n") == 1


def test_bad_address_is_one_line_and_exit_2() -> None:
    result = run_tool("--json", "[::1]:443", "localhost:80")
    assert result.returncode == 2
    assert result.stdout == ""  # nothing printed before every address parsed
    assert result.stderr.startswith("janus-net: InvalidAddress: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_layout_is_a_library_without_a_cycle() -> None:
    # cli -> layout, never back: `python -m janus_net.layout` runs layout/__main__.py, which
    # hands over to cli, so the library module is executed exactly once.
    import ast

    package = Path(layout.__file__).parent
    tree = ast.parse((package / "__init__.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not {"janus_net._cli", "janus_net", "argparse", "janus_net._cli.demo"} & imported, imported
    assert not any(name.startswith("janus_net._cli") for name in imported if name), imported
    # Nobody reaches into layout's private names (demo once used _render_address).
    users = sorted((package.parent / "_cli").glob("*.py"))
    assert {"command.py", "describe.py", "demo.py"} <= {user.name for user in users}
    for user in users:
        assert "layout._" not in user.read_text(), user.name


def test_python_m_layout_loads_the_library_once() -> None:
    # runpy._run_module_as_main is what `python -m` calls; at exit, count the module
    # objects that were executed from the library's file: one (a second copy run as __main__ would make two).
    probe = """
import atexit, os, runpy, sys
def report():
    import janus_net.layout as lib
    same = sorted(k for k, m in list(sys.modules.items()) if getattr(m, "__file__", None) == lib.__file__)
    os.write(2, repr(same).encode() + b"\\n")
atexit.register(report)
sys.argv = ["layout", "--json"]
runpy._run_module_as_main("janus_net.layout")
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["structs"]
    assert done.stderr.strip().splitlines()[-1] == "['janus_net.layout']"
