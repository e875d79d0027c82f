"""Finding a run's lines in a log fast: a bytes-level search for its ids, in large blocks.

Reading a log line by line in Python costs a few hundred nanoseconds a line whatever the line
holds: about 250 MB/s. Most lines are not the run's. So the log is read in blocks of 8 MiB,
and in each block ``bytes.find`` (C, several GB/s) looks for the bytes that a line of the run
must contain, its *needles*: the run's id, and in a tree the id of its root, which every line
stamped by this package carries as ``root_run_id``. Only the lines around a hit are cut out and
handed on; the newlines are counted (``bytes.count``, a pass over every byte) only when the
reader asks for line numbers (``logs --json``).

In a log of JSON lines (its first line is an object), every line is sought by the needles, a
text line among them too (a traceback, a banner): such a line is found when it names the run
or its root, not when it names a descendant alone. Where no needle can be named (a text log
searched for a whole tree, whose lines name a descendant by its id alone; a session, whose
runs grow as lines are found), each line of the block is tested as it always was: the
matcher's ``candidate``.

Lines longer than ``MAX_LINE`` are skipped and counted wherever they are, as reading line by
line did: found by probing the block every half ``MAX_LINE`` bytes for a newline.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Protocol, cast

from ._lines import MAX_LINE, Stats

__all__ = ["BLOCK", "Cursor", "Searched", "candidates"]

#: How many bytes are read at once.
BLOCK = 1 << 23
_HALF = MAX_LINE // 2


class Searched(Protocol):
    """What the scan asks of a matcher: its needles, or a test line by line."""

    def needles(self, json_lines: bool) -> tuple[bytes, ...] | None:
        """Return bytes every candidate line contains (one of them), or None to test each line.

        ``json_lines`` says whether the log is JSON lines (its first line is an object).
        """

    def candidate(self, raw: bytes) -> bool:
        """Return whether ``raw`` may be a line sought, where there are no needles."""


@dataclass
class Cursor:
    """Where a scan of one log stands: the bytes read (complete lines) and the lines counted.

    A scan that keeps only complete lines (``complete=True``: a log being written) leaves its
    cursor after the last newline, where the next scan of the same file starts; or, stopped
    inside an unfinished line already counted as too long, after the bytes read with
    ``inside_long`` set: the next scan skips the rest of that line, not reads it as a line.
    """

    offset: int = 0
    line: int = 0
    inside_long: bool = False


def candidates(
    stream: IO[bytes],
    searched: Searched,
    stats: Stats,
    *,
    cursor: Cursor | None = None,
    complete: bool = False,
    numbered: bool = True,
    progress: Callable[[Stats], None] | None = None,
) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line number, line)`` for each line of ``stream`` that may be the one sought.

    ``stats`` counts every byte read, the lines, and the lines too long to read. ``cursor``
    (given back updated) numbers the lines from where an earlier scan stopped. With
    ``complete``, a last line without its newline is left unread, for the next scan.
    The matcher may add needles as it learns (a tree's root): they apply from the next line.
    ``numbered=False`` spares counting the newlines (a pass over every byte) for a reader that
    needs no line numbers: a line found by a needle is then numbered 0, and ``stats.lines``
    and the cursor's ``line`` count only the lines read one by one.
    """
    at = cursor if cursor is not None else Cursor()
    size = BLOCK
    # One buffer for the whole scan, read into: a new block of 8 MiB for each read would cost
    # the kernel a page fault every 4 kB. It holds the start of a line a read left unfinished
    # (``kept`` bytes, at most MAX_LINE), then the next read.
    buffer = bytearray(MAX_LINE + size)
    kept = 0
    skipping = at.inside_long  # inside a line already counted as too long
    kind: bool | None = None  # is the log JSON lines: known from its first bytes not blank
    # A pipe (kubectl logs -f | ...) is read as its data comes, not once 8 MiB have come.
    reader = cast(io.BufferedIOBase, stream)  # a binary stream: each can read into a buffer
    readinto = reader.readinto if stream.seekable() else reader.readinto1
    with memoryview(buffer) as view:
        while True:
            got = readinto(view[kept : kept + size])
            if not got:
                break
            stats.bytes += got
            end = kept + got
            if kind is None:
                kind = _json_lines(buffer, end)
            start = 0
            if skipping:
                newline = buffer.find(b"\n", 0, end)
                if newline < 0:
                    at.offset += end
                    continue
                skipping = False
                start = newline + 1
                at.offset += start
            last = buffer.rfind(b"\n", start, end) + 1
            if last:
                yield from _region(buffer, start, last, searched, bool(kind), stats, at, numbered)
                start = last
            kept = end - start
            if kept > MAX_LINE:
                at.offset += kept
                kept, skipping = 0, True
                stats.lines += 1
                stats.too_long += 1
                at.line += 1
            elif start and kept:
                buffer[:kept] = buffer[start:end]  # a copy first: the two may overlap
            if progress is not None:
                progress(stats)
        if kept and not complete:
            yield from _region(buffer, 0, kept, searched, bool(kind), stats, at, numbered)
    at.inside_long = skipping and complete


_NOT_BLANK = re.compile(rb"[^ \t\n\r\x0b\x0c]")  # what bytes.strip keeps


def _json_lines(buffer: bytearray, end: int) -> bool | None:
    """Return whether the first byte not blank in ``buffer[:end]`` opens an object, or None."""
    found = _NOT_BLANK.search(buffer, 0, end)
    return None if found is None else buffer[found.start()] == 0x7B  # {


def _region(
    data: bytearray,
    lo: int,
    hi: int,
    searched: Searched,
    json_lines: bool,
    stats: Stats,
    at: Cursor,
    numbered: bool = True,
) -> Iterator[tuple[int, bytes]]:
    """Yield the candidate lines of ``data[lo:hi]``: whole lines (the last may lack its newline).

    Counts its lines into ``stats`` and ``at`` as it goes, the newlines between two hits at a
    time: the block is read once by the search and once by the count.
    """
    first = at.line  # the number of the line before ``lo``
    at.offset += hi - lo
    long = _long_lines(data, lo, hi)
    stats.too_long += len(long)
    needles = searched.needles(json_lines)
    number = first
    pos = lo
    ahead = None if needles is None else _Ahead(data, lo, hi, needles)
    while pos < hi:
        if ahead is None:
            end = data.find(b"\n", pos, hi) + 1 or hi
            number += 1
            if pos not in long:
                raw = bytes(data[pos:end])
                if searched.candidate(raw):
                    at.line = number
                    yield number, raw
            pos = end
            continue
        hit = ahead.first(pos)
        if hit < 0:
            if numbered:
                number += data.count(b"\n", pos, hi)
                if data[hi - 1] != 0x0A:  # the last line, without its newline
                    number += 1
            break
        begin = data.rfind(b"\n", lo, hit) + 1 or lo
        end = data.find(b"\n", hit, hi) + 1 or hi
        if numbered:
            number += data.count(b"\n", pos, begin) + 1
        pos = end
        if begin in long:
            continue
        raw = bytes(data[begin:end])
        at.line = number
        yield (number if numbered else 0), raw
        fresh = searched.needles(json_lines)
        if fresh is not None and fresh != needles:  # it learned more (a tree's root)
            needles = fresh
            ahead = _Ahead(data, lo, hi, needles)
    stats.lines += number - first
    at.line = number


class _Ahead:
    """The next place of each needle in a block, each searched again only once passed.

    With two needles, one frequent and one rare, the rare one is looked for once per block,
    not once per hit of the other.
    """

    def __init__(self, data: bytearray, lo: int, hi: int, needles: tuple[bytes, ...]) -> None:
        self._data = data
        self._hi = hi
        self._needles = needles
        self._next = [-2] * len(needles)  # -2: not searched yet; -1: none left

    def first(self, pos: int) -> int:
        """Return where the first needle is at or after ``pos``, or -1."""
        best = -1
        for i, place in enumerate(self._next):
            if place == -2 or 0 <= place < pos:
                place = self._next[i] = self._data.find(self._needles[i], pos, self._hi)
            if place >= 0 and (best < 0 or place < best):
                best = place
        return best


def _long_lines(data: bytearray, lo: int, hi: int) -> set[int]:
    """Return where each line of ``data[lo:hi]`` longer than MAX_LINE starts.

    A line that long holds a whole stretch of ``MAX_LINE // 2`` bytes between two probes:
    only there is a line measured.
    """
    if hi - lo <= MAX_LINE:
        return set()
    found: set[int] = set()
    for probe in range(lo, hi - _HALF, _HALF):
        if data.find(b"\n", probe, probe + _HALF) < 0:
            begin = data.rfind(b"\n", lo, probe) + 1 or lo
            end = data.find(b"\n", probe, hi) + 1 or hi
            if end - begin > MAX_LINE:
                found.add(begin)
    return found
