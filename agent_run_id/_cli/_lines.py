"""Reading one log line: the run ids in it, its JSON fields, and its time."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from agent_run_id._log_fields import LINEAGE

__all__ = [
    "MAX_LINE",
    "UUID",
    "Line",
    "Stats",
    "iso",
    "parse",
    "parse_time",
    "time_of",
]

#: Lines longer than this many bytes are skipped: reading them whole would break constant memory.
MAX_LINE = 1 << 20
#: A run id as the library writes it: canonical, lowercase.
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_TEXT = re.compile(UUID.pattern.decode("ascii"))  # the same, for a str
# ISO 8601 in its extended form, as logs write it; the seconds, and the time for --since, may be
# left out. The same rule on every Python: datetime.fromisoformat on 3.10 refuses "Z".
_TIME = re.compile(
    r"(\[?)(\d{4})-(\d\d)-(\d\d)(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?)?"
    r"\s?(Z|[+-]\d\d:?\d\d)?",
    re.IGNORECASE,
)
_TIME_KEYS = ("timestamp", "time", "ts", "@timestamp", "asctime", "created", "datetime")
_ID_KEYS = LINEAGE  # the names every log integration of the package writes
_RUN, _PARENT, _ROOT = _ID_KEYS
_SESSION_KEY = "session_id"  # and the run's session, under the same name in every one
_KEYS = (*_ID_KEYS, _SESSION_KEY)
_DECODER = json.JSONDecoder()
_JSON_BLANK = re.compile(r"[ \t\n\r]*")  # the blanks JSON allows around a value
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The times a datetime can hold, as Unix seconds: a line's time outside them is no time.
_FIRST = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH).total_seconds()
_LAST = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc) - _EPOCH).total_seconds()
# Unix times in nanoseconds (zap, zerolog, time.time_ns()), microseconds or milliseconds, told
# apart by their size: each bound is 1973 in the smaller unit, and no log is from the year 5138.
_SCALES = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))


@dataclass
class Stats:
    """What a scan saw: bytes read, lines matched, and the malformed lines it skipped, by kind.

    ``lines`` counts the lines read only where the scan numbers them (see ``candidates``).
    ``not_utf8`` counts lines read with replacement characters: shown, not skipped.
    """

    lines: int = 0
    bytes: int = 0
    matched: int = 0
    too_long: int = 0
    not_utf8: int = 0
    bad_json: int = 0

    @property
    def malformed(self) -> int:
        """How many lines were skipped as malformed."""
        return self.too_long + self.bad_json


class Line(NamedTuple):
    """A log line that mentions a run: its text, its JSON object if any, its run id fields.

    ``session_id`` is the JSON line's ``session_id`` field when it is a string (as written:
    ``"-"`` stands for none in the logging integration's default). A named tuple: one is made
    for every line that mentions the run, and a tuple is made fastest.
    """

    text: str
    record: dict[str, Any] | None
    run_id: str | None
    parent_run_id: str | None
    root_run_id: str | None
    session_id: str | None = None


def parse(raw: bytes, stats: Stats) -> Line | None:
    """Return the line read as JSON or as text, or None (counted) when it is malformed.

    A line that is not UTF-8 (a stray Latin-1 byte) is read with replacement characters, and
    counted: the run's ids are ASCII, so it is still found, and still shown.
    """
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        stats.not_utf8 += 1
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
    if not text.lstrip().startswith("{"):
        return Line(text, None, None, None, None)
    try:
        record = _loads(text)
    except (ValueError, RecursionError):
        stats.bad_json += 1
        return None
    if not isinstance(record, dict):  # pragma: no cover - a text starting with "{" is an object
        return Line(text, None, None, None, None)
    found = _fields(record, _KEYS)
    session = found.get(_SESSION_KEY)
    run, parent, root = _id(found.get(_RUN)), _id(found.get(_PARENT)), _id(found.get(_ROOT))
    return Line(text, record, run, parent, root, session if isinstance(session, str) else None)


def _loads(text: str) -> Any:
    """Return ``json.loads(text)``: without its two regular expressions when ``{`` comes first.

    The same result and the same errors (a ValueError for extra data), two microseconds sooner
    for each line found.
    """
    if text[:1] != "{":
        return json.loads(text)
    value, end = _DECODER.raw_decode(text)
    if end != len(text) and not _JSON_BLANK.fullmatch(text, end):
        raise ValueError(f"extra data after the JSON object, at character {end}")
    return value


def time_of(line: Line) -> float | None:
    """Return the line's time as Unix seconds, from a JSON field or a leading ISO 8601 stamp."""
    if line.record is not None:
        value = _fields(line.record, _TIME_KEYS)
        for key in _TIME_KEYS:
            field = value.get(key)
            if field is not None:
                found = _time_value(field)
                if found is not None:
                    return found
        return None
    return _iso(line.text[:48])


def _fields(record: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Return ``keys`` found at the top level, else in nested objects (loguru puts them there).

    The search is breadth first and bounded, so a hostile, deeply nested line costs little.
    """
    found = {key: record[key] for key in keys if key in record}  # the top level, at C speed
    if found:
        return found
    level: list[Mapping[str, Any]] = [record]
    for _ in range(4):
        nested: list[Mapping[str, Any]] = []
        for obj in level:
            for key, value in obj.items():
                if key in keys and key not in found:
                    found[key] = value
                elif isinstance(value, dict) and len(nested) < 64:
                    nested.append(value)
        if found:
            return found
        level = nested
    return found


def _id(value: object) -> str | None:
    if isinstance(value, str) and len(value) == 36:  # a run id's length: no long key cached
        return _checked_id(value)
    return None


@functools.lru_cache(maxsize=4096)
def _checked_id(value: str) -> str | None:
    """Return ``value`` when it is a run id: cached, as a log's lines name the same few runs."""
    return value if _UUID_TEXT.fullmatch(value) else None


def _time_value(value: object) -> float | None:
    if isinstance(value, dict):  # loguru: "time": {"repr": ..., "timestamp": ...}
        value = value.get("timestamp")
    if isinstance(value, str):
        return _iso(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond any float
        return None
    for bound, scale in _SCALES:
        if seconds > bound:
            seconds /= scale
            break
    return _checked(seconds)


def _checked(seconds: float) -> float | None:
    """Return ``seconds`` when it is a time a datetime can hold, else None (NaN, inf, far off)."""
    return seconds if math.isfinite(seconds) and _FIRST <= seconds <= _LAST else None


def iso(seconds: float) -> str | None:
    """Return Unix ``seconds`` (as ``time_of`` gives them) in ISO 8601, UTC; None if off range."""
    try:
        return (_EPOCH + timedelta(seconds=seconds)).isoformat()
    except OverflowError:
        return None


def parse_time(text: str) -> datetime | None:
    """Return the ISO 8601 time ``text`` as an aware datetime (UTC when it has no zone), or None.

    ``2025-06-01``, ``2025-06-01T12:00``, ``2025-06-01 12:00:00.5Z``, ``...+02:00``: the rule
    the log stamps are read with.
    """
    match = _TIME.fullmatch(text.strip())
    if match is None or match.group(1):
        return None
    seconds = _seconds(match)
    return None if seconds is None else _EPOCH + timedelta(seconds=seconds)


@functools.lru_cache(maxsize=4096)
def _whole_seconds(
    year: str, month: str, day: str, hour: str | None, minute: str | None, second: str | None
) -> float | None:
    """Unix seconds of a date and time (UTC): cached, as a log's lines share their seconds."""
    try:
        when = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    return (when.replace(tzinfo=timezone.utc) - _EPOCH).total_seconds()


def _iso(text: str) -> float | None:
    match = _TIME.match(text)
    if match is None or match.group(7) is None:  # a log stamp has its seconds
        return None
    return _seconds(match)


def _seconds(match: re.Match[str]) -> float | None:
    year, month, day, hour, minute, second, fraction, zone = match.groups()[1:]
    seconds = _whole_seconds(year, month, day, hour, minute, second)
    if seconds is None:
        return None
    if fraction:
        seconds += int(fraction) / 10 ** len(fraction)
    if zone and zone.upper() != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        seconds -= sign * offset.total_seconds()
    return _checked(seconds)
