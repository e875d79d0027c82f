"""Writing one batch of the registry's writes into the file, in one transaction."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from ._backlog import Held
from ._schema import file_id

__all__ = ["BatchWriter"]

_log = logging.getLogger("agent_run_id.registry")


class BatchWriter:
    """Write batches into the file at ``path``, on one connection opened with ``connect``.

    The connection is opened at the first batch, and again after ``close()`` or when the file
    has been deleted or replaced since (a connection on the old file would write where nobody
    reads). Used from the writer thread only.
    """

    def __init__(self, path: Path, connect: Callable[[], sqlite3.Connection]) -> None:
        self._path = path
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None

    def open(self) -> None:
        """Open the connection now, if it is not open."""
        self._connection()

    def write(self, batch: list[Held]) -> None:
        """Write one batch in one transaction.

        Raises sqlite3.Error or OSError when the database fails (nothing of the batch is
        written then). A write the database driver refuses for another reason (a bug upstream:
        a text it cannot encode, a number too big) is dropped alone, with one warning: the
        others are written one by one, never lost with it.
        """
        try:
            self._transaction(batch, _execute)
        except (sqlite3.Error, OSError):
            raise
        except Exception:
            self._transaction(batch, self._each)

    def close(self) -> None:
        """Close the connection, if open; the next batch opens it again."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _transaction(
        self, todo: list[Held], execute: Callable[[sqlite3.Connection, list[Held]], None]
    ) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            execute(conn, todo)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _each(self, conn: sqlite3.Connection, todo: list[Held]) -> None:
        """Run the writes one by one, dropping (with one warning) those the driver refuses."""
        bad: list[BaseException] = []
        for kind, params, _, _ in todo:
            try:
                conn.execute(kind, params)
            except (sqlite3.Error, OSError):
                raise  # the database is failing, not the write: keep them all for the retry
            except Exception as exc:
                bad.append(exc)
        if bad:
            _log.warning(
                "run registry %s: %d of %d writes dropped, refused by the database driver "
                "(%s: %s); the others are written",
                self._path,
                len(bad),
                len(todo),
                type(bad[0]).__name__,
                bad[0],
            )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and file_id(self._path) != self._inode:
            _log.warning("run registry %s was deleted or replaced; opening it anew", self._path)
            self.close()
        if self._conn is None:
            self._conn = self._connect()
            self._inode = file_id(self._path)
        return self._conn


def _execute(conn: sqlite3.Connection, ops: list[Held]) -> None:
    """Run the writes in order, each run of same-kind writes as one ``executemany``."""
    i = 0
    n = len(ops)
    while i < n:
        kind = ops[i][0]
        j = i + 1
        while j < n and ops[j][0] is kind:
            j += 1
        conn.executemany(kind, [op[1] for op in ops[i:j]])
        i = j
