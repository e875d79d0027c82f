"""Session ids: the caller's own string for a conversation or thread, and its one rule.

Chat, thread and conversation ids are rarely UUIDs, so a session id is any printable ASCII
without spaces or commas (a comma would split it on the wire), at most 128 characters.
"""

from __future__ import annotations

import re

from ._show import show_value

__all__ = ["MAX_SESSION", "check_session_id", "parse_session_id"]

#: The longest session id taken.
MAX_SESSION = 128
# Printable ASCII (0x21 to 0x7e) but the comma: no space, no control character.
_SESSION = re.compile(rf"[\x21-\x2b\x2d-\x7e]{{1,{MAX_SESSION}}}")


def check_session_id(value: object, what: str = "session_id") -> str | None:
    """Return ``value`` if it is None or a valid session id, else raise naming ``what``."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str or None, got {type(value).__name__}")
    if not _SESSION.fullmatch(value):
        raise ValueError(
            f"{what} {show_value(value)} is not a session id: pass 1 to {MAX_SESSION} printable "
            "ASCII characters without spaces or commas, such as 'chat-42'"
        )
    return value


def parse_session_id(raw: bytes | str | None) -> str | None:
    """Return the session id in an incoming header or variable value, or None if it is not one.

    Spaces and tabs around it are dropped (HTTP's optional whitespace); anything the rule
    refuses, a repeated header (joined with commas) included, counts as absent. Never raises.
    """
    if raw is None:
        return None
    if not isinstance(raw, str):
        raw = bytes(raw).decode("latin-1")
    raw = raw.strip(" \t")
    return raw if _SESSION.fullmatch(raw) else None
