"""`for_people`: text that came from outside, made safe to print on one line.

An address can carry any character a file name can: a unix path may hold a newline,
a carriage return or an ANSI escape. Written as is into a log line, a terminal or the
CLI's output it could forge a line (``...\\nbind_socket allowed ...``) or repaint the
screen. Every text janus_net writes *for people* (log lines, error messages, the
CLI's output) passes addresses through `for_people`; machine output (JSON lines,
``--json``, the `AuditRecord` fields themselves) keeps the exact text.

The rule: a control character (Unicode categories Cc, Cf, Zl, Zp) and a lone
surrogate (an undecodable byte of a path, Cs; shown as that byte, ``\\xff``) become ``\\n``, ``\\r``, ``\\t``,
``\\xHH``, ``\\uHHHH`` or ``\\UHHHHHHHH``, as Python writes them in a string literal.
Everything else, non-ASCII letters and backslashes included, is left as it is. The
result never holds a character that ends a line or drives a terminal, and escaping
is idempotent (``for_people(for_people(t)) == for_people(t)``), so a message built
from pieces that were escaped already (a ``repr``) is not escaped twice. The price:
a path that really contains the two characters ``\\n`` prints like one holding a
newline; the exact text is always in ``.address`` and in the JSON output.
"""

from __future__ import annotations

import unicodedata

_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    short = _SHORT.get(char)
    if short is not None:
        return short
    if unicodedata.category(char) not in _ESCAPED_CATEGORIES:
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # surrogateescape: the undecodable byte of a path, as that byte
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def for_people(text: str) -> str:
    """``text`` with backslashes and control characters escaped, so it prints as one harmless line.

    >>> for_people("unix:/tmp/a\\nb.sock")
    'unix:/tmp/a\\\\nb.sock'
    >>> for_people("127.0.0.1:80")
    '127.0.0.1:80'

    Args:
        text: any text (an address's canonical form, a message that names one).

    Returns:
        The same text when it has nothing to escape (the usual case, checked first),
        else the escaped text: one line, with no character a terminal acts on.
    """
    if text.isprintable():
        return text
    return "".join(map(_escape, text))


__all__ = ["for_people"]
