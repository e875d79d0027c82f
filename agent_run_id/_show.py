"""Showing a bad value in an error message or a log line, safely."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["show_value"]

_SHOWN = 40


def show_value(value: object) -> str:
    r"""Return ``value`` escaped to ASCII and cut short, fit for an error message or a log line.

    A cut value ends in ``...``; a cut str or bytes also says how long it was. The cut falls
    between characters of the value, never inside an escape such as ``\x1b``.
    """
    if isinstance(value, (bytes, bytearray)):
        text = repr(bytes(value[:_SHOWN]))  # bytes escape per byte: cut before escaping
        return text if len(value) <= _SHOWN else f"{text}... ({len(value)} characters)"
    if isinstance(value, str):
        text, whole = _fit(value, ascii)
        return text if whole else f"{text}... ({len(value)} characters)"
    text, whole = _fit(repr(value), _escape)
    return text if whole else f"{text}..."


def _escape(text: str) -> str:
    # What ascii() does to the repr() of an object: escape its non-ASCII characters.
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _fit(text: str, escape: Callable[[str], str]) -> tuple[str, bool]:
    """Return the escaped longest prefix of ``text`` that fits, and whether that is all of it."""
    limit = _SHOWN + 2  # room for the quotes of a str
    escaped = escape(text)
    if len(escaped) <= limit:
        return escaped, True
    # The escaped length grows with the prefix: find the longest prefix that fits.
    low, high = 0, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if len(escape(text[:middle])) <= limit:
            low = middle
        else:
            high = middle - 1
    return escape(text[:low]), False
