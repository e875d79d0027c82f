"""Showing a bad value in an error message or a log line, safely."""

from __future__ import annotations

__all__ = ["show_value"]

_SHOWN = 40


def show_value(value: object) -> str:
    """Return ``value`` escaped to ASCII and cut short, fit for an error message or a log line."""
    if isinstance(value, (bytes, bytearray)):
        text = repr(bytes(value[:_SHOWN]))
    else:
        text = ascii(value[:_SHOWN] if isinstance(value, str) else value)[: _SHOWN + 2]
    length = len(value) if isinstance(value, (str, bytes, bytearray)) else 0
    if length > _SHOWN:
        text += f"... ({length} characters)"
    return text
