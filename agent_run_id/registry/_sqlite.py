"""SQLiteRunRegistry: the embedded run registry, one SQLite file, standard library only."""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_run_id._run_id import RunId, show_value

from ._base import AmbiguousRunError, RunRegistry, check_find, parse_run, preorder
from ._record import RunRecord, Status, from_micros, to_micros
from ._schema import COLUMNS, connect, file_id
from ._writer import FINISH, START, Writer

__all__ = ["MAX_METADATA", "SQLiteRunRegistry"]

_HOST = socket.gethostname()
_CANDIDATES = 10
_MAX_TEXT = 4096
#: The most metadata kept per run, in bytes of its JSON (ASCII: one byte a character).
MAX_METADATA = 16_384
_MAX_NAME = 256
_MIN_PENDING_BYTES = 1024 * 1024


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
        # A thread's reader lives in its thread-local, so it is closed when the thread ends.
        self._local = threading.local()
        self._readers: weakref.WeakSet[_Reader] = weakref.WeakSet()
        self._readers_lock = threading.Lock()
        # What each open run started with, so its end can rewrite the whole row when the start
        # never reached the file, and how many entries of it are open in this process.
        self._open: dict[str, tuple[tuple[Any, ...], int]] = {}
        self._open_lock = threading.Lock()
        _registries.add(self)

    def __repr__(self) -> str:
        return f"SQLiteRunRegistry({str(self.path)!r})"

    def _connect(self) -> sqlite3.Connection:
        return connect(self.path, self.timeout)

    # -- writes ------------------------------------------------------------------------------

    def start(
        self,
        run_id: RunId,
        *,
        user_id: str | None = None,
        task: str | None = None,
        metadata: Mapping[str, Any] | None = None,
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
        _check(run_id, user_id, task)
        parent = run_id.parent
        row = (
            run_id.value,
            None if parent is None else parent.value,
            run_id.root.value,
            "running",
            time.time_ns() // 1000,
            None,
            None,
            _text(user_id),
            _text(task),
            None,
            _HOST,
            os.getpid(),
            _dump(metadata),
        )
        with self._open_lock:
            entry = self._open.get(run_id.value)
            if entry is not None:
                row = _merge(entry[0], row)
            self._open[run_id.value] = (row, 1 if entry is None else entry[1] + 1)
        self._writer.put((START, row))

    def finish(self, run_id: RunId, *, error: BaseException | None = None) -> None:
        """Record that ``run_id`` ended now, with ``error`` if one escaped (queued).

        While other entries of the same run are still open in this process, nothing is written:
        the run ends when its last entry (the outermost, when they nest) ends, with that entry's
        error. An error an inner entry raised and an outer one handled is not the run's.
        """
        _check(run_id, None, None)
        ended = time.time_ns() // 1000
        with self._open_lock:
            entry = self._open.pop(run_id.value, None)
            if entry is not None and entry[1] > 1:
                self._open[run_id.value] = (entry[0], entry[1] - 1)
                return
        if entry is not None:
            row = entry[0]
        else:
            parent = run_id.parent
            row = (run_id.value, None if parent is None else parent.value, run_id.root.value)
            row = (*row, "running", ended, None, None, None, None, None, _HOST, os.getpid(), "{}")
        status = "ok" if error is None else "error"
        duration = max(0.0, (ended - row[4]) / 1e6)
        end = (status, row[4], ended, duration, *row[7:9], _error(error))
        self._writer.put((FINISH, (*row[:3], *end, *row[10:])))

    def flush(self) -> None:
        """Wait until every write queued before this call is in the file (or has failed)."""
        self._writer.flush()

    def close(self) -> None:
        """Write what is queued, stop the writer thread and close every connection."""
        self._writer.stop()
        with self._readers_lock:
            readers = list(self._readers)
            self._local = threading.local()
        for reader in readers:
            reader.close()

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
            rows = self._query(f"SELECT {COLUMNS} FROM runs WHERE run_id = ?", (key,), timeout)
        else:
            rows = self._query(
                f"SELECT {COLUMNS} FROM runs WHERE run_id >= ? AND run_id < ? "
                f"ORDER BY run_id LIMIT {_CANDIDATES + 1}",
                (key, key + "g"),  # every id character sorts below "g"
                timeout,
            )
        if not rows:
            raise KeyError(f"no run {key!r} in the registry {str(self.path)!r}")
        if len(rows) > 1:
            raise AmbiguousRunError(key, [row[0] for row in rows[:_CANDIDATES]])
        return _record(rows[0])

    def find(
        self,
        *,
        status: Status | None = None,
        user_id: str | None = None,
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
        where: list[str] = []
        params: list[Any] = []
        for clause, value in (
            ("status = ?", "running" if stale else status),
            ("user_id = ?", user_id),
            ("started_at >= ?", None if since is None else to_micros(since)),
            ("started_at < ?", None if until is None else to_micros(until)),
            ("host = ?", _HOST if stale else None),
        ):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, run_id DESC"
        if not stale:
            return [_record(row) for row in self._query(f"{sql} LIMIT {limit}", params)]
        found: list[RunRecord] = []
        for row in self._query(sql, params):
            if not _alive(row[11]):
                found.append(_record(row))
                if len(found) == limit:
                    break
        return found

    def children(self, run: RunId | str) -> list[RunRecord]:
        """Return the runs whose parent is ``run``, in start order."""
        key = self._resolve(run)
        sql = f"SELECT {COLUMNS} FROM runs WHERE parent_id = ? ORDER BY started_at, run_id"
        return [_record(row) for row in self._query(sql, (key,))]

    def tree(self, run: RunId | str) -> list[RunRecord]:
        """Return ``run`` and all its descendants, depth first, children in start order.

        Raises KeyError when ``run`` itself is not in the registry.
        """
        top = self.get(run).run_id
        sql = (
            "WITH RECURSIVE tree (id) AS (SELECT ? UNION "
            "SELECT runs.run_id FROM runs JOIN tree ON runs.parent_id = tree.id) "
            f"SELECT {COLUMNS} FROM runs WHERE run_id IN tree"
        )
        return preorder((_record(row) for row in self._query(sql, (top,))), top)

    def _resolve(self, run: RunId | str) -> str:
        key, is_prefix = parse_run(run)
        return self.get(key).run_id if is_prefix else key

    def _query(self, sql: str, params: Any, timeout: float | None = None) -> list[Any]:
        self._writer.flush(timeout)
        conn = self._reader()
        return conn.execute(sql, params).fetchall()

    def _reader(self) -> sqlite3.Connection:
        local = self._local
        reader: _Reader | None = getattr(local, "reader", None)
        if reader is not None and (reader.pid, reader.inode) != (os.getpid(), file_id(self.path)):
            reader.close()  # another process's, or on a file deleted or replaced since
            reader = None
        if reader is None:
            reader = _Reader(self._connect(), file_id(self.path))
            with self._readers_lock:
                self._readers.add(reader)
            local.reader = reader
        return reader.conn


class _Reader:
    """One thread's read connection, closed with ``close()`` or when the thread ends."""

    __slots__ = ("__weakref__", "close", "conn", "inode", "pid")

    def __init__(self, conn: sqlite3.Connection, inode: tuple[int, int] | None) -> None:
        self.conn = conn
        self.inode = inode
        self.pid = os.getpid()
        self.close = weakref.finalize(self, conn.close)


def _check(run_id: object, user_id: object, task: object) -> None:
    if not isinstance(run_id, RunId):
        raise TypeError(f"run_id must be a RunId, got {type(run_id).__name__}")
    for what, value in (("user_id", user_id), ("task", task)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{what} must be a str or None, got {type(value).__name__}")


def _merge(first: tuple[Any, ...], later: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return the row of a run started again: the first start's, its gaps filled from the later.

    The same rule as the START statement's, for the row a finish may have to write whole.
    """
    parent, root = (later[1], later[2]) if first[1] is None else (first[1], first[2])
    user_id = later[7] if first[7] is None else first[7]
    task = later[8] if first[8] is None else first[8]
    metadata = later[12] if first[12] == "{}" else first[12]
    return (first[0], parent, root, *first[3:7], user_id, task, *first[9:12], metadata)


def _dump(metadata: Mapping[str, Any] | None) -> str:
    """Return the metadata as JSON text of at most MAX_METADATA characters; never raise.

    Metadata over the limit is replaced whole by a marker that gives its size (and keeps a
    short ``name``): a cut JSON text would not parse, and the marker says what happened.
    """
    if not metadata:
        return "{}"
    try:  # ensure_ascii (the default): a lone surrogate is written as an escape, storable
        text = json.dumps(dict(metadata), default=repr)
    except Exception:  # a cycle, keys that are not strings, nesting too deep, a failing repr
        try:
            shown = show_value(repr(metadata))
        except Exception:
            shown = f"<unprintable {type(metadata).__name__}>"
        text = json.dumps({"unrecorded": shown})
    if len(text) <= MAX_METADATA:
        return text
    marker: dict[str, Any] = {"metadata_cut": {"json_bytes": len(text), "limit": MAX_METADATA}}
    try:
        name = metadata.get("name")
    except Exception:
        name = None
    if isinstance(name, str) and len(name) <= _MAX_NAME:
        marker["name"] = name
    return json.dumps(marker)


def _error(error: BaseException | None) -> str | None:
    if error is None:
        return None
    try:
        message = str(error)
    except Exception:
        message = "<unprintable message>"
    text = f"{type(error).__qualname__}: {message}" if message else type(error).__qualname__
    return _text(text)


def _text(text: str | None) -> str | None:
    r"""Return ``text`` cut to _MAX_TEXT characters, and storable: a lone surrogate escaped.

    SQLite stores UTF-8, which has no lone surrogates ("bad \udcff", from a file name read with
    ``surrogateescape``): such a row would fail its whole batch. Cheap when the text is ASCII.
    """
    if text is None:
        return None
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT]
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")[:_MAX_TEXT]
    return text


def _record(row: Any) -> RunRecord:
    try:
        metadata = json.loads(row[12])
    except ValueError:
        metadata = {}
    return RunRecord(
        run_id=row[0],
        parent_id=row[1],
        root_id=row[2],
        status=row[3],
        started_at=from_micros(row[4]),  # type: ignore[arg-type]
        ended_at=from_micros(row[5]),
        duration=row[6],
        user_id=row[7],
        task=row[8],
        error=row[9],
        host=row[10],
        pid=row[11],
        metadata=metadata if isinstance(metadata, dict) else {},
    )


def _alive(pid: object) -> bool:
    """Return whether process ``pid`` of this host exists (True when that cannot be told)."""
    if sys.platform == "win32":
        return True
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, run by another user
        return True
    return True


_registries: weakref.WeakSet[SQLiteRunRegistry] = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    # The writer is a daemon thread: write what is queued before the interpreter stops it.
    for registry in list(_registries):
        with contextlib.suppress(Exception):  # never fail the interpreter's exit
            registry.flush()
