"""The PostgreSQL registry as the ``agent-run-id`` command reads it: never made, migrated, written.

The tables of an older schema are read as they are: before version 2 there are no external ids,
and the runs read back have none.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from ._postgres import PostgresRunRegistry
from ._postgres_schema import SCHEMA_VERSION, connect, read_version
from ._schema import SchemaError

__all__ = ["NotARegistry", "ReadOnlyPostgresRegistry"]


class NotARegistry(psycopg.ProgrammingError):
    """The database (or its schema) has no run registry's tables."""


class ReadOnlyPostgresRegistry(PostgresRunRegistry):
    """Read a PostgreSQL registry in read-only sessions; never connect before the first read."""

    connect_at_once = False
    _version = SCHEMA_VERSION

    def open_reader(self) -> psycopg.Connection[Any]:
        """Open a read-only session on the registry's tables, as they are.

        Raises NotARegistry when there are none, SchemaError when they are newer than this
        agent-run-id knows.
        """
        conn = connect(
            self.dsn,
            self.schema,
            connect_timeout=self.connect_timeout,
            statement_timeout=self.statement_timeout,
            migrate_schema=False,
            settings={"options": "-c default_transaction_read_only=on"},
        )
        try:
            version = read_version(conn, self.schema)
            if version is None:
                raise NotARegistry("not a run registry (it has no agent_run_id_schema table)")
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"the run registry database has schema version {version}, newer than this "
                    f"agent-run-id knows ({SCHEMA_VERSION}): upgrade agent-run-id"
                )
            self._version = version
        except BaseException:
            conn.close()
            raise
        return conn

    def _externals(self, run_ids: list[str]) -> Iterable[tuple[str, str, str]]:
        return [] if self._version < 2 else super()._externals(run_ids)

    def _by_external(self, external_id: str, system: str | None) -> list[Any]:
        # The version is known once a read has connected: make sure one has.
        self._fetch("SELECT 1", None)
        return [] if self._version < 2 else super()._by_external(external_id, system)
