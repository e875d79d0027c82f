"""PostgresRunRegistry: the run registry in PostgreSQL, for a fleet of workers on many hosts.

The same registry as SQLite's (``_buffered`` holds the rules both follow, ``_writer`` the one
writer thread), on psycopg 3: the statements in ``_postgres_sql``, the tables and their
migrations in ``_postgres_schema``, a batch's transaction in ``_postgres_batch``, the read
connection in ``_postgres_reader``.
"""

from __future__ import annotations

try:
    import psycopg
except ImportError as exc:  # pragma: no cover - the tests run with the extra installed
    from agent_run_id._optional import missing_extra

    raise missing_extra(
        "registry.PostgresRunRegistry", "psycopg", "postgres", alone='"psycopg[binary]"'
    ) from exc

import functools
from collections.abc import Iterable
from typing import Any

from ._buffered import BufferedRunRegistry, Statements, check_budget
from ._postgres_batch import PostgresBatches
from ._postgres_reader import Reader
from ._postgres_schema import check_schema_name, connect, show_dsn
from ._postgres_sql import (
    BY_EXTERNAL,
    BY_ID,
    BY_PREFIX,
    CHILDREN,
    EXTERNALS_OF,
    PRUNE,
    TREE,
    dialect,
)
from ._queries import PRUNE_BATCH
from ._schema import SchemaError
from ._writer import Writer

__all__ = ["PostgresRunRegistry"]


def _seconds(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0  # NaN too
        or value == float("inf")
    ):
        raise ValueError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


class PostgresRunRegistry(BufferedRunRegistry):
    """Record runs in a PostgreSQL database, from many processes on many hosts at once.

    The same registry as :class:`SQLiteRunRegistry`, with the same rules, for a fleet:
    ``start`` and ``finish`` cost the agent a queue put, and the registry's writer thread (one
    per registry object, in each process that records) writes them in batches, one
    transaction each. Reads first wait for the writes queued before them.

    A database that is down, slow or refusing never breaks or slows a run: making the registry
    never raises for it (it connects in the background, and says once in the log when it
    cannot), failed writes are kept (within ``max_pending`` writes and ``max_pending_bytes``
    bytes) and written once the database is back (tried again every second), and ``close()``
    returns within ``close_timeout`` seconds (and half a second) even when the database never
    answers; the writes it could not write by then are lost, and one warning says how many. A
    forked child (gunicorn, Celery prefork) never uses its parent's connections.

    The tables are made, and migrated in place, by the first registry to connect (``schema``:
    in that PostgreSQL schema, made if needed; by default the first of the search path).

    Args:
        dsn: the database, as a URL (``postgresql://user:password@host:5432/dbname``) or
            libpq's ``key=value`` form. Never shown with its password.
        schema: the PostgreSQL schema of the registry's tables (a plain name), None: the
            search path's first (``public``).
        connect_timeout: seconds to wait for a connection.
        statement_timeout: seconds a statement may take on the server before it is cancelled
            (a failure: the writes are kept and tried again).
        close_timeout: seconds ``close()`` (and the interpreter's exit) waits for the writes
            queued, retrying a failing database meanwhile.
        max_pending: how many failed writes to keep for retrying; the oldest go beyond it.
        max_pending_bytes: the memory the writes waiting may hold, in bytes (64 MiB, at least
            1 MiB), as for SQLite.

    Example::

        registry = PostgresRunRegistry("postgresql://agent@db.internal/agents")
        with RunContext(registry=registry, user_id="u-42", task="summarize the report"):
            ...
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        connect_timeout: float = 5.0,
        statement_timeout: float = 10.0,
        close_timeout: float = 5.0,
        max_pending: int = 100_000,
        max_pending_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if not isinstance(dsn, str):
            raise TypeError(f"dsn must be a str, got {type(dsn).__name__}")
        try:
            psycopg.conninfo.conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise ValueError(
                "dsn is not a PostgreSQL connection string: give "
                "postgresql://user:password@host:5432/dbname or 'host=... dbname=...'"
            ) from None
        self.schema = check_schema_name(schema)
        self.connect_timeout = _seconds("connect_timeout", connect_timeout)
        self.statement_timeout = _seconds("statement_timeout", statement_timeout)
        self.close_timeout = _seconds("close_timeout", close_timeout)
        self.exit_timeout = self.close_timeout
        check_budget(max_pending, max_pending_bytes)
        super().__init__()
        self.dsn = dsn
        where = show_dsn(dsn) + ("" if schema is None else f" (schema {schema})")
        self._where = where
        opener = functools.partial(
            connect,
            dsn,
            self.schema,
            connect_timeout=self.connect_timeout,
            statement_timeout=self.statement_timeout,
        )
        # Neither holds the registry: dropping the registry stops its writer thread.
        self._writer = Writer(
            where,
            functools.partial(PostgresBatches, opener, where),
            max_pending,
            max_pending_bytes,
            errors=(psycopg.Error, OSError, SchemaError),
            retry=1.0,
        )
        self._opener = opener
        self._statements = Statements(BY_ID, BY_PREFIX, CHILDREN, TREE)
        self._reader = Reader(self.open_reader)
        self._buffering()
        if self.connect_at_once:
            self._writer.warm()

    #: Connect (and make the tables) in the background as soon as the registry is made.
    connect_at_once = True

    def __repr__(self) -> str:
        return f"PostgresRunRegistry({self._where!r})"

    @property
    def where(self) -> str:
        """The database, as errors and log lines name it: its URL without the password."""
        return self._where

    def open_reader(self) -> psycopg.Connection[Any]:
        """Open the connection reads use; a subclass may open it read-only.

        The ``agent-run-id`` command's registry does: it never creates, migrates or writes.
        """
        return self._opener()

    def close(self) -> None:
        """Write what is queued (``close_timeout`` seconds at most), stop the writer thread.

        While the database refuses or fails, the writes are tried again every second until
        ``close_timeout`` runs out; those still held then are lost, and one warning says how
        many. When the database does not answer at all, the writer thread ends after its last
        attempt, in the background; one warning says so.
        """
        self._writer.stop(self.close_timeout)
        self._reader.close()

    # -- what a backend gives ------------------------------------------------------------------

    def _dialect(self, statement: str) -> str:
        return dialect(statement)

    def _fetch(self, sql: str, params: Any) -> list[Any]:
        return self._reader.fetch(sql, params)

    def _externals(self, run_ids: list[str]) -> Iterable[tuple[str, str, str]]:
        return self._reader.fetch(EXTERNALS_OF, (run_ids,))

    def _by_external(self, external_id: str, system: str | None) -> list[Any]:
        return self._reader.fetch(BY_EXTERNAL, {"id": external_id, "system": system})

    def _delete_before(self, micros: int) -> int:
        deleted = 0
        with self._opener() as conn:
            while True:
                row = conn.execute(PRUNE, (micros, PRUNE_BATCH)).fetchone()
                count = 0 if row is None else int(row[0])
                deleted += count
                if count < PRUNE_BATCH:
                    return deleted
