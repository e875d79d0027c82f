"""``agent-run-id logs RUN [FILE ...]``: every log line of one run, across files, in time order.

``agent-run-id logs --session SESSION [FILE ...]``: every log line of every run of a session.
"""

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
from ._inputs import check_files, read_log, spooled_stdin
from ._lines import UUID, Line, Stats, iso, parse, time_of
from ._match import Matcher, SessionMatcher
from ._output import count, json_line, printable, printable_line
from ._registry import ENV_DB, open_registry, read_errors, registry_path, shown_registry
from .runs import session_option

__all__ = ["add_parser", "check", "run", "size_text"]

_CANDIDATES = 10
#: The most runs of one session read from the registry (the latest); lines that carry the
#: session are found whatever their number.
MAX_SESSION_RUNS = 100_000
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
        "malformed lines among the others are skipped and counted on standard error, after "
        "how much was read (in decimal units: 1 kB is 1,000 bytes). "
        "Piped or redirected, the lines are written byte for byte; on a terminal, the control "
        "characters in them (escape sequences, carriage returns, bidi overrides) and bytes that "
        "are not UTF-8 are shown escaped, as \\x1b, so that a log line cannot drive the terminal. "
        "With --session instead of a RUN, every line of every run of a session (a conversation, "
        "a thread: several runs, one per turn), in time order.",
    )
    parser.add_argument(
        "run",
        metavar="RUN",
        nargs="?",
        help="the run id, or a unique prefix of at least 8 characters (not with --session)",
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
        help="add the lines of its descendant runs (children, their children, ...). In a log "
        "of JSON lines, a line is found when it contains the run's id or its root's id (every "
        "line stamped by agent-run-id's logging carries root_run_id): the lines of a service "
        "that logs a descendant without its root, and a text line (a traceback) naming a "
        "descendant alone, need --every-line",
    )
    parser.add_argument(
        "--every-line",
        action="store_true",
        help="test every line, as in a text log (slower: each line is split out): with "
        "--tree, a JSON line is then also found when its parent_run_id is a run already found, "
        "and a text line when it names one",
    )
    parser.add_argument(
        "--session",
        metavar="SESSION",
        help="print the lines of a whole session instead of one run's: the JSON lines whose "
        "session_id field is SESSION, and the lines (text ones too) of the session's runs and "
        "their descendants, as the registry records them (--db) and as the lines found show "
        "them; every FILE is a log",
    )
    parser.add_argument(
        "--db",
        metavar="PATH",
        help=f"with --session: the registry that knows the session's runs (default: ${ENV_DB}); "
        "without one, the lines that carry the session are found, and the later lines of "
        "the runs they name",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object per line found: file, line, time, run_id, and the line "
        "as record (a JSON line) or text, exact (run_id null for a session's line naming no run)",
    )
    parser.set_defaults(handler=run, parser=parser, check=check)


def check(args: argparse.Namespace) -> None:
    """Refuse a command line that asks for no run, or for a run and a session at once.

    Through the parser's ``error``: the usage and the message, exit status 2. With
    ``--session``, what argparse took for the run is the first file.
    """
    parser: argparse.ArgumentParser = args.parser
    if args.session is None:
        if args.run is None:
            parser.error("the following arguments are required: RUN (or --session SESSION)")
        if args.db is not None:
            parser.error("--db goes with --session: the lines of a run need no registry")
        return
    if args.run is not None:
        if not os.path.exists(args.run) and _is_run(args.run):
            parser.error(f"give a RUN or --session, not both: {args.run} is no file")
        args.files = [args.run, *args.files]
        args.run = None


def _is_run(text: str) -> bool:
    try:
        parse_run(text)
    except ValueError:
        return False
    return True


def run(args: argparse.Namespace, out: IO[bytes], err: IO[str]) -> int:
    """Print the run's (or the session's) lines to ``out`` and return 0; none is a UsageError."""
    if args.session is not None:
        return _session(args, out, err)
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
        matcher = Matcher(key, tree=args.tree, every_line=args.every_line)
        stats = _print(args, names, matcher, out, err, stdin)
    err.write(_summary(f"run {key}", stats, len(names)))
    if not stats.matched:
        raise UsageError(f"no line of run {key} in {_shown(names)}")
    return 0


def _session(args: argparse.Namespace, out: IO[bytes], err: IO[str]) -> int:
    """Print the lines of every run of the session ``args.session``."""
    session = session_option(args.session)
    names: list[str] = args.files or ["-"]
    check_files(names)
    path = registry_path(args.db)
    runs = set() if path is None else _session_runs(path, session, err)
    stats = _print(args, names, SessionMatcher(session, runs), out, err, None)
    if path is None:
        known = f"; no registry (--db or ${ENV_DB}): found by the session_id of the lines"
    else:
        known = f"; {count(len(runs), 'run')} of it in {shown_registry(path)}"
    err.write(_summary(f"session {session}", stats, len(names), known))
    if not stats.matched:
        raise UsageError(f"no line of session {session} in {_shown(names)}")
    return 0


def _session_runs(path: str, session: str, err: IO[str]) -> set[str]:
    """Return the ids of the session's runs in the registry at ``path``, and their descendants."""
    registry = open_registry(path)
    try:
        records = registry.find(session_id=session, limit=MAX_SESSION_RUNS)
        runs = {record.run_id for record in records}
        for record in records:
            if record.parent_id not in runs:  # a top run of the session: a turn
                runs.update(descendant.run_id for descendant in registry.tree(record.run_id))
    except read_errors() as exc:
        raise UsageError(f"cannot read {shown_registry(path)}: {exc}") from None
    finally:
        registry.close()
    if len(records) == MAX_SESSION_RUNS:
        err.write(
            f"agent-run-id: session {session} has more than {MAX_SESSION_RUNS:,} runs in "
            f"{shown_registry(path)}: "
            "the lines of the latest of them are found, and every line that carries the session\n"
        )
    return runs


def _print(
    args: argparse.Namespace,
    names: list[str],
    matcher: Matcher | SessionMatcher,
    out: IO[bytes],
    err: IO[str],
    stdin: IO[bytes] | None,
) -> Stats:
    """Write the lines ``matcher`` finds in the logs ``names``, merged in time order."""
    stats = Stats()
    progress = _Progress(err) if err.isatty() else None
    numbered: bool = args.json  # only --json shows line numbers: counting them costs a pass
    streams = [
        _scan(i, name, matcher, stats, progress, stdin, numbered) for i, name in enumerate(names)
    ]
    found: Iterator[Found] = heapq.merge(*streams, key=itemgetter(0))
    terminal = out.isatty()
    labels = _labels(names, terminal)
    for _, _, number, name, line, raw, run_id, when in found:
        stats.matched += 1
        if args.json:
            out.write(_json(name, number, when, run_id or None, line))
        elif terminal:
            out.write(labels[name] + printable_line(raw))
        else:
            out.write(labels[name] + raw if raw.endswith(b"\n") else labels[name] + raw + b"\n")
    out.flush()
    if progress is not None:
        progress.clear()
    return stats


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
        for _, raw in read_log(name, _Prefix(needle), stats, stdin, numbered=False):
            ids.update(f.decode() for f in UUID.findall(raw) if f.startswith(needle))
            if len(ids) > _CANDIDATES:
                return ids
    return ids


class _Prefix:
    """The lines that hold a run id prefix, for the scan's bytes-level search."""

    def __init__(self, needle: bytes) -> None:
        self._needles = (needle,)

    def needles(self, json_lines: bool) -> tuple[bytes, ...]:
        return self._needles

    def candidate(self, raw: bytes) -> bool:  # pragma: no cover - needles are always given
        return self._needles[0] in raw


def _scan(
    index: int,
    name: str,
    matcher: Matcher | SessionMatcher,
    stats: Stats,
    progress: _Progress | None,
    stdin: IO[bytes] | None,
    numbered: bool,
) -> Iterator[Found]:
    last = float("-inf")  # a line without a time keeps its place after the line before it
    shown = "(stdin)" if name == "-" else name
    show = None if progress is None else progress.show
    for number, raw in read_log(name, matcher, stats, stdin, numbered=numbered, progress=show):
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


def _json(name: str, number: int, when: float | None, run_id: str | None, line: Line) -> bytes:
    data = {
        "file": name,
        "line": number,
        "time": None if when is None else iso(when),
        "run_id": run_id,
        "record": line.record,
        "text": line.text if line.record is None else None,
    }
    return json_line(data).encode("utf-8")


def _summary(what: str, stats: Stats, files: int, known: str = "") -> str:
    text = f"agent-run-id: {count(stats.matched, 'line')} of {what} in "
    text += f"{size_text(stats.bytes)} read"
    if files > 1:
        text += f" from {files} files"
    text += known
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


def size_text(count: int) -> str:
    """Return a number of bytes as the summary says it: ``812 B``, ``4.2 kB``, ``1.0 GB``.

    Decimal units, as disks and ``ls --si`` count: 1 kB is 1,000 bytes, 1 GB 10**9.
    """
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:,.1f} TB"


class _Progress:
    """A progress line on a terminal's standard error, at most a few times a second."""

    def __init__(self, err: IO[str]) -> None:
        self._err = err
        self._next = time.monotonic() + 0.5

    def show(self, stats: Stats) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + 0.25
            self._err.write(f"\r{size_text(stats.bytes)} scanned")
            self._err.flush()

    def clear(self) -> None:
        self._err.write("\r\033[K")
        self._err.flush()
