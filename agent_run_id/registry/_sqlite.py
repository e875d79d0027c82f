"""SQLiteRunRegistry: the embedded run registry, one SQLite file, standard library only.

The class gives the shared registry (``_buffered``: the arguments checked, the entries of each
open run counted, the writes handed to the writer thread, the reads) what is SQLite's: its
options, the writer's batches on one connection (``_batch``), each thread's own read connection
(``_readers``), the reads written in ``_queries``.
"""

from __future__ import annotations

import functools
import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._batch import BatchWriter
from ._buffered import BufferedRunRegistry, Statements, check_budget
from ._queries import (
    BY_EXTERNAL,
    BY_ID,
    BY_PREFIX,
    CHILDREN,
    PRUNE,
    PRUNE_BATCH,
    PRUNE_EXTERNAL_IDS,
    TREE,
    externals_of,
)
from ._readers import Readers
from ._schema import connect
from ._writer import Writer

__all__ = ["SQLiteRunRegistry"]
# How many run ids one read of external ids takes (SQLite allows 999 parameters in old builds).
_IN_CHUNK = 500


class SQLiteRunRegistry(BufferedRunRegistry):
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
        close_timeout: seconds ``close()`` (and the interpreter's exit) waits for the writes
            queued, retrying a failing database meanwhile; those still held then are lost,
            and one warning says how many.
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
        close_timeout: float = 10.0,
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
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not 0 <= timeout < math.inf  # NaN too
        ):
            raise ValueError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
        if (
            isinstance(close_timeout, bool)
            or not isinstance(close_timeout, (int, float))
            or not 0 < close_timeout < math.inf
        ):
            raise ValueError(
                f"close_timeout must be a finite number of seconds > 0, got {close_timeout!r}"
            )
        check_budget(max_pending, max_pending_bytes)
        super().__init__()
        self.path = Path(path)
        self.timeout = float(timeout)
        self.close_timeout = self.exit_timeout = float(close_timeout)
        # The writer must not hold the registry: dropping the registry stops its thread.
        self._writer = Writer(
            self.path,
            functools.partial(
                BatchWriter, self.path, functools.partial(connect, self.path, self.timeout)
            ),
            max_pending,
            max_pending_bytes,
        )
        self._statements = Statements(BY_ID, BY_PREFIX, CHILDREN, TREE)
        self._readers = Readers(self.path)
        self._buffering()

    def __repr__(self) -> str:
        return f"SQLiteRunRegistry({str(self.path)!r})"

    @property
    def where(self) -> str:
        """The database file, as errors and log lines name it."""
        return str(self.path)

    def open_reader(self) -> sqlite3.Connection:
        """Open a connection to read from, one per thread; a subclass may open it read-only.

        The ``agent-run-id`` command's registry does: it never creates, migrates or writes.
        """
        return connect(self.path, self.timeout)

    def close(self) -> None:
        """Write what is queued, stop the writer thread and close every connection.

        While the file cannot be written (locked, read-only), the writes are tried again until
        ``close_timeout`` runs out; those still held then are lost, and one warning says how
        many.
        """
        self._writer.stop(self.close_timeout)
        self._readers.close()

    # -- what a backend gives ------------------------------------------------------------------

    def _fetch(self, sql: str, params: Any) -> list[Any]:
        conn = self._readers.connection(self.open_reader)
        return conn.execute(sql, params).fetchall()

    def _externals(self, run_ids: list[str]) -> Iterator[tuple[str, str, str]]:
        conn = self._readers.connection(self.open_reader)
        for i in range(0, len(run_ids), _IN_CHUNK):
            chunk = run_ids[i : i + _IN_CHUNK]
            yield from conn.execute(externals_of(len(chunk)), chunk)

    def _by_external(self, external_id: str, system: str | None) -> list[Any]:
        return self._fetch(BY_EXTERNAL, (external_id, system))

    def _delete_before(self, micros: int) -> int:
        # A batch per transaction: the writers of live runs wait for one batch at most.
        deleted = 0
        conn = connect(self.path, self.timeout)
        try:
            while True:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(PRUNE_EXTERNAL_IDS, (micros, PRUNE_BATCH))
                    count = conn.execute(PRUNE, (micros, PRUNE_BATCH)).rowcount
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                deleted += count
                if count < PRUNE_BATCH:
                    return deleted
        finally:
            conn.close()
