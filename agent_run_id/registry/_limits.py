"""The limits on what a run's row holds: text cut short and made storable, metadata bounded.

A row the database refuses would fail its whole batch, and a row without bound would let one
run fill the writer's memory budget, so every text a caller gives is cut and made storable here,
before it is queued.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agent_run_id._show import show_value

__all__ = ["MAX_METADATA", "MAX_TEXT", "cut_text", "dump_metadata", "error_text"]

#: The most characters kept of a user, task or error.
MAX_TEXT = 4096
#: The most metadata kept per run, in bytes of its JSON (ASCII: one byte a character).
MAX_METADATA = 16_384
_MAX_NAME = 256


def dump_metadata(metadata: Mapping[str, Any] | None) -> str:
    """Return the metadata as JSON text of at most MAX_METADATA characters; never raise.

    Metadata over the limit is replaced whole by a marker that gives its size (and keeps a
    short ``name``): a cut JSON text would not parse, and the marker says what happened.
    """
    if not metadata:
        return "{}"
    try:  # ensure_ascii (the default): a lone surrogate is written as an escape, storable
        text = json.dumps(dict(metadata), default=repr)
    except Exception:  # a cycle, keys that are not strings, nesting too deep, a failing repr
        try:
            shown = show_value(repr(metadata))
        except Exception:
            shown = f"<unprintable {type(metadata).__name__}>"
        text = json.dumps({"unrecorded": shown})
    if len(text) <= MAX_METADATA:
        return text
    marker: dict[str, Any] = {"metadata_cut": {"json_bytes": len(text), "limit": MAX_METADATA}}
    try:
        name = metadata.get("name")
    except Exception:
        name = None
    if isinstance(name, str) and len(name) <= _MAX_NAME:
        marker["name"] = name
    return json.dumps(marker)


def error_text(error: BaseException | None) -> str | None:
    """Return ``"Type: message"`` of an error (None for None), cut short; never raise."""
    if error is None:
        return None
    try:
        message = str(error)
    except Exception:
        message = "<unprintable message>"
    text = f"{type(error).__qualname__}: {message}" if message else type(error).__qualname__
    return cut_text(text)


def cut_text(text: str | None) -> str | None:
    r"""Return ``text`` cut to MAX_TEXT characters, and storable: a lone surrogate escaped.

    SQLite stores UTF-8, which has no lone surrogates ("bad \udcff", from a file name read with
    ``surrogateescape``): such a row would fail its whole batch. PostgreSQL's text has no NUL
    character either: it is stored escaped, ``\x00``, on both backends. Cheap when the text is
    ASCII.
    """
    if text is None:
        return None
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT]
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")[:MAX_TEXT]
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")[:MAX_TEXT]
    return text
