"""UUIDs as text: reading the documented forms, and minting version 4 and 7 values.

Plain functions over strings, shared by ``RunId`` and its callers; no ``uuid.UUID`` is built on
the way, which is most of what ``str(uuid.uuid4())`` costs.
"""

from __future__ import annotations

import os
import re
import time

from ._show import show_value

__all__ = [
    "CANONICAL_PATTERN",
    "CANONICAL_SHAPE",
    "CANONICAL_TABLE",
    "EXAMPLE",
    "MAX",
    "NIL",
    "canonical",
    "new_v4",
    "new_v7",
    "parse",
    "parse_wire_id",
]


def _hyphenated(digit: str) -> str:
    """Return the pattern of ``8-4-4-4-12`` digits of the class ``digit``: the one shape."""
    return "-".join(f"{digit}{{{count}}}" for count in (8, 4, 4, 4, 12))


#: A UUID in canonical form (lowercase ``8-4-4-4-12``), as a regular expression.
CANONICAL_PATTERN = _hyphenated("[0-9a-f]")

# The textual forms of a UUID that ``uuid.UUID`` documents: canonical 8-4-4-4-12, 32 hex digits,
# either one in braces or after ``urn:uuid:``, the hex digits in any case. The prefix is lowercase
# only, as ``uuid.UUID`` takes it (it refuses ``URN:UUID:``). ``uuid.UUID`` itself is laxer than its
# documentation (it takes non-ASCII digits, underscores, a ``0x`` prefix, hyphens anywhere), so the
# grammar is spelled out here instead of delegating to it. ``[0-9a-fA-F]`` is ASCII only.
_HYPHENATED = _hyphenated("[0-9a-fA-F]")
_HEX32 = r"[0-9a-fA-F]{32}"
_BODY = rf"(?:{_HYPHENATED}|{_HEX32})"
_UUID_TEXT = re.compile(rf"(?:{_BODY}|\{{{_BODY}\}}|urn:uuid:{_BODY})")
_CANONICAL = re.compile(CANONICAL_PATTERN)

# On the wire (headers, environment variables) only the two plain forms are taken: 8-4-4-4-12 or
# 32 hex digits, ASCII, any case. Braces and urn: prefixes are for humans typing ids.
_WIRE = re.compile(f"{_HYPHENATED}|{_HEX32}".encode("ascii"))
# The nil and max UUIDs (RFC 9562): placeholders, never a run's id.
_PLACEHOLDERS = frozenset(
    ("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff")
)

# The quick check of a canonical id as bytes, which parse_wire_id keeps as it is (the ASGI
# middleware's common path, written out there):
#     raw.translate(CANONICAL_TABLE) == CANONICAL_SHAPE and raw != NIL and raw != MAX
# (compared, not looked up in a set: a server that breaks the spec with a bytearray must not fail)
# bytes.translate maps lower-case hex digits to "0", "-" to itself and any other byte to "x", so
# only a lowercase 8-4-4-4-12 id translates to CANONICAL_SHAPE.
CANONICAL_SHAPE = b"00000000-0000-0000-0000-000000000000"
CANONICAL_TABLE = bytes(
    48 if byte in b"0123456789abcdef" else 45 if byte == 45 else 120 for byte in range(256)
)
NIL, MAX = sorted(value.encode("ascii") for value in _PLACEHOLDERS)

#: A UUID to show in error messages.
EXAMPLE = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"

# The two hex digits of each byte; and of byte 6 with the version (4) in its high four bits, and of
# byte 8 with the RFC 9562 variant (binary 10) in its high two bits.
_HEX = [f"{byte:02x}" for byte in range(256)]
_VERSION_4 = [_HEX[byte & 0x0F | 0x40] for byte in range(256)]
_VARIANT = [_HEX[byte & 0x3F | 0x80] for byte in range(256)]
# Maps a random hex digit onto the RFC 9562 variant digits 8, 9, a, b.
_VARIANT_DIGIT = {digit: "89ab"[i % 4] for i, digit in enumerate("0123456789abcdef")}

_urandom = os.urandom


def canonical(text: str) -> str | None:
    """Return the canonical form of a UUID written in one of its documented forms, else None.

    The result is always a plain ``str``, even for an instance of a ``str`` subclass.
    """
    if _CANONICAL.fullmatch(text):
        return text if type(text) is str else str.__str__(text)
    if not _UUID_TEXT.fullmatch(text):
        return None
    digits = text.replace("-", "").lower()
    if digits[0] == "{":
        digits = digits[1:-1]
    elif digits[0] == "u":
        digits = digits[9:]  # after "urn:uuid:"
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def parse_wire_id(raw: bytes | str | None) -> str | None:
    """Return the canonical id in an incoming header or variable value, or None if it is not one.

    Takes only a UUID as ``8-4-4-4-12`` or as 32 hex digits (ASCII, any case) and normalizes it;
    anything else (empty, too long, other characters, non-ASCII) gives None, and so do the nil
    and max UUIDs, which a misconfigured caller sends on every request and which would merge
    all its requests into one run. Spaces and tabs around the id are HTTP's optional whitespace,
    which some servers keep: they are dropped. Never raises; the cost is linear in the length.
    """
    if raw is None:
        return None
    if isinstance(raw, str):
        if not raw.isascii():
            return None
        raw = raw.encode("ascii")
    raw = raw.strip(b" \t")
    if len(raw) > 36 or not _WIRE.fullmatch(raw):
        return None
    text = raw.decode("ascii").lower()
    if len(text) != 36:  # 32 hex digits: put the hyphens in
        text = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return None if text in _PLACEHOLDERS else text


def parse(value: object, what: str) -> str:
    """Return the canonical form of ``value`` or raise an error naming ``what``."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str holding a UUID, got {type(value).__name__}")
    result = canonical(value)
    if result is None:
        raise ValueError(
            f"{what} {show_value(value)} is not a UUID: pass one such as {EXAMPLE!r} "
            "(36 characters with hyphens, or 32 hex digits), or make one with RunId.generate()"
        )
    return result


def new_v4() -> str:
    """Return a random version-4 UUID in canonical form.

    Same randomness as ``uuid.uuid4()`` (16 bytes from ``os.urandom``, so a forked child never
    repeats its parent's ids), without building a ``uuid.UUID`` on the way: each byte becomes its
    two hex digits by table, the version and variant bits set by the tables of bytes 6 and 8.
    """
    a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p = _urandom(16)  # noqa: E741
    x = _HEX
    return (
        f"{x[a]}{x[b]}{x[c]}{x[d]}-{x[e]}{x[f]}-{_VERSION_4[g]}{x[h]}-{_VARIANT[i]}{x[j]}"
        f"-{x[k]}{x[l]}{x[m]}{x[n]}{x[o]}{x[p]}"
    )


def new_v7() -> str:
    """Return a time-ordered version-7 UUID (RFC 9562) in canonical form.

    48 bits of Unix time in milliseconds, then 74 random bits from ``os.urandom`` (the layout
    without a counter): no state, so threads and forked children need no coordination. Ids of
    one millisecond sort in random order among themselves.
    """
    t = f"{(time.time_ns() // 1_000_000) & 0xFFFF_FFFF_FFFF:012x}"
    h = _urandom(10).hex()
    return f"{t[:8]}-{t[8:]}-7{h[:3]}-{_VARIANT_DIGIT[h[3]]}{h[4:7]}-{h[7:19]}"
