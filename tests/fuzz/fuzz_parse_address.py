#!/usr/bin/env python3
"""Coverage-guided fuzzing of `parse_address` with atheris (run by ``make fuzz``, not by pytest).

The property, for any text at all: `parse_address` either raises
``SocketError.InvalidAddress`` / ``SocketError.InvalidPort`` -- nothing else, no
ValueError from deep inside, no crash -- or returns an address whose canonical text
parses back to an equal address with an equal hash, and whose text is a fixed
point (``str(parse_address(str(a))) == str(a)``). An accepted IP address also
encodes to a sockaddr without error.

The input bytes become text as UTF-8 with surrogate escapes (so the seeds in
``tests/fuzz/seeds`` are the address texts themselves, and lone surrogates reach the
parser as ``os.fsdecode`` makes them from undecodable file names); an input
starting with byte 0 or 1 is read as Latin-1 or as arbitrary Unicode instead.

    make fuzz                    # FUZZ_TIME=60 seconds by default
    .venv/bin/python tests/fuzz/fuzz_parse_address.py -max_total_time=60 build/fuzz-corpus tests/fuzz/seeds

A crash writes the input to ``build/fuzz-crash-*``; turn it into a case of
``tests/test_fuzz_regressions.py``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import ipaddress  # noqa: F401 - the oracle the parser leans on: instrument it too

    import janus_net._profiles.addresses
    import janus_net._values.ip
    from janus_net._profiles.addresses import parse_address
    from janus_net._values.errors import SocketError

_ACCEPTED_ERRORS = (SocketError.InvalidAddress, SocketError.InvalidPort)


def text_of(data: bytes) -> str:
    """Bytes -> text: surrogate-escaped UTF-8, or (first byte 0/1) Latin-1 / any Unicode."""
    if data[:1] == b"\0":
        return data[1:].decode("latin-1")
    if data[:1] == b"\1":
        return atheris.FuzzedDataProvider(data[1:]).ConsumeUnicodeNoSurrogates(len(data))
    return data.decode("utf-8", "surrogateescape")


def check(text: str) -> None:
    """The property; raises AssertionError (or the unexpected exception) on a violation."""
    try:
        address = parse_address(text)
    except _ACCEPTED_ERRORS:
        return
    canonical = str(address)
    again = parse_address(canonical)
    assert again == address, (text, canonical, again)
    assert hash(again) == hash(address), (text, canonical)
    assert str(again) == canonical, (text, canonical, str(again))
    if not isinstance(address, janus_net._values.fd.FdAddress):
        address.sockaddr  # noqa: B018 - encoding must not fail for an accepted address


def test_one_input(data: bytes) -> None:
    check(text_of(data))


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
