"""The SQLite registry's writer: one thread per registry, batches in one transaction each.

Recording a run must cost the agent almost nothing and must never fail it, so ``start`` and
``finish`` only put a row on a queue. A writer thread takes everything queued, writes it in one
transaction, and on failure keeps the rows in a bounded buffer that is retried with the next
batch: a database locked for a while by another process, or a disk full for a moment, loses
nothing; a long outage loses the oldest rows beyond the bound, and memory stays bounded.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._schema import file_id

__all__ = ["FINISH", "START", "Writer"]

_log = logging.getLogger("agent_run_id.registry")

# A start of a run already in the file (entered again, or continued by another service or process)
# never clobbers it: the earliest start and the first user, task and metadata given are kept
# (later ones only fill what is missing); the run is running again until the next end is written.
# A finish adds the end to the row, or writes the whole row when the start never reached this
# file (the file was deleted or replaced in between).
START = (
    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE"
    " SET parent_id = COALESCE(runs.parent_id, excluded.parent_id),"
    " root_id = CASE WHEN runs.parent_id IS NULL THEN excluded.root_id ELSE runs.root_id END,"
    " status = excluded.status, started_at = MIN(runs.started_at, excluded.started_at),"
    " ended_at = NULL, duration = NULL,"
    " user_id = COALESCE(runs.user_id, excluded.user_id),"
    " task = COALESCE(runs.task, excluded.task), error = NULL,"
    " host = CASE WHEN runs.status = 'running' THEN runs.host ELSE excluded.host END,"
    " pid = CASE WHEN runs.status = 'running' THEN runs.pid ELSE excluded.pid END,"
    " metadata = CASE WHEN runs.metadata = '{}' THEN excluded.metadata ELSE runs.metadata END"
)
FINISH = (
    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE"
    " SET status = excluded.status, ended_at = excluded.ended_at,"
    " duration = MAX(0.0, (excluded.ended_at - runs.started_at) / 1e6), error = excluded.error"
)

Op = tuple[str, tuple[Any, ...]]
_MAX_BATCH = 10_000
_STOP = object()


_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


def _after_fork() -> None:
    # Another thread of the parent may have held a writer's lock at the fork.
    for writer in list(_writers):
        writer._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Writer:
    """Write queued rows from one background thread; restart it after a fork."""

    def __init__(
        self, path: Path, connect: Callable[[], sqlite3.Connection], max_pending: int
    ) -> None:
        self._path = path
        self._connect = connect
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pid = -1
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._retry: deque[Op] = deque()
        self._dropped = 0
        self._failing = False
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        _writers.add(self)

    def put(self, op: Op) -> None:
        """Queue one row for the writer thread, starting it in this process if needed."""
        if self._pid != os.getpid():
            self._start()
        self._queue.put(op)

    def flush(self) -> None:
        """Wait until everything queued before this call has been written (or has failed)."""
        if self._pid != os.getpid() or self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        while not done.wait(1.0):
            if not self._thread.is_alive():  # pragma: no cover - the loop never dies
                return

    def stop(self) -> None:
        """Write what is queued, then end the writer thread and close its connection."""
        with self._lock:
            thread = self._thread if self._pid == os.getpid() else None
            self._thread = None
            self._pid = -1
        if thread is not None:
            self._queue.put(_STOP)
            # A registry dropped by the writer thread itself is stopped from that thread.
            if thread is not threading.current_thread():  # pragma: no branch
                thread.join()

    def _start(self) -> None:
        with self._lock:
            pid = os.getpid()
            if self._pid == pid:
                return
            # In a forked child the parent's queue, buffer and connection are the parent's.
            self._queue = queue.SimpleQueue()
            self._retry = deque()
            self._conn = None
            self._thread = threading.Thread(
                target=self._loop, name="agent-run-id registry writer", daemon=True
            )
            self._thread.start()
            self._pid = pid

    def _loop(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        while True:
            ops: list[Op] = []
            waiting: list[threading.Event] = []
            stop = False
            item = get()
            while True:
                if isinstance(item, tuple):
                    ops.append(item)
                elif item is _STOP:
                    stop = True
                    break
                else:
                    waiting.append(item)
                # While failing, take all there is: the excess is dropped at once, so the queue
                # cannot grow without bound behind a database that stays locked.
                if len(ops) >= _MAX_BATCH and not self._failing:
                    break
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
            if ops or self._retry:
                try:
                    self._write(ops)
                except Exception:  # a bug here must not stop recording for good
                    _log.exception("run registry %s: %d writes lost", self._path, len(ops))
                    self._retry.clear()
            for event in waiting:
                event.set()
            if stop:
                self._close()
                return

    def _write(self, ops: list[Op]) -> None:
        todo = [*self._retry, *ops] if self._retry else ops
        try:
            try:
                self._transaction(todo, _execute)
            except (sqlite3.Error, OSError):
                raise
            except Exception:
                # A row the database driver refuses (a bug upstream: a text it cannot encode,
                # a number too big): write the others one by one, never lose them with it.
                self._transaction(todo, self._each)
        except (sqlite3.Error, OSError) as exc:
            self._failed(todo, exc)
        else:
            if self._failing:
                self._failing = False
                _log.info(
                    "run registry %s works again: %d queued writes done, %d dropped",
                    self._path,
                    len(self._retry),
                    self._dropped,
                )
            self._retry.clear()
            self._dropped = 0

    def _transaction(
        self, todo: list[Op], execute: Callable[[sqlite3.Connection, list[Op]], None]
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

    def _each(self, conn: sqlite3.Connection, todo: list[Op]) -> None:
        """Run the ops one by one, dropping (with one warning) those the driver refuses."""
        bad: list[BaseException] = []
        for kind, params in todo:
            try:
                conn.execute(kind, params)
            except (sqlite3.Error, OSError):
                raise  # the database is failing, not the row: keep them all for the retry
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

    def _failed(self, todo: list[Op], exc: BaseException) -> None:
        self._close()  # the next attempt reopens: the file may have been fixed or recreated
        excess = len(todo) - self._max_pending
        if excess > 0:
            self._dropped += excess
            todo = todo[excess:]
        self._retry = deque(todo)
        if not self._failing:
            self._failing = True
            _log.warning(
                "run registry %s cannot be written (%s: %s); runs go on, and the writes "
                "are kept (up to %d) and retried with the next ones",
                self._path,
                type(exc).__name__,
                exc,
                self._max_pending,
            )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and file_id(self._path) != self._inode:
            _log.warning("run registry %s was deleted or replaced; opening it anew", self._path)
            self._close()
        if self._conn is None:
            self._conn = self._connect()
            self._inode = file_id(self._path)
        return self._conn

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()


def _execute(conn: sqlite3.Connection, ops: list[Op]) -> None:
    """Run the ops in order, each run of same-kind ops as one ``executemany``."""
    i = 0
    n = len(ops)
    while i < n:
        kind = ops[i][0]
        j = i + 1
        while j < n and ops[j][0] is kind:
            j += 1
        conn.executemany(kind, [op[1] for op in ops[i:j]])
        i = j
