"""A run tree's log lines for the viewer: found with the command's scan, merged in time order.

The lines of the runs the registry knows in the tree (and of runs whose lines name a parent
in it), from every log given, each with its service, level, run and message. A page being
watched asks again from where the last scan stopped: each file's ``Cursor`` (bytes and lines
read), so a poll reads only what was written since. A file that got shorter (rotated,
truncated) is read again from its start; a gzip file, which is not written to, is read once.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import heapq
import os
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

from agent_run_id._cli._inputs import open_log
from agent_run_id._cli._lines import Line, Stats, parse, time_of
from agent_run_id._cli._match import Matcher
from agent_run_id._cli._scan import Cursor, candidates

__all__ = [
    "MAX_LINES",
    "LogLine",
    "RecentScans",
    "Scan",
    "cursor_text",
    "iter_levels",
    "parse_cursors",
    "read_tree_lines",
]

#: The most lines one page holds; beyond, the page says how many more there are.
MAX_LINES = 50_000
_LEVEL_KEYS = ("level", "levelname", "severity", "log.level", "lvl")
_SERVICE_KEYS = ("service", "service.name", "app", "logger", "name")
_MESSAGE_KEYS = ("message", "msg", "event", "text")
_LEVEL_WORD = re.compile(r"\b(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b", re.IGNORECASE)
_LEVELS = {"warn": "warning", "fatal": "critical", "err": "error"}
_NOT_LEVEL = re.compile(r"[^a-z]")
_CUT = 2_000  # characters of a message shown; the whole line is in the log


class LogLine(NamedTuple):
    """One log line of the tree, as the run page shows it (a tuple: one is made per line)."""

    when: float
    time: str  # the clock, 12:14:55.387 (UTC), or "" for a line without a time
    service: str
    level: str  # letters only: it is a CSS class and a filter value
    run_id: str
    message: str
    file: int
    number: int


@dataclass
class Scan:
    """What a scan found: the lines (in time order), the cursors, and how many were left out."""

    lines: list[LogLine]
    cursors: list[Cursor]
    dropped: int = 0
    reset: bool = False  # a file was read again from its start: the page starts afresh
    malformed: int = 0


def read_tree_lines(
    logs: Sequence[str],
    run_id: str,
    members: Iterable[str],
    root: str,
    cursors: Sequence[Cursor] | None = None,
    *,
    limit: int = MAX_LINES,
    complete: bool = True,
) -> Scan:
    """Return the lines of ``run_id``'s tree in ``logs``, read from ``cursors`` on.

    ``members`` are the tree's runs as the registry knows them, ``root`` the id of the root of
    the whole tree (every line stamped by the package carries it). With ``complete``, only
    whole lines are read: a line still being written is left for the next scan.
    """
    given = list(cursors) if cursors is not None and len(cursors) == len(logs) else None
    matcher = Matcher(run_id, tree=True, members=members, root=root)
    stats = Stats()
    streams = []
    out: list[Cursor] = []
    reset = False
    for index, name in enumerate(logs):
        cursor = replace(given[index]) if given else Cursor()
        size = _size(name)
        if size is not None and cursor.offset > size:  # shorter than read: rotated, truncated
            cursor, reset = Cursor(), True
        out.append(cursor)
        streams.append(_lines(index, name, matcher, stats, cursor, complete))
    merged = list(heapq.merge(*streams, key=attrgetter("when")))
    dropped = max(len(merged) - limit, 0)
    return Scan(merged[:limit], out, dropped, reset, stats.malformed)


class RecentScans:
    """The scans of the last few run pages, each read on from its cursors when asked again.

    Opening a run's page again (a reload, a click back from another run) reads only what its
    logs got since, not every byte again. A file read from its start again (rotated) makes
    the whole scan start afresh.
    """

    def __init__(self, logs: Sequence[str], keep: int = 4) -> None:
        self._logs = list(logs)
        self._keep = keep
        self._scans: OrderedDict[str, Scan] = OrderedDict()
        self._lock = threading.Lock()

    def lines(self, run_id: str, members: Sequence[str], root: str) -> Scan:
        """Return the scan of ``run_id``'s tree, continued from the last one when there is one."""
        with self._lock:
            before = self._scans.pop(run_id, None)
        cursors = None if before is None else before.cursors
        scan = read_tree_lines(self._logs, run_id, members, root, cursors)
        if before is not None and not scan.reset:
            merged = list(heapq.merge(before.lines, scan.lines, key=attrgetter("when")))
            extra = max(len(merged) - MAX_LINES, 0)
            dropped = before.dropped + scan.dropped + extra
            scan = Scan(merged[:MAX_LINES], scan.cursors, dropped, False, scan.malformed)
        elif before is not None:  # a file read from its start: all of it again
            scan = read_tree_lines(self._logs, run_id, members, root)
        with self._lock:
            self._scans[run_id] = scan
            while len(self._scans) > self._keep:
                self._scans.popitem(last=False)
        return scan


def _size(name: str) -> int | None:
    try:
        return os.stat(name).st_size
    except OSError:
        return None


def _lines(
    index: int, name: str, matcher: Matcher, stats: Stats, cursor: Cursor, complete: bool
) -> list[LogLine]:
    """Return the tree's lines of one log from ``cursor`` on, ``cursor`` moved past them."""
    if cursor.offset < 0:  # a gzip file, read whole before
        return []
    service = Path(name).name.split(".")[0]
    found: list[LogLine] = []
    last = float("-inf")
    try:
        with open_log(name) as stream:
            if _is_gzip(stream):  # read whole (from its start) once
                done = -1
            else:
                stream.seek(cursor.offset)
                done = 0
            # No line numbers: the page shows none, and counting newlines costs a pass.
            found_lines = candidates(
                stream, matcher, stats, cursor=cursor, complete=complete, numbered=False
            )
            for number, raw in found_lines:
                line = parse(raw, stats)
                if line is None:
                    continue
                run = matcher.match(line, raw)
                if run is None:
                    continue
                when = time_of(line)
                if when is not None:
                    last = when
                found.append(_shown(line, run, service, index, number, when, last))
            if done < 0:
                cursor.offset = -1
    except (EOFError, OSError, zlib.error):  # gone or unreadable since: what was read is shown
        pass
    return found


def _is_gzip(stream: object) -> bool:
    return isinstance(stream, gzip.GzipFile)


def _shown(
    line: Line, run: str, service: str, index: int, number: int, when: float | None, last: float
) -> LogLine:
    record = line.record
    if record is None:
        found = _LEVEL_WORD.search(line.text[:200])
        level = found.group(1).lower() if found else ""
        message = line.text
    else:
        level = _text(_first(record, _LEVEL_KEYS)).lower()
        service = _text(_first(record, _SERVICE_KEYS)) or service
        message = _text(_first(record, _MESSAGE_KEYS)) or line.text
    level = _LEVELS.get(level, level)
    if not (level.isascii() and level.isalpha()):
        level = _NOT_LEVEL.sub("", level)  # a CSS class and a filter value: letters only
    if len(message) > _CUT:
        message = message[:_CUT] + "…"
    clock = "" if when is None else _clock(when)
    return LogLine(last, clock, service[:40], level[:12], run, message, index, number)


def _clock(when: float) -> str:
    """Return Unix seconds as the page shows a line's time: ``12:14:55.387`` (UTC)."""
    second, milli = divmod(round(when * 1000), 1000)
    return f"{_hms(second)}.{milli:03d}"


@functools.lru_cache(maxsize=4096)
def _hms(second: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(second))


def _first(record: Mapping[str, Any], keys: tuple[str, ...]) -> object:
    """Return the first of ``keys`` in ``record``, else in its ``record`` (loguru serialized)."""
    nested = record.get("record")
    for obj in (record, nested) if isinstance(nested, dict) else (record,):
        for key in keys:
            value = obj.get(key)
            if isinstance(value, dict):  # loguru: "level": {"name": "INFO", ...}
                value = value.get("name")
            if value is not None:
                return value
    return None


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def cursor_text(cursors: Iterable[Cursor]) -> str:
    """Return cursors as the page keeps them: ``offset.line`` for each log, comma-separated.

    A cursor inside an unfinished line too long to read (``inside_long``) ends in ``.l``.
    """
    return ",".join(f"{c.offset}.{c.line}{'.l' if c.inside_long else ''}" for c in cursors)


def parse_cursors(text: str, count: int) -> list[Cursor] | None:
    """Return the cursors of ``cursor_text``, or None when they are not ``count`` valid ones."""
    cursors = []
    for part in text.split(",")[: count + 1]:
        offset, _, rest = part.partition(".")
        line, _, flag = rest.partition(".")
        if flag not in ("", "l"):
            continue
        with contextlib.suppress(ValueError):
            cursors.append(Cursor(int(offset[:20]), int(line[:20]), flag == "l"))
    return cursors if len(cursors) == count else None


def iter_levels(lines: Iterable[LogLine]) -> Iterator[str]:
    """Yield each level found in ``lines`` once, in the order of severity, then the others."""
    seen = {line.level for line in lines if line.level}
    order = ["debug", "info", "warning", "error", "critical"]
    yield from (level for level in order if level in seen)
    yield from sorted(seen - set(order))
