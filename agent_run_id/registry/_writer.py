"""The SQLite registry's writer: one thread per registry, batches in one transaction each.

Recording a run must cost the agent almost nothing and must never fail it, so ``start`` and
``finish`` only put a row in the writer's buffer. A writer thread takes what is buffered, writes
it in one transaction, and on failure keeps the rows and retries them with the next batch: a
database locked for a while by another process, or a disk full for a moment, loses nothing.

Memory stays bounded whatever happens to the database: the rows held (buffered, being written,
kept for a retry) are counted in bytes, and past ``max_pending_bytes`` the oldest are dropped
(counted, and logged once); while the database fails, no more than ``max_pending`` rows are
kept either. While failing, the writer tries one row at a time, so the rows it holds outside the
buffer (where they could not be dropped) are at most one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from sys import getsizeof
from typing import Any

from ._schema import file_id

__all__ = ["Writer"]

_log = logging.getLogger("agent_run_id.registry")

#: A write as the registry gives it: the statement and its parameters.
Op = tuple[str, tuple[Any, ...]]
# A write as the writer holds it: the statement, its parameters, its size in bytes, its number.
Held = tuple[str, tuple[Any, ...], int, int]
_MAX_BATCH = 10_000
# What holding one row costs besides its parameters and their values: the held tuple, its size
# and number, and the buffer's slot. Counted once, not measured per row.
_HELD_BYTES = getsizeof(("", (), 1 << 40, 1 << 40)) + 2 * getsizeof(1 << 40) + 8


def held_bytes(params: tuple[Any, ...]) -> int:
    """Return the bytes holding a row with these parameters costs (its strings counted whole).

    A value the row shares with others (the host name, the statement) is counted too: the
    count errs on the safe side.
    """
    return _HELD_BYTES + getsizeof(params) + sum(map(getsizeof, params))


_writers: weakref.WeakSet[Writer] = weakref.WeakSet()


def _after_fork() -> None:
    # Another thread of the parent may have held a writer's locks at the fork.
    for writer in list(_writers):
        writer._lock = threading.Lock()
        writer._held_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Writer:
    """Write buffered rows from one background thread; restart it after a fork."""

    def __init__(
        self,
        path: Path,
        connect: Callable[[], sqlite3.Connection],
        max_pending: int,
        max_pending_bytes: int,
    ) -> None:
        self._path = path
        self._connect = connect
        self._max_pending = max_pending
        self._max_bytes = max_pending_bytes
        self._lock = threading.Lock()  # starting and stopping the thread
        # Guards what follows. Re-entrant: a finalizer that ends a run may run inside put().
        self._held_lock = threading.RLock()
        self._pending: deque[Held] = deque()  # oldest first; a failed batch goes back in front
        self._bytes = 0  # of the rows held: pending, and the batch being written
        self._writing = 0  # rows in the batch being written
        self._dropped_before = 0  # the drops counted when that batch was taken
        self._seq = 0  # the number the next row gets
        self._flushes: list[tuple[int, threading.Event]] = []
        self._dropped = 0
        self._drop_logged = False
        self._failing = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pid = -1
        self._rows_pid = os.getpid()  # the process whose rows the buffer holds
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        _writers.add(self)

    def put(self, op: Op) -> None:
        """Buffer one row for the writer thread, starting it in this process if needed."""
        if self._pid != os.getpid():
            self._start()
        kind, params = op
        size = held_bytes(params)
        with self._held_lock:
            self._pending.append((kind, params, size, self._seq))
            self._seq += 1
            self._bytes += size
            # _over(), inlined: this is the agent's side, on every start and end of a run.
            first_drop = (
                self._bytes > self._max_bytes
                or (self._failing and len(self._pending) > self._max_pending)
            ) and self._shed()
        if not self._wake.is_set():
            self._wake.set()
        if first_drop:
            self._log_drop()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every row put before this call is written (or its write has failed).

        Return False when ``timeout`` seconds passed first (None: no limit).
        """
        thread = self._thread
        if self._pid != os.getpid() or thread is None:
            return True
        done = threading.Event()
        with self._held_lock:
            self._flushes.append((self._seq, done))
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if done.wait(max(wait, 0.0)):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            if not thread.is_alive():  # pragma: no cover - the loop never dies
                return False

    def held(self) -> tuple[int, int, int]:
        """Return the rows in the buffer, the rows being written, and the bytes of both."""
        with self._held_lock:
            return len(self._pending), self._writing, self._bytes

    def stop(self) -> None:
        """Write what is buffered, then end the writer thread and close its connection."""
        with self._lock:
            thread = self._thread if self._pid == os.getpid() else None
            stop = self._stop
            self._thread = None
            self._pid = -1
        if thread is not None:
            stop.set()
            self._wake.set()
            # A registry dropped by the writer thread itself is stopped from that thread.
            if thread is not threading.current_thread():  # pragma: no branch
                thread.join()

    def _start(self) -> None:
        with self._lock:
            pid = os.getpid()
            if self._pid == pid:
                return
            if self._rows_pid != pid:
                # A forked child: the parent's rows, flushes and connection are the parent's.
                self._rows_pid = pid
                self._held_lock = threading.RLock()
                self._pending = deque()
                self._bytes = 0
                self._flushes = []
                self._conn = None
            self._wake = threading.Event()
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._loop,
                args=(self._stop,),
                name="agent-run-id registry writer",
                daemon=True,
            )
            self._thread.start()
            self._pid = pid

    # -- the writer thread -----------------------------------------------------------------

    def _loop(self, stop: threading.Event) -> None:
        wake = self._wake
        while True:
            wake.wait()
            wake.clear()
            stopping = stop.is_set()
            self._drain()
            if stopping:
                self._close()
                return

    def _drain(self) -> None:
        """Write the held rows, a batch per transaction, until none is left or a write fails."""
        while True:
            with self._held_lock:
                batch = self._take()
                self._writing = len(batch)
                self._dropped_before = self._dropped
                # A flush that comes while this batch is tried waits for the next attempt.
                asked = len(self._flushes)
            if not batch:
                self._answer(None)
                return
            try:
                failed = not self._write(batch)
            except Exception:  # a bug here must not stop recording for good
                _log.exception("run registry %s: %d writes lost", self._path, len(batch))
                self._release(batch)
                failed = True
            self._answer(asked if failed else None)
            if failed:
                return

    def _take(self) -> list[Held]:
        """Take the next batch from the buffer (with _held_lock held).

        The rows being written cannot be dropped, so a batch is kept small beside the budget:
        a quarter of it at most (always one row), and one row while the database fails.
        """
        pending = self._pending
        if not pending:
            return []
        batch = [pending.popleft()]
        if self._failing:
            return batch
        room = self._max_bytes // 4 - batch[0][2]
        while pending and len(batch) < _MAX_BATCH and pending[0][2] <= room:
            held = pending.popleft()
            room -= held[2]
            batch.append(held)
        return batch

    def _write(self, batch: list[Held]) -> bool:
        """Write one batch; on a database failure put it back in the buffer and return False."""
        try:
            try:
                self._transaction(batch, _execute)
            except (sqlite3.Error, OSError):
                raise
            except Exception:
                # A row the database driver refuses (a bug upstream: a text it cannot encode,
                # a number too big): write the others one by one, never lose them with it.
                self._transaction(batch, self._each)
        except (sqlite3.Error, OSError) as exc:
            self._failed(batch, exc)
            return False
        with self._held_lock:
            recovered, self._failing = self._failing, False
            waiting, dropped = len(self._pending), self._dropped
        self._release(batch)
        if recovered:
            _log.info(
                "run registry %s works again: writing the %d writes kept, %d were dropped",
                self._path,
                waiting + len(batch),
                dropped,
            )
        return True

    def _release(self, batch: list[Held]) -> None:
        """Forget the rows of a batch written (or lost); end a drop episode once all is out."""
        size = sum(held[2] for held in batch)
        with self._held_lock:
            self._bytes -= size
            self._writing = 0
            if not self._pending and not self._failing:
                self._dropped = 0
                self._drop_logged = False

    def _failed(self, batch: list[Held], exc: BaseException) -> None:
        self._close()  # the next attempt reopens: the file may have been fixed or recreated
        with self._held_lock:
            self._writing = 0
            if self._dropped == self._dropped_before:
                self._pending.extendleft(reversed(batch))
            else:
                # Newer rows were dropped while these, the oldest, were being tried: they go
                # too, so that what is kept is always the newest.
                self._bytes -= sum(held[2] for held in batch)
                self._dropped += len(batch)
            first_failure = not self._failing
            self._failing = True
            first_drop = self._over() and self._shed()
        if first_failure:
            _log.warning(
                "run registry %s cannot be written (%s: %s); runs go on, and the writes are "
                "kept (the newest %d writes at most, %d bytes at most) and retried with the "
                "next ones",
                self._path,
                type(exc).__name__,
                exc,
                self._max_pending,
                self._max_bytes,
            )
        if first_drop:
            self._log_drop()

    # Called with _held_lock held.
    def _over(self) -> bool:
        return self._bytes > self._max_bytes or (
            self._failing and len(self._pending) > self._max_pending
        )

    def _shed(self) -> bool:
        """Drop the oldest buffered rows until the bounds hold; True for an episode's first drop.

        The batch being written is not in the buffer: while failing it is one row.
        """
        pending = self._pending
        while pending and self._over():
            self._bytes -= pending.popleft()[2]
            self._dropped += 1
        if self._drop_logged:
            return False
        self._drop_logged = True
        return True

    def _log_drop(self) -> None:
        _log.warning(
            "run registry %s: the writes waiting exceed max_pending_bytes=%d (or, while the "
            "database fails, max_pending=%d): the oldest are dropped, and counted until "
            "everything waiting is written",
            self._path,
            self._max_bytes,
            self._max_pending,
        )

    def _answer(self, failed: int | None) -> None:
        """Wake the flushes whose rows are all written.

        After a failed attempt, ``failed`` gives how many flushes were asked before it began:
        those are woken too (their writes have failed, for now).
        """
        with self._held_lock:
            if not self._flushes:
                return
            if failed is not None:
                ready, self._flushes = self._flushes[:failed], self._flushes[failed:]
            else:
                done_below = self._pending[0][3] if self._pending else self._seq
                ready = [flush for flush in self._flushes if flush[0] <= done_below]
                self._flushes = [flush for flush in self._flushes if flush[0] > done_below]
        for _, event in ready:
            event.set()

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
        """Run the rows one by one, dropping (with one warning) those the driver refuses."""
        bad: list[BaseException] = []
        for kind, params, _, _ in todo:
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


def _execute(conn: sqlite3.Connection, ops: list[Held]) -> None:
    """Run the rows in order, each run of same-kind rows as one ``executemany``."""
    i = 0
    n = len(ops)
    while i < n:
        kind = ops[i][0]
        j = i + 1
        while j < n and ops[j][0] is kind:
            j += 1
        conn.executemany(kind, [op[1] for op in ops[i:j]])
        i = j
