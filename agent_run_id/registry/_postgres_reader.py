"""The PostgreSQL registry's read connection: one per registry and process, one read at a time.

Reads are rare beside writes (a look-up, the command line), so one connection serves every
thread of the registry, a read at a time. One opened before a fork is never used (nor closed)
in the child, which opens its own; one the server ended (a restart, ``pg_terminate_backend``)
is opened anew, and the read tried once more.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from ._postgres_batch import inherited

__all__ = ["Reader"]


class Reader:
    """Run reads on one connection opened with ``connect``, reopened when needed."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._pid = os.getpid()

    def fetch(self, sql: Any, params: Any) -> list[Any]:
        """Run one read and return its rows; a connection found ended is reopened, once."""
        if self._pid != os.getpid():  # pragma: no cover - a forked child's, not collected
            self._forked()
        with self._lock:
            for attempt in (1, 2):
                conn = self._connection()
                try:
                    return conn.execute(sql, params).fetchall()
                except psycopg.OperationalError:
                    if attempt == 2 or not conn.broken:
                        raise
                    self._close()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close the connection, if open in this process; a later read opens a new one."""
        if self._pid != os.getpid():  # pragma: no cover - a forked child's, not collected
            self._forked()
        with self._lock:
            self._close()

    def _forked(self) -> None:  # pragma: no cover - runs in a forked child, not collected
        # A forked child: the connection is the parent's, and the lock may have been held by
        # another thread of the parent at the fork.
        if self._conn is not None:
            inherited.append(self._conn)
        self._conn = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None:  # the first read, or the one after a connection the server ended
            conn = self._conn = self._connect()
        return conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()
