"""The option table (janus_net/_values/options.py) and everything read from it stay in step.

The six public signatures, the values each hands on, the options record, the command's flags and
docs/options.md are each compared with the table; the table itself names only real shim constants.
"""

from __future__ import annotations

import argparse
import ast
import inspect
from pathlib import Path
from typing import Any

import pytest

import janus_net as jn
from janus_net._cli import flags as cliopts
from janus_net._profiles import listen as profiles
from janus_net._profiles import native_sequence
from janus_net._profiles.addresses import parse_address
from janus_net._profiles.option_checks import FIELDS, Options, bind_options, default, listen_options
from janus_net._profiles.socket_options import setsockopt_steps
from janus_net._shim import lib
from janus_net._values import options as table

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "options.md"

SIGNATURES = {
    "listen": (jn.listen, jn.listen_with_context, jn.listen_with_capability),
    "bind": (jn.bind, jn.bind_with_context, jn.bind_with_capability),
}
PROFILE_OF = {function.__name__: profile for profile, functions in SIGNATURES.items() for function in functions}


def _keywords(function: Any) -> list[inspect.Parameter]:
    """The option keywords of a profile function: its keyword-only parameters but ``ctx``."""
    parameters = inspect.signature(function).parameters.values()
    return [p for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "ctx"]


@pytest.mark.parametrize("function", [f for fs in SIGNATURES.values() for f in fs], ids=lambda f: f.__name__)
def test_each_signature_is_the_table(function: Any) -> None:
    profile = PROFILE_OF[function.__name__]
    options = table.taken_by(profile)
    keywords = _keywords(function)
    assert [p.name for p in keywords] == [o.name for o in options], "names or order differ from the table"
    for parameter, option in zip(keywords, options, strict=True):
        expected = default(option, profile)
        assert parameter.default == expected and type(parameter.default) is type(expected), option.name
        assert parameter.annotation == option.annotation, option.name  # strings: annotations are postponed
    # Nothing but the address, the context or capability, and the options.
    others = [p.name for p in inspect.signature(function).parameters.values() if p not in keywords]
    assert others in (["address"], ["address", "ctx"], ["address", "cap", "ctx"])


def test_each_profile_hands_on_its_keywords_in_signature_order() -> None:
    tree = ast.parse(Path(profiles.__file__).read_text(encoding="utf-8"))
    seen = set()
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or node.name not in PROFILE_OF:
            continue
        profile = PROFILE_OF[node.name]
        calls = [
            call for call in ast.walk(node) if isinstance(call, ast.Call) and ast.unparse(call.func).endswith("_values")
        ]
        assert len(calls) == 1, node.name
        (call,) = calls
        assert ast.unparse(call.func) == f"option_checks.{profile}_values"
        (values,) = call.args
        assert isinstance(values, ast.Tuple)
        assert [ast.unparse(v) for v in values.elts] == [o.name for o in table.taken_by(profile)], node.name
        seen.add(node.name)
    assert seen == set(PROFILE_OF)


def test_the_options_record_has_a_field_per_option() -> None:
    annotated = [name for name in Options.__annotations__ if name != "kind"]
    assert annotated == list(FIELDS) == list(dict.fromkeys(o.field for o in table.OPTIONS))
    assert Options.__slots__ == ("kind", *FIELDS)


def test_the_table_names_real_constants_and_known_words() -> None:
    for option in table.OPTIONS:
        for name in (option.level, option.optname, option.level6, option.optname6, *option.needs, *option.needs6):
            assert name is None or hasattr(lib, name), f"{option.name}: no shim constant {name}"
        assert option.check in table.CHECKS and option.where in table.WHERE and option.sets_on in table.WHERE
        assert option.reads is None or option.reads_on in table.WHERE
        assert option.step in ("socket", "setsockopt", "unix_file", "listen", "after_listen", "namespace")
        assert (option.optname is None) == (option.step not in ("setsockopt", "after_listen")), option.name
        assert option.value in ("on", "bool", "int", "name", "cpu_program")
        assert option.errors in ("plain", "server")
        assert option.listen is not table.NOT_TAKEN or option.bind is not table.NOT_TAKEN
        assert (option.flag is None) == (option.flag_group is None)
        assert option.doc and "|" not in option.doc


def test_the_table_is_plain_data() -> None:
    # Values do no I/O and import no wing (DESIGN §2): the table imports nothing of janus_net.
    tree = ast.parse(Path(table.__file__).read_text(encoding="utf-8"))
    imported = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.module in ("__future__", "typing") for n in imported)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    cliopts.add_socket_flags(parser)
    cliopts.add_kernel_flags(parser)
    return parser


def test_the_flags_are_the_table() -> None:
    flags = {s for action in _parser()._actions for s in action.option_strings} - {"-h", "--help", "--enforce"}
    assert flags == {o.flag for o in table.OPTIONS if o.flag is not None}
    kernel = [o for o in table.OPTIONS if o.flag_group == "kernel"]
    argv = []
    for option in kernel:
        argv += (
            [option.flag]
            if option.parser == "switch"
            else [option.flag, {"count": "3", "steer": "cpu"}.get(option.parser, "x")]
        )
    assert set(cliopts.kernel_options(_parser().parse_args(argv))) == {o.name for o in kernel}
    assert cliopts.kernel_options(_parser().parse_args([])) == {}
    assert _parser().parse_args([]).backlog == 128  # the library's default


def test_the_page_is_the_table() -> None:
    text = PAGE.read_text(encoding="utf-8")
    begin, end = "<!-- options:begin -->\n", "<!-- options:end -->"
    rendered = text[text.index(begin) + len(begin) : text.index(end)]
    assert rendered == table.markdown(), "docs/options.md is stale: run scripts/options-doc"


@pytest.mark.parametrize(
    ("address", "opts"),
    [
        ("127.0.0.1:0", listen_options()),
        ("127.0.0.1:0", listen_options(reuse_port=True, backlog=5, reuse_address=False)),
        ("[::1]:0", listen_options(ip6_only=False)),
        ("[::1]:0", bind_options(ip6_only=True, broadcast=True)),
        ("127.0.0.1:0", bind_options(gro=True, pktinfo=True, timestamps=True)),
        ("unix:@jn-options-table", bind_options(reuse_address=True)),
    ],
)
def test_the_native_plan_runs_the_one_setsockopt_list(address: str, opts: Options) -> None:
    addr = parse_address(address)
    plan = native_sequence.plan_for(addr, opts)
    assert plan is not None
    native = [
        (plan.struct.opts[i].level, plan.struct.opts[i].name, plan.struct.opts[i].value) for i in range(plan.options)
    ]
    assert native == [(level, name, value) for _o, level, name, value in setsockopt_steps(addr.family, opts)]


def test_the_plain_only_options_take_the_plain_path() -> None:
    addr = parse_address("127.0.0.1:0")
    for opts in (listen_options(freebind=True), listen_options(device="lo"), listen_options(incoming_cpu=0)):
        assert native_sequence.plan_for(addr, opts) is None
