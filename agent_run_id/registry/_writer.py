"""The registry's writer: one thread per registry, batches in one transaction each.

Recording a run must cost the agent almost nothing and must never fail it, so ``start`` and
``finish`` only put a write in the writer's backlog (``_backlog``, which also keeps it within its
budget). A writer thread takes what is held, writes it in one transaction (the backend's batch
writer: ``_batch`` for SQLite, ``_postgres_batch`` for PostgreSQL), and on failure keeps the
writes and retries them with the next batch (and, for a backend that asks, every ``retry``
seconds while it fails): a database locked for a while by another process, a disk full for a
moment, a server restarted, loses nothing. Stopping (``close()``, the registry dropped, the
interpreter's exit) goes on retrying, at the same pace, until its timeout runs out; the writes
still held then are lost, and one warning says how many. After a fork, the child starts a
writer thread of its own, holding none of its parent's writes and using none of its
connections.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from ._backlog import Backlog, Held, Op, held_bytes
from ._rows import EXTERNAL

__all__ = ["Batches", "Writer"]

_log = logging.getLogger("agent_run_id.registry")

_writers: weakref.WeakSet[Writer] = weakref.WeakSet()
# While stopping, how long a backend that retries only with new writes (SQLite) waits between
# attempts; a backend that retries on its own (``retry``) keeps its pace.
_STOP_RETRY = 0.1
# How much longer than its timeout stop() waits for the thread, which gives up at the timeout.
_STOP_GRACE = 0.5


def _after_fork() -> None:
    # Another thread of the parent may have held a writer's locks at the fork.
    for writer in list(_writers):
        writer._lock = threading.Lock()
        writer._held_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


class Batches(Protocol):
    """What a backend gives the writer: batches written in one transaction, on its connection."""

    def open(self) -> None:
        """Connect now, if not connected (the writer's first act, for an eager backend)."""

    def write(self, batch: list[Held]) -> None:
        """Write one batch in one transaction; raise one of the writer's ``errors`` on failure."""

    def close(self) -> None:
        """Close the connection, if open; the next batch opens it again."""


class Writer:
    """Write the writes put from one background thread; restart it after a fork.

    ``path`` names the database in log lines; ``batches`` makes the backend's batch writer
    (once, and again in a forked child);
    ``errors`` are the exceptions that mean the database failed (the writes are kept for a
    retry); ``retry`` (seconds, None: never) retries while failing even when no write comes;
    ``eager`` connects as soon as the thread starts (``warm()``), so that a database that
    cannot be reached says so at once, in the log.
    """

    def __init__(
        self,
        path: Path | str,
        batches: Callable[[], Batches],
        max_pending: int,
        max_pending_bytes: int,
        *,
        errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError),
        retry: float | None = None,
    ) -> None:
        self._path = path
        self._make_batches = batches
        self._errors = errors
        self._retry = retry
        self._opening = False
        self.failures = 0  # failed attempts to write, since the writer was made
        self._lock = threading.Lock()  # starting and stopping the thread
        # Guards what follows. Re-entrant: a finalizer that ends a run may run inside put().
        self._held_lock = threading.RLock()
        self._backlog = Backlog(max_pending, max_pending_bytes)
        self._flushes: list[tuple[int, threading.Event]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._deadline: float | None = None  # when stopping: the time the thread gives up
        self._last_error: BaseException | None = None
        self._pid = -1
        self._rows_pid = os.getpid()  # the process whose writes the backlog holds
        self._thread: threading.Thread | None = None
        self._batches = batches()
        _writers.add(self)

    def warm(self) -> None:
        """Start the writer thread now and have it connect first (logged once if it cannot)."""
        if self._pid != os.getpid():
            self._opening = True
            self._start()
            self._wake.set()

    def put(self, op: Op) -> None:
        """Hold one write for the writer thread, starting it in this process if needed."""
        if self._pid != os.getpid():
            self._start()
        kind, params = op
        size = held_bytes(params)
        with self._held_lock:
            first_drop = self._backlog.add(kind, params, size)
        if not self._wake.is_set():
            self._wake.set()
        if first_drop:
            self._log_drop()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every write put before this call is written (or its write has failed).

        Return False when ``timeout`` seconds passed first (None: no limit).
        """
        thread = self._thread
        if self._pid != os.getpid() or thread is None:
            return True
        done = threading.Event()
        with self._held_lock:
            self._flushes.append((self._backlog.seq, done))
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
        """Return the writes waiting, the writes being written, and the bytes of both."""
        with self._held_lock:
            backlog = self._backlog
            return len(backlog.pending), backlog.writing, backlog.bytes

    def stop(self, timeout: float | None = None) -> bool:
        """Write what is held, then end the writer thread and close its connection.

        While the database fails, try again (every ``retry`` seconds, or every 0.1 s) until
        ``timeout`` seconds have passed (None: as long as it takes). The writes still held then
        are lost: one warning says how many. Return False when the thread was still in an
        attempt then (a database that never answers): it ends once the attempt does, and one
        warning says the writes it holds are not written yet.
        """
        with self._lock:
            thread = self._thread if self._pid == os.getpid() else None
            stop = self._stop
            self._thread = None
            self._pid = -1
        if thread is None:
            return True
        self._deadline = None if timeout is None else time.monotonic() + timeout
        stop.set()
        self._wake.set()
        # A registry dropped by the writer thread itself is stopped from that thread.
        if thread is threading.current_thread():  # pragma: no cover - a finalizer's timing
            return True
        thread.join(None if timeout is None else timeout + _STOP_GRACE)
        alive = thread.is_alive()
        with self._held_lock:
            pending = list(self._backlog.pending)
            held = len(pending) + self._backlog.writing
        if alive:
            _log.warning(
                "run registry %s: closing gave up after %.1f s, the database does not "
                "answer: %d writes are not written yet (lost if its last attempt fails)",
                self._path,
                timeout,
                held,
            )
        elif held:
            error = self._last_error
            _log.warning(
                "run registry %s: %d writes of %d runs lost at close: the database could not "
                "be written in the %s given (%s)",
                self._path,
                held,
                len(
                    {params[2] if kind is EXTERNAL else params[0] for kind, params, _, _ in pending}
                ),
                "time" if timeout is None else f"{timeout:.1f} s",
                "no error" if error is None else f"{type(error).__name__}: {error}",
            )
        return not alive

    def _start(self) -> None:
        with self._lock:
            pid = os.getpid()
            if self._pid == pid:
                return
            if self._rows_pid != pid:
                # A forked child: the parent's writes, flushes and connection are the parent's.
                self._rows_pid = pid
                self._held_lock = threading.RLock()
                self._backlog.clear()
                self._flushes = []
                self._batches = self._make_batches()
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
        if self._opening:
            self._opening = False
            try:
                self._batches.open()
            except self._errors as exc:
                self._failed([], exc)
        while True:
            # While the database fails, a backend that asks retries every so often, so that
            # what is kept is written once it is back even when no new write comes.
            retry = self._retry if self._backlog.failing else None
            wake.wait(retry)
            wake.clear()
            if stop.is_set():
                self._last_tries()
                self._batches.close()
                return
            self._drain()

    def _last_tries(self) -> None:
        """Write what is held; while the database fails, try again until the stop's deadline."""
        deadline = self._deadline
        pause = _STOP_RETRY if self._retry is None else self._retry
        while True:
            self._drain()
            with self._held_lock:
                if not self._backlog.pending:
                    return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            self._wake.wait(pause if left is None else min(pause, left))
            self._wake.clear()
            if deadline is not None and time.monotonic() >= deadline:
                return

    def _drain(self) -> None:
        """Write the held writes, a batch per transaction, until none is left or one fails."""
        while True:
            with self._held_lock:
                batch = self._backlog.take()
                # A flush that comes while this batch is tried waits for the next attempt.
                asked = len(self._flushes)
            if not batch:
                self._answer(None)
                return
            try:
                failed = not self._write(batch)
            except Exception:  # a bug here must not stop recording for good
                _log.exception("run registry %s: %d writes lost", self._path, len(batch))
                with self._held_lock:
                    self._backlog.release(batch)
                failed = True
            self._answer(asked if failed else None)
            if failed:
                return

    def _write(self, batch: list[Held]) -> bool:
        """Write one batch; on a database failure put it back in the backlog and return False."""
        try:
            self._batches.write(batch)
        except self._errors as exc:
            self._failed(batch, exc)
            return False
        with self._held_lock:
            recovered, waiting, dropped = self._backlog.recover()
            self._backlog.release(batch)
        if recovered:
            _log.info(
                "run registry %s works again: writing the %d writes kept, %d were dropped",
                self._path,
                waiting + len(batch),
                dropped,
            )
        return True

    def _failed(self, batch: list[Held], exc: BaseException) -> None:
        self._batches.close()  # the next attempt reopens: the file may have been fixed or recreated
        self.failures += 1
        self._last_error = exc
        with self._held_lock:
            first_failure, first_drop = self._backlog.give_back(batch)
        if first_failure:
            _log.warning(
                "run registry %s cannot be written (%s: %s); runs go on, and the writes are "
                "kept (the newest %d writes at most, %d bytes at most) and retried with the "
                "next ones",
                self._path,
                type(exc).__name__,
                exc,
                self._backlog.max_pending,
                self._backlog.max_bytes,
            )
        if first_drop:
            self._log_drop()

    def _log_drop(self) -> None:
        _log.warning(
            "run registry %s: the writes waiting exceed max_pending_bytes=%d (or, while the "
            "database fails, max_pending=%d): the oldest are dropped, and counted until "
            "everything waiting is written",
            self._path,
            self._backlog.max_bytes,
            self._backlog.max_pending,
        )

    def _answer(self, failed: int | None) -> None:
        """Wake the flushes whose writes are all written.

        After a failed attempt, ``failed`` gives how many flushes were asked before it began:
        those are woken too (their writes have failed, for now).
        """
        with self._held_lock:
            if not self._flushes:
                return
            if failed is not None:
                ready, self._flushes = self._flushes[:failed], self._flushes[failed:]
            else:
                done_below = self._backlog.next_unwritten()
                ready = [flush for flush in self._flushes if flush[0] <= done_below]
                self._flushes = [flush for flush in self._flushes if flush[0] > done_below]
        for _, event in ready:
            event.set()
