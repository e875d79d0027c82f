"""The registry every buffering backend is: writes queued to a writer thread, reads that wait.

SQLite and PostgreSQL record runs by the same rules, written once, here: the arguments checked
before anything is queued, the entries of each run open in this process counted (only the last
to end writes the end), the row a finish writes whole when its start never reached the
database, reads that first wait for the writes queued before them, and the records read back
with their external ids. A backend gives its writer (``_writer``), its statements and how it
runs a read (``_fetch``, ``_externals``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from agent_run_id._run_id import RunId
from agent_run_id._show import show_value

from ._base import AmbiguousRunError, RunRegistry, check_find, parse_run, preorder
from ._queries import CANDIDATES, alive, find_query
from ._record import RunRecord, Status, to_micros
from ._rows import (
    ANNOTATE,
    EXTERNAL,
    FINISH,
    START,
    Row,
    annotated_row,
    check_args,
    external_rows,
    finish_row,
    merge_rows,
    start_row,
    to_record,
)
from ._writer import Writer

__all__ = ["MIN_PENDING_BYTES", "BufferedRunRegistry", "Statements", "check_budget", "cutoff"]

_log = logging.getLogger("agent_run_id.registry")

#: The least memory the writes waiting may be given.
MIN_PENDING_BYTES = 1024 * 1024


def check_budget(max_pending: object, max_pending_bytes: object) -> None:
    """Raise ValueError, naming the argument and the fix, for a bad pending-writes budget."""
    if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 0:
        raise ValueError(f"max_pending must be an int >= 0, got {max_pending!r}")
    if (
        isinstance(max_pending_bytes, bool)
        or not isinstance(max_pending_bytes, int)
        or max_pending_bytes < MIN_PENDING_BYTES
    ):
        raise ValueError(
            f"max_pending_bytes must be an int >= {MIN_PENDING_BYTES:,} (1 MiB), got "
            f"{max_pending_bytes!r}: give the memory the writes waiting may hold, in bytes, "
            "e.g. 64 * 1024 * 1024"
        )


def cutoff(older_than: object) -> datetime:
    """Return the start time before which ``prune(older_than)`` deletes runs.

    ``older_than`` is an age (a positive ``timedelta``) or a time (an aware ``datetime``).
    """
    if isinstance(older_than, timedelta):
        if older_than <= timedelta(0):
            raise ValueError(
                f"older_than must be a positive age, got {older_than!r}: e.g. timedelta(days=30)"
            )
        return datetime.now(timezone.utc) - older_than
    if isinstance(older_than, datetime):
        if older_than.tzinfo is None:
            raise ValueError(
                f"older_than must be an aware datetime, got {older_than!r}: add "
                "tzinfo=datetime.timezone.utc"
            )
        return older_than
    raise TypeError(
        f"older_than must be a timedelta or a datetime, got {type(older_than).__name__}"
    )


class Statements:
    """A backend's reads, in its dialect: each a statement taking the parameters shown."""

    def __init__(self, by_id: str, by_prefix: str, children: str, tree: str) -> None:
        self.by_id = by_id  # (id,)
        self.by_prefix = by_prefix  # (prefix, bound)
        self.children = children  # (id,)
        self.tree = tree  # (id,)


class BufferedRunRegistry(RunRegistry):
    """A RunRegistry whose writes a writer thread batches, whose reads wait for them.

    A backend sets ``_writer`` and ``_statements`` in its ``__init__`` (then calls
    ``_buffering()``), and implements ``_fetch``, ``_externals``, ``_by_external``,
    ``_delete_before`` and ``where``.
    """

    _writer: Writer
    _statements: Statements
    #: How long the last writes at interpreter exit, or at garbage collection, may take,
    #: retries of a failing database included (None: no limit); a backend sets its own.
    exit_timeout: float | None = 5.0

    def _buffering(self) -> None:
        """Set up what this class keeps: the open runs, the finalizer, the flush at exit."""
        # What each open run started with, so its end can rewrite the whole row when the start
        # never reached the database, and how many entries of it are open in this process.
        self._open: dict[str, tuple[Row, int]] = {}
        self._open_lock = threading.Lock()
        # The writer must not hold the registry: dropping the registry stops its thread (in
        # the time a backend gives, for a database that may never answer).
        weakref.finalize(self, self._writer.stop, self.exit_timeout)
        _registries.add(self)

    @property
    @abstractmethod
    def where(self) -> str:
        """The database, as errors and log lines name it (never with a password)."""

    @property
    def failures(self) -> int:
        """How many attempts to write failed (the writes kept for a retry), since made."""
        return self._writer.failures

    # -- writes ------------------------------------------------------------------------------

    def start(
        self,
        run_id: RunId,
        *,
        user_id: str | None = None,
        task: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        external_ids: Mapping[str, str] | None = None,
    ) -> None:
        r"""Record that ``run_id`` started now, in this process (queued).

        A run already recorded (entered again, or continued by a service that got its id) keeps
        its earliest start and the first user, task and metadata given; a later start only fills
        those still missing. Entries of one run in this process are counted: only the last to
        end records the end (see ``finish``).

        ``user_id`` and ``task`` keep their first 4,096 characters, and a lone surrogate in
        them (which UTF-8 cannot store) is stored escaped, ``\udcff``.

        Raises TypeError for arguments of the wrong type, at once: a row that the database
        refuses would otherwise be retried forever.
        """
        row, externals = _checked_rows(run_id, user_id, task, metadata, session_id, external_ids)
        with self._open_lock:
            entry = self._open.get(run_id.value)
            if entry is not None:
                row = merge_rows(entry[0], row)
            self._open[run_id.value] = (row, 1 if entry is None else entry[1] + 1)
        self._put(START, row, externals)

    def annotate(
        self,
        run_id: RunId,
        *,
        user_id: str | None = None,
        task: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        external_ids: Mapping[str, str] | None = None,
    ) -> None:
        """Record what ``agent_run_id.annotate()`` learned of a running run (queued).

        The run's entries are not counted again, and its status and times are left as they are.
        """
        row, externals = _checked_rows(run_id, user_id, task, metadata, session_id, external_ids)
        with self._open_lock:
            entry = self._open.get(run_id.value)
            if entry is not None:
                self._open[run_id.value] = (annotated_row(entry[0], row), entry[1])
        self._put(ANNOTATE, row, externals)

    def finish(self, run_id: RunId, *, error: BaseException | None = None) -> None:
        """Record that ``run_id`` ended now, with ``error`` if one escaped (queued).

        While other entries of the same run are still open in this process, nothing is written:
        the run ends when its last entry (the outermost, when they nest) ends, with that entry's
        error. An error an inner entry raised and an outer one handled is not the run's.
        """
        check_args(run_id, None, None)
        ended = time.time_ns() // 1000
        with self._open_lock:
            entry = self._open.pop(run_id.value, None)
            if entry is not None and entry[1] > 1:
                self._open[run_id.value] = (entry[0], entry[1] - 1)
                return
        start = None if entry is None else entry[0]
        self._writer.put((FINISH, finish_row(run_id, start, ended, error)))

    def flush(self) -> None:
        """Wait until every write queued before this call is written (or has failed)."""
        self._writer.flush()

    def prune(self, older_than: timedelta | datetime) -> int:
        """Delete the runs that started before ``older_than`` ago (or before that time).

        Retention: ``registry.prune(timedelta(days=30))`` keeps the last 30 days. The runs
        queued before the call are written first. Their external ids go with them. Return how
        many runs were deleted. Raises ValueError or TypeError for a bad ``older_than``.
        """
        before = to_micros(cutoff(older_than))
        self._writer.flush()
        return self._delete_before(before)

    # -- reads -------------------------------------------------------------------------------

    def get(self, run: RunId | str, *, timeout: float | None = 1.0) -> RunRecord:
        """Return the run given by a RunId, its full id, or a unique prefix of 8+ characters.

        The writes queued before the call are waited for, so that a thread reads what it wrote.
        When they are not written within ``timeout`` (the database is locked by another
        process, say), ``get`` does not raise for it: it returns the last state committed, and
        a run whose start is still queued is unknown (KeyError) like any other. The read itself
        may wait for the database too.
        """
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not timeout >= 0  # NaN too
        ):
            raise ValueError(
                f"timeout must be a number of seconds >= 0 or None, got {show_value(timeout)}: "
                "give how long to wait for the writes queued before the read (None: no limit)"
            )
        key, is_prefix = parse_run(run)
        statements = self._statements
        if not is_prefix:
            rows = self._query(statements.by_id, (key,), timeout)
        else:
            rows = self._query(statements.by_prefix, (key, key + "g"), timeout)  # ids sort below g
        if not rows:
            raise KeyError(f"no run {key!r} in the registry {self.where!r}")
        if len(rows) > 1:
            raise AmbiguousRunError(key, [row[0] for row in rows[:CANDIDATES]])
        (record,) = self._records(rows)
        return record

    def find(
        self,
        *,
        status: Status | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        stale: bool = False,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Return up to ``limit`` runs, newest first, that match every filter given.

        A process is gone for ``stale=True`` when ``os.kill(pid, 0)`` says so; never on Windows,
        where that call would end the process.
        """
        check_find(status, limit, since, until, stale)
        sql, params = find_query(status, user_id, session_id, since, until, stale)
        sql = self._dialect(sql)
        if not stale:
            return self._records(self._query(f"{sql} LIMIT {limit}", params))
        found: list[Any] = []
        for row in self._query(sql, params):
            if not alive(row[11]):
                found.append(row)
                if len(found) == limit:
                    break
        return self._records(found)

    def by_external_id(self, external_id: str, *, system: str | None = None) -> list[RunRecord]:
        """Return the runs that carry ``external_id`` (of ``system``, or of any), newest first.

        Raises TypeError when ``external_id`` or ``system`` is not a str.
        """
        if not isinstance(external_id, str):
            raise TypeError(f"external_id must be a str, got {type(external_id).__name__}")
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a str or None, got {type(system).__name__}")
        self._writer.flush()
        return self._records(self._by_external(external_id.strip(), system))

    def children(self, run: RunId | str) -> list[RunRecord]:
        """Return the runs whose parent is ``run``, in start order."""
        key = self._resolve(run)
        return self._records(self._query(self._statements.children, (key,)))

    def tree(self, run: RunId | str) -> list[RunRecord]:
        """Return ``run`` and all its descendants, depth first, children in start order.

        Raises KeyError when ``run`` itself is not in the registry.
        """
        top = self.get(run).run_id
        return preorder(self._records(self._query(self._statements.tree, (top,))), top)

    # -- what a backend gives ------------------------------------------------------------------

    def _dialect(self, statement: str) -> str:
        """Return a statement of ``_queries`` (``?`` parameters) in the backend's dialect."""
        return statement

    @abstractmethod
    def _fetch(self, sql: str, params: Any) -> list[Any]:
        """Run one read and return its rows."""

    @abstractmethod
    def _externals(self, run_ids: list[str]) -> Iterable[tuple[str, str, str]]:
        """Return ``(run_id, system, external_id)`` of every external id of the runs given."""

    @abstractmethod
    def _by_external(self, external_id: str, system: str | None) -> list[Any]:
        """Return the rows of the runs that carry ``external_id``, newest first."""

    @abstractmethod
    def _delete_before(self, micros: int) -> int:
        """Delete the runs started before ``micros``, and their external ids; return how many."""

    # -- helpers -------------------------------------------------------------------------------

    def _put(self, statement: str, row: Row, externals: list[Row]) -> None:
        """Queue ``statement`` with ``row``, then the rows of the run's external ids."""
        self._writer.put((statement, row))
        for external in externals:
            self._writer.put((EXTERNAL, external))

    def _resolve(self, run: RunId | str) -> str:
        key, is_prefix = parse_run(run)
        return self.get(key).run_id if is_prefix else key

    def _records(self, rows: list[Any]) -> list[RunRecord]:
        """Return the records of ``rows`` read back, each with its external ids."""
        if not rows:
            return []
        externals: dict[str, dict[str, str]] = {}
        for run_id, system, external_id in self._externals([row[0] for row in rows]):
            externals.setdefault(run_id, {})[system] = external_id
        return [to_record(row, externals.get(row[0])) for row in rows]

    def _query(self, sql: str, params: Any, timeout: float | None = None) -> list[Any]:
        self._writer.flush(timeout)
        return self._fetch(sql, params)


def _checked_rows(
    run_id: RunId,
    user_id: str | None,
    task: str | None,
    metadata: Mapping[str, Any] | None,
    session_id: str | None,
    external_ids: Mapping[str, str] | None,
) -> tuple[Row, list[Row]]:
    """Return the row of a start or an annotation and its external ids' rows, checked first."""
    check_args(run_id, user_id, task, session_id)
    externals = external_rows(run_id, external_ids)
    return start_row(run_id, user_id, task, metadata, session_id), externals


_registries: weakref.WeakSet[BufferedRunRegistry] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    # The writer is a daemon thread: write what is queued before the interpreter stops it,
    # retrying a failing database for exit_timeout seconds (a warning says what is lost).
    for registry in list(_registries):
        with contextlib.suppress(Exception):  # never fail the interpreter's exit
            registry._writer.stop(registry.exit_timeout)
