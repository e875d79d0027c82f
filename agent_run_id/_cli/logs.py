"""``agent-run-id logs RUN [FILE ...]``: every log line of one run, across files, in time order."""

from __future__ import annotations

import argparse
import contextlib
import heapq
import os
import time
from collections.abc import Iterator
from operator import itemgetter
from typing import IO, Any

from agent_run_id.registry._base import parse_run

from ._errors import UsageError
from ._inputs import check_files, lines_of, spooled_stdin
from ._lines import UUID, Line, Stats, iso, parse, time_of
from ._match import Matcher
from ._output import count, json_line, printable, printable_line

__all__ = ["add_parser", "run"]

_CANDIDATES = 10
# (merge time, file index, line number, file name, line, raw line, run id, the line's own time):
# sorts by time, then keeps file order; a line without a time merges at the time before it.
Found = tuple[float, int, int, str, Line, bytes, str, "float | None"]


def add_parser(commands: Any) -> None:
    """Add the ``logs`` command to the command's subparsers."""
    parser = commands.add_parser(
        "logs",
        help="print every log line of a run",
        description="Print every log line of a run from JSON-lines or text logs (gzip too), "
        "merged in time order across files. Lines that mention no run are not examined; "
        "malformed lines among the others are skipped and counted on standard error. "
        "Piped or redirected, the lines are written byte for byte; on a terminal, the control "
        "characters in them (escape sequences, carriage returns, bidi overrides) and bytes that "
        "are not UTF-8 are shown escaped, as \\x1b, so that a log line cannot drive the terminal.",
    )
    parser.add_argument(
        "run", metavar="RUN", help="the run id, or a unique prefix of at least 8 characters"
    )
    parser.add_argument(
        "files",
        metavar="FILE",
        nargs="*",
        default=[],  # else argparse calls the files required when none are given
        help="log files, gzip or not (standard input when none, or -)",
    )
    parser.add_argument(
        "--tree",
        action="store_true",
        help="add the lines of its descendant runs (children, their children, ...)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line found: file, line, time, run_id, and the line "
        "as record (a JSON line) or text, exact",
    )
    parser.set_defaults(handler=run, parser=parser)


def run(args: argparse.Namespace, out: IO[bytes], err: IO[str]) -> int:
    """Print the run's lines to ``out`` and return 0; no line of the run is a UsageError."""
    try:
        key, is_prefix = parse_run(args.run)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    names: list[str] = args.files or ["-"]
    check_files(names)
    with contextlib.ExitStack() as stack:
        # A prefix is resolved in a first pass, before any output: standard input is kept in a
        # temporary file to be read twice. A full id streams it, e.g. from kubectl logs -f.
        stdin = stack.enter_context(spooled_stdin()) if is_prefix and "-" in names else None
        if is_prefix:
            key = _resolve(names, key, stdin)
        matcher = Matcher(key, tree=args.tree)
        stats = Stats()
        progress = _Progress(err) if err.isatty() else None
        streams = [_scan(i, name, matcher, stats, progress, stdin) for i, name in enumerate(names)]
        found: Iterator[Found] = heapq.merge(*streams, key=itemgetter(0))
        terminal = out.isatty()
        labels = _labels(names, terminal)
        for _, _, number, name, line, raw, run_id, when in found:
            stats.matched += 1
            if args.json:
                out.write(_json(name, number, when, run_id, line))
            elif terminal:
                out.write(labels[name] + printable_line(raw))
            else:
                out.write(labels[name] + raw if raw.endswith(b"\n") else labels[name] + raw + b"\n")
        out.flush()
        if progress is not None:
            progress.clear()
    err.write(_summary(key, stats, len(names)))
    if not stats.matched:
        raise UsageError(f"no line of run {key} in {_shown(names)}")
    return 0


def _shown(names: list[str]) -> str:
    """Name the logs searched: the first few, and how many more."""
    shown = ["standard input" if name == "-" else name for name in names]
    if len(shown) > 3:
        return f"{', '.join(shown[:3])} and {count(len(shown) - 3, 'more file')}"
    return ", ".join(shown)


def _labels(names: list[str], terminal: bool) -> dict[str, bytes]:
    """Return the prefix of each file's lines: its name and ``:`` when there are several files.

    The name is written as the bytes it has on disk, or escaped on a terminal (as ``ls`` does).
    """
    if len(names) < 2:
        return {"(stdin)" if name == "-" else name: b"" for name in names}
    labels = {}
    for name in names:
        shown = "(stdin)" if name == "-" else name
        labels[shown] = (printable(shown).encode() if terminal else os.fsencode(shown)) + b":"
    return labels


def _resolve(names: list[str], prefix: str, stdin: IO[bytes] | None) -> str:
    """Return the one run id starting with ``prefix`` in the logs (a first, cheap pass)."""
    ids = _ids_starting(names, prefix, stdin)
    if not ids:
        raise UsageError(f"no run id in {_shown(names)} starts with {prefix!r}")
    if len(ids) > 1:
        shown = ", ".join(sorted(ids)[:_CANDIDATES])
        raise UsageError(
            f"run id prefix {prefix!r} matches several runs: {shown}; give more characters"
        )
    return ids.pop()


def _ids_starting(names: list[str], prefix: str, stdin: IO[bytes] | None) -> set[str]:
    """Return the run ids starting with ``prefix``, stopping once there are too many to list."""
    needle = prefix.encode("ascii")
    ids: set[str] = set()
    stats = Stats()
    for name in names:
        for raw in lines_of(name, stats, stdin):
            if needle in raw:
                ids.update(f.decode() for f in UUID.findall(raw) if f.startswith(needle))
                if len(ids) > _CANDIDATES:
                    return ids
    return ids


def _scan(
    index: int,
    name: str,
    matcher: Matcher,
    stats: Stats,
    progress: _Progress | None,
    stdin: IO[bytes] | None,
) -> Iterator[Found]:
    last = float("-inf")  # a line without a time keeps its place after the line before it
    shown = "(stdin)" if name == "-" else name
    for number, raw in enumerate(lines_of(name, stats, stdin), 1):
        if progress is not None and not number & 0x3FFF:
            progress.show(stats)
        if not matcher.candidate(raw):
            continue
        line = parse(raw, stats)
        if line is None:
            continue
        run_id = matcher.match(line, raw)
        if run_id is None:
            continue
        when = time_of(line)
        if when is not None:
            last = when
        yield last, index, number, shown, line, raw, run_id, when


def _json(name: str, number: int, when: float | None, run_id: str, line: Line) -> bytes:
    data = {
        "file": name,
        "line": number,
        "time": None if when is None else iso(when),
        "run_id": run_id,
        "record": line.record,
        "text": line.text if line.record is None else None,
    }
    return json_line(data).encode("utf-8")


def _summary(run_id: str, stats: Stats, files: int) -> str:
    text = f"agent-run-id: {count(stats.matched, 'line')} of run {run_id} in "
    text += f"{count(stats.lines, 'line')} read"
    if files > 1:
        text += f" from {files} files"
    if stats.malformed:
        kinds = [
            f"{count} {what}"
            for count, what in (
                (stats.bad_json, "invalid JSON"),
                (stats.too_long, "longer than 1 MiB"),
            )
            if count
        ]
        text += f"; {count(stats.malformed, 'malformed line')} skipped ({', '.join(kinds)})"
    if stats.not_utf8:
        text += f"; {count(stats.not_utf8, 'line')} not UTF-8, read with replacement characters"
    return text + "\n"


class _Progress:
    """A progress line on a terminal's standard error, at most a few times a second."""

    def __init__(self, err: IO[str]) -> None:
        self._err = err
        self._next = time.monotonic() + 0.5

    def show(self, stats: Stats) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.25
            megabytes = stats.bytes / 1e6
            self._err.write(f"\r{stats.lines:,} lines ({megabytes:,.0f} MB) scanned")
            self._err.flush()

    def clear(self) -> None:
        self._err.write("\r\033[K")
        self._err.flush()
