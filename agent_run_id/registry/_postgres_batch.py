"""Writing one batch of the registry's writes to PostgreSQL, in one transaction.

The connection is opened (and the schema migrated) at the first batch, or at once for a
registry just made (``open``), and again after a failure: the writer closes it then, so that a
server restarted, a connection the server ended, is reconnected at the next attempt. After a
fork, the child never touches its parent's connection: the child's writer makes a batch writer
of its own, and the parent's connections are kept, unused, so that nothing closes them from
the child (a close would end the parent's session).
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from ._backlog import Held
from ._postgres_sql import WRITES, WRITES_AS_ARRAYS
from ._rows import ANNOTATE, EXTERNAL, FINISH, START, Row

__all__ = ["PostgresBatches", "inherited"]

_log = logging.getLogger("agent_run_id.registry")

#: Connections a forked child inherited from its parent: never used, never closed in the child.
inherited: list[Any] = []
_live: weakref.WeakSet[PostgresBatches] = weakref.WeakSet()


def _after_fork() -> None:  # pragma: no cover - runs in a forked child, not collected
    for batches in list(_live):
        conn, batches.conn = batches.conn, None
        if conn is not None:
            inherited.append(conn)


if hasattr(os, "register_at_fork"):  # pragma: no branch - every POSIX system has it
    os.register_at_fork(after_in_child=_after_fork)


class PostgresBatches:
    """Write batches on one connection opened with ``connect``; used from the writer thread."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], where: str) -> None:
        self._connect = connect
        self._where = where
        self.conn: psycopg.Connection[Any] | None = None
        _live.add(self)

    def open(self) -> None:
        """Connect (and migrate the schema) now, if not connected."""
        self._connection()

    def write(self, batch: list[Held]) -> None:
        """Write one batch in one transaction.

        Raises psycopg.Error or OSError when the database fails (nothing of the batch is
        written then). A write the server or the driver refuses for itself (a value out of
        range, a bug upstream) is dropped alone, with one warning; the others are written.
        """
        conn = self._connection()
        try:
            with conn.transaction():
                _execute(conn, batch)
        except psycopg.DataError:
            self._each(conn, batch)
        except (psycopg.Error, OSError):
            raise
        except Exception:
            self._each(conn, batch)

    def close(self) -> None:
        """Close the connection, if open; the next batch opens it again."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                conn.close()

    def _each(self, conn: psycopg.Connection[Any], batch: list[Held]) -> None:
        """Write the batch write by write, each in a savepoint, dropping those refused."""
        bad: list[BaseException] = []
        with conn.transaction():
            for held in batch:
                try:
                    with conn.transaction():
                        _execute(conn, [held])
                except psycopg.DataError as exc:
                    bad.append(exc)
                except (psycopg.Error, OSError):
                    raise  # the database is failing, not the write: keep them all
                except Exception as exc:
                    bad.append(exc)
        if bad:
            _log.warning(
                "run registry %s: %d of %d writes dropped, refused by the database "
                "(%s: %s); the others are written",
                self._where,
                len(bad),
                len(batch),
                type(bad[0]).__name__,
                bad[0],
            )

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self.conn
        if conn is None:  # the first batch, or the one after a failure (the writer closed it)
            conn = self.conn = self._connect()
        return conn


def _execute(conn: psycopg.Connection[Any], ops: list[Held]) -> None:
    """Run the writes in one pipeline (sent together, not one round trip each), grouped.

    A run's start and end alternate in a batch (start, end, start, ...); sending each kind as
    one statement (the starts, or the ends, of distinct runs as columns of arrays; else one
    ``executemany``) costs the writer half as much. Grouping keeps every run's writes in
    their order: a segment ends where a run's write would go before one of its earlier kind
    (a run ended and started again, in one batch), and writes of one kind keep theirs.
    """
    cursor = conn.cursor()
    with conn.pipeline():
        for segment in _segments(ops):
            for kind in _ORDER:
                group = segment.get(kind)
                if not group:
                    continue
                arrays = WRITES_AS_ARRAYS.get(kind)
                if (
                    arrays is not None
                    and len(group) >= _ARRAYS_FROM
                    and len({r[0] for r in group}) == len(group)
                ):
                    # Starts (or ends) of distinct runs: one statement, the columns as arrays.
                    cursor.execute(arrays, [list(column) for column in zip(*group, strict=True)])
                else:
                    statement, take = WRITES[kind]
                    cursor.executemany(statement, [take(params) for params in group])


# The fewest writes of a kind sent as arrays: below it, planning the arrays' statement costs
# more than it saves.
_ARRAYS_FROM = 64
# The order of a segment's groups, and each kind's place in a run's life.
_ORDER = (START, ANNOTATE, EXTERNAL, FINISH)
_PHASE = {START: 0, ANNOTATE: 1, EXTERNAL: 1, FINISH: 2}


def _segments(ops: list[Held]) -> Iterator[dict[str, list[Row]]]:
    """Split the writes where grouping them by kind would reorder a run's own writes."""
    segment: dict[str, list[Row]] = {}
    phases: dict[str, int] = {}  # each run's latest phase in the segment
    for kind, params, _, _ in ops:
        phase = _PHASE[kind]  # a write of no known kind: KeyError, dropped alone
        run = params[2] if kind is EXTERNAL else params[0]
        if phases.get(run, -1) > phase:
            yield segment
            segment, phases = {}, {}
        phases[run] = phase
        segment.setdefault(kind, []).append(params)
    yield segment
