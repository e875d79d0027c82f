"""SQLiteRunRegistry: the embedded run registry, one SQLite file, standard library only.

The class ties the parts together: it checks its options and its arguments, counts the entries
of each run open in this process, and hands rows to the writer thread (``_writer``); reads go
through each thread's own connection (``_readers``). The rows are built in ``_rows``, the reads
written in ``_queries``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_run_id._run_id import RunId
from agent_run_id._show import show_value

from ._base import AmbiguousRunError, RunRegistry, check_find, parse_run, preorder
from ._queries import (
    BY_EXTERNAL,
    BY_ID,
    BY_PREFIX,
    CANDIDATES,
    CHILDREN,
    TREE,
    alive,
    externals_of,
    find_query,
)
from ._readers import Readers
from ._record import RunRecord, Status
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
from ._schema import connect
from ._writer import Writer

__all__ = ["SQLiteRunRegistry"]

_MIN_PENDING_BYTES = 1024 * 1024
# How many run ids one read of external ids takes (SQLite allows 999 parameters in old builds).
_IN_CHUNK = 500


class SQLiteRunRegistry(RunRegistry):
    """Record runs in one SQLite file, from many threads and several processes at once.

    ``start`` and ``finish`` cost the agent a queue put: the registry's writer thread (one per
    registry object, in each process that records) writes them in batches, one transaction
    each; it ends at ``close()``, or when the registry is garbage-collected, after writing what
    is queued. Reads (``get``, ``find``, ``children``, ``tree``) first wait for the writes
    queued before them, so a thread reads what it wrote (``get`` waits ``timeout`` seconds at
    most). Each thread reads on its own connection, closed when the thread ends. The file is in
    WAL mode with a busy timeout, so processes sharing it wait for each other instead of
    failing.

    A database that cannot be written (locked beyond the timeout, read-only, disk full, deleted)
    never breaks a run: one warning is logged, and the failed writes are kept (up to
    ``max_pending`` writes and ``max_pending_bytes`` bytes) and retried with the next ones. The
    file and its folder are created on the first write. Runs of a process that died stay
    ``"running"``; ``find(stale=True)`` lists them.

    Args:
        path: the database file.
        timeout: seconds to wait for another process's lock before a write fails.
        max_pending: how many failed writes to keep for retrying; the oldest go beyond it.
        max_pending_bytes: the memory the writes waiting to be written may hold, in bytes
            (64 MiB by default, at least 1 MiB): queued, or kept while the database fails.
            Beyond it the oldest are dropped, counted, with one warning. A run's two writes
            hold about 2 KB, and at most about 120 KB: its metadata is cut to 16,384 bytes of
            JSON (``MAX_METADATA``), its user, task and error to 4,096 characters.

    Example::

        registry = SQLiteRunRegistry("runs.db")
        with RunContext(registry=registry, user_id="u-42", task="summarize the report"):
            ...
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        max_pending: int = 100_000,
        max_pending_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
        if str(path) in ("", ":memory:"):
            raise ValueError(
                f"path must name a file, got {str(path)!r}: threads and processes share the "
                "registry through the file (use a temporary file in tests)"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        if isinstance(max_pending, bool) or not isinstance(max_pending, int) or max_pending < 0:
            raise ValueError(f"max_pending must be an int >= 0, got {max_pending!r}")
        if (
            isinstance(max_pending_bytes, bool)
            or not isinstance(max_pending_bytes, int)
            or max_pending_bytes < _MIN_PENDING_BYTES
        ):
            raise ValueError(
                f"max_pending_bytes must be an int >= {_MIN_PENDING_BYTES:,} (1 MiB), got "
                f"{max_pending_bytes!r}: give the memory the writes waiting may hold, in bytes, "
                "e.g. 64 * 1024 * 1024"
            )
        super().__init__()
        self.path = Path(path)
        self.timeout = float(timeout)
        # The writer must not hold the registry: dropping the registry stops its thread.
        self._writer = Writer(
            self.path,
            functools.partial(connect, self.path, self.timeout),
            max_pending,
            max_pending_bytes,
        )
        weakref.finalize(self, self._writer.stop)
        self._readers = Readers(self.path)
        # What each open run started with, so its end can rewrite the whole row when the start
        # never reached the file, and how many entries of it are open in this process.
        self._open: dict[str, tuple[Row, int]] = {}
        self._open_lock = threading.Lock()
        _registries.add(self)

    def __repr__(self) -> str:
        return f"SQLiteRunRegistry({str(self.path)!r})"

    def open_reader(self) -> sqlite3.Connection:
        """Open a connection to read from, one per thread; a subclass may open it read-only.

        The ``agent-run-id`` command's registry does: it never creates, migrates or writes.
        """
        return connect(self.path, self.timeout)

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
        check_args(run_id, user_id, task, session_id)
        externals = external_rows(run_id, external_ids)
        row = start_row(run_id, user_id, task, metadata, session_id)
        with self._open_lock:
            entry = self._open.get(run_id.value)
            if entry is not None:
                row = merge_rows(entry[0], row)
            self._open[run_id.value] = (row, 1 if entry is None else entry[1] + 1)
        self._writer.put((START, row))
        for external in externals:
            self._writer.put((EXTERNAL, external))

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

        The values given replace the row's (``annotate()`` passes the run's facts whole); those
        left None keep theirs. The run's entries are not counted again and its status and times
        are left as they are. A run whose start this registry never recorded gets no row.
        ``external_ids`` are added to the run's; an id given before to another run moves here.
        """
        check_args(run_id, user_id, task, session_id)
        externals = external_rows(run_id, external_ids)
        row = start_row(run_id, user_id, task, metadata, session_id)
        with self._open_lock:
            entry = self._open.get(run_id.value)
            if entry is not None:
                self._open[run_id.value] = (annotated_row(entry[0], row), entry[1])
        self._writer.put((ANNOTATE, row))
        for external in externals:
            self._writer.put((EXTERNAL, external))

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
        """Wait until every write queued before this call is in the file (or has failed)."""
        self._writer.flush()

    def close(self) -> None:
        """Write what is queued, stop the writer thread and close every connection."""
        self._writer.stop()
        self._readers.close()

    # -- reads -------------------------------------------------------------------------------

    def get(self, run: RunId | str, *, timeout: float | None = 1.0) -> RunRecord:
        """Return the run given by a RunId, its full id, or a unique prefix of 8+ characters.

        The writes queued before the call are waited for, ``timeout`` seconds at most (None:
        as long as they take), so that a thread reads what it wrote. When they are not written
        by then (the database is locked by another process, say), ``get`` does not raise for
        it: it returns what the file holds, the last state committed, and a run whose start
        is still queued is unknown (KeyError) like any other.

        It blocks up to ``timeout`` seconds, and the read itself may wait for the database
        too: from async code, call it in a thread, never on the event loop::

            record = await asyncio.to_thread(registry.get, run_id)

        Raises KeyError for an unknown run, AmbiguousRunError (a LookupError) listing the
        candidates when a prefix matches several runs.
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
        if not is_prefix:
            rows = self._query(BY_ID, (key,), timeout)
        else:
            rows = self._query(BY_PREFIX, (key, key + "g"), timeout)  # ids sort below "g"
        if not rows:
            raise KeyError(f"no run {key!r} in the registry {str(self.path)!r}")
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

        ``since`` (inclusive) and ``until`` (exclusive) bound the start time, as aware
        datetimes. ``stale=True`` keeps only runs still ``"running"`` that were started on this
        host by a process that no longer exists (checked with ``os.kill(pid, 0)``; never on
        Windows, where that call would end the process); it takes no ``status`` other than
        ``"running"`` (ValueError).
        """
        check_find(status, limit, since, until, stale)
        sql, params = find_query(status, user_id, session_id, since, until, stale)
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
        return self._records(self._query(BY_EXTERNAL, (external_id.strip(), system)))

    def children(self, run: RunId | str) -> list[RunRecord]:
        """Return the runs whose parent is ``run``, in start order."""
        key = self._resolve(run)
        return self._records(self._query(CHILDREN, (key,)))

    def tree(self, run: RunId | str) -> list[RunRecord]:
        """Return ``run`` and all its descendants, depth first, children in start order.

        Raises KeyError when ``run`` itself is not in the registry.
        """
        top = self.get(run).run_id
        return preorder(self._records(self._query(TREE, (top,))), top)

    def _resolve(self, run: RunId | str) -> str:
        key, is_prefix = parse_run(run)
        return self.get(key).run_id if is_prefix else key

    def _records(self, rows: list[Any]) -> list[RunRecord]:
        """Return the records of ``rows`` read back, each with its external ids."""
        if not rows:
            return []
        conn = self._readers.connection(self.open_reader)
        externals: dict[str, dict[str, str]] = {}
        ids = [row[0] for row in rows]
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            for run_id, system, external_id in conn.execute(externals_of(len(chunk)), chunk):
                externals.setdefault(run_id, {})[system] = external_id
        return [to_record(row, externals.get(row[0])) for row in rows]

    def _query(self, sql: str, params: Any, timeout: float | None = None) -> list[Any]:
        self._writer.flush(timeout)
        conn = self._readers.connection(self.open_reader)
        return conn.execute(sql, params).fetchall()


_registries: weakref.WeakSet[SQLiteRunRegistry] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    # The writer is a daemon thread: write what is queued before the interpreter stops it.
    for registry in list(_registries):
        with contextlib.suppress(Exception):  # never fail the interpreter's exit
            registry.flush()
