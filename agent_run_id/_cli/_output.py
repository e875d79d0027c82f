r"""What the command writes for people: untrusted text escaped, JSON kept exact, counts in words.

A task, a user id, an exception's text and a log line are client input. Written raw to a terminal,
``\x1b]0;owned\x07`` retitles it, ``\x1b[2J`` clears it, and a newline forges a line of its own.
Every human-readable path of the command goes through :func:`printable`.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["count", "json_line", "printable", "printable_line"]

# C0 controls (newline, tab and escape among them), DEL, C1 controls (U+0085 ends a line, U+009B
# starts an escape sequence), the bidi marks, embeddings, overrides and isolates that reorder what
# follows them, the line and paragraph separators, and surrogates: a byte that is not UTF-8 as
# Python keeps it (in file names, U+DC80-U+DCFF) or a lone one from JSON, which cannot be encoded.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
# The same, less C0: json.dumps escapes those itself.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # the byte os.fsdecode or surrogateescape kept
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    r"""Return ``text`` with its control characters escaped, fit for one line of a terminal.

    A newline is shown as ``\n``, a tab as ``\t``, escape as ``\x1b``, a bidi override as
    ``\u202e``, a byte that is not UTF-8 (in a file name) as ``\xff``. Backslashes are left as they
    are: the result is for reading, not for decoding (``--json`` gives the exact text).
    """
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def printable_line(raw: bytes) -> bytes:
    r"""Return the log line ``raw`` as it is shown on a terminal: escaped, ending in one ``\n``.

    Its line ending (``\n`` or ``\r\n``) is kept as a plain newline; every other control
    character, and every byte that is not UTF-8, is shown escaped.
    """
    if raw.endswith(b"\n"):
        raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
    return printable(raw.decode("utf-8", "surrogateescape")).encode("utf-8") + b"\n"


def json_line(data: Any) -> str:
    r"""Return ``data`` as one line of JSON with its newline, every string in it exact.

    Beyond what ``json.dumps`` escapes, DEL, C1 controls, bidi controls, line separators and
    surrogates are written as ``\uXXXX``: the same strings once decoded, but harmless on a
    terminal, and always encodable as UTF-8.
    """
    text = json.dumps(data, ensure_ascii=False)
    if _UNSAFE_IN_JSON.search(text):
        text = _UNSAFE_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
    return text + "\n"


def count(number: int, noun: str) -> str:
    """Return ``number`` with ``noun`` in the right number: ``1 line``, ``0 lines``, ``2 lines``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"
