"""Each thread's read connection to a registry file, closed when the thread ends."""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from ._schema import file_id

__all__ = ["Readers"]


class Readers:
    """Hand each thread its own read connection to the registry file at ``path``.

    A connection lives in its thread's thread-local, so it is closed when the thread ends (a
    threaded server answering each look-up from a new thread keeps no more open than it has
    threads). One opened in another process (before a fork), or on a file deleted or replaced
    since, is closed and opened anew.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Return how many threads' connections are open."""
        return len(self._readers)

    def connection(self, connect: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
        """Return this thread's read connection, opening it with ``connect`` if needed."""
        local = self._local
        reader: _Reader | None = getattr(local, "reader", None)
        if reader is not None and (reader.pid, reader.inode) != (os.getpid(), file_id(self._path)):
            reader.close()  # another process's, or on a file deleted or replaced since
            reader = None
        if reader is None:
            reader = _Reader(connect(), file_id(self._path))
            with self._lock:
                self._readers.add(reader)
            local.reader = reader
        return reader.conn

    def close(self) -> None:
        """Close every thread's connection; a later read opens a new one."""
        with self._lock:
            readers = list(self._readers)
            self._local = threading.local()
        for reader in readers:
            reader.close()


class _Reader:
    """One thread's read connection, closed with ``close()`` or when the thread ends."""

    __slots__ = ("__weakref__", "close", "conn", "inode", "pid")

    def __init__(self, conn: sqlite3.Connection, inode: tuple[int, int] | None) -> None:
        self.conn = conn
        self.inode = inode
        self.pid = os.getpid()
        self.close = weakref.finalize(self, conn.close)
