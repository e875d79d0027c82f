"""The run registry as the command reads it: found by ``--db`` or ``$AGENT_RUN_ID_DB``, read-only.

Either names a SQLite file or a PostgreSQL database (a ``postgresql://`` URL: the ``postgres``
extra), read alike. The command never creates, migrates or writes the file (or the tables),
but for ``runs prune``, which deletes the old runs. A file of an older schema is read as
it is: the columns it lacks read as empty (a schema-1 file, written before sessions, has no
``session_id``), in a view of the connection's own (a ``TEMP`` view, which writes nothing to
the file) that stands in for the table; a file before schema 3 has no external ids, and an
empty ``TEMP`` table stands in for theirs.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import TYPE_CHECKING

from agent_run_id._optional import install_command
from agent_run_id.registry import SQLiteRunRegistry
from agent_run_id.registry._open import check_not_conninfo, is_dsn
from agent_run_id.registry._schema import connect_read_only

from ._errors import UsageError

if TYPE_CHECKING:
    from agent_run_id.registry._buffered import BufferedRunRegistry

__all__ = [
    "ENV_DB",
    "ReadOnlyRegistry",
    "open_registry",
    "read_errors",
    "registry_path",
    "shown_registry",
]

#: The environment variable naming the registry when ``--db`` is not given.
ENV_DB = "AGENT_RUN_ID_DB"
# The columns added since schema 1, each read as NULL from a file that has not got it yet.
_ADDED = ("session_id",)


class ReadOnlyRegistry(SQLiteRunRegistry):
    """The registry as the command reads it: never created, migrated or written to."""

    def open_reader(self) -> sqlite3.Connection:
        """Open the database read-only, an older schema seen through a view of today's."""
        conn = connect_read_only(self.path, self.timeout)
        try:
            have = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
            missing = [name for name in _ADDED if name not in have]
            if missing:
                added = ", ".join(f"NULL AS {name}" for name in missing)
                # A TEMP view lives in the connection's own temporary database, searched before
                # the file's: every query of the registry reads it instead of main.runs.
                conn.execute(f"CREATE TEMP VIEW runs AS SELECT *, {added} FROM main.runs")
            tables = {row[0] for row in conn.execute("SELECT name FROM main.sqlite_master")}
            if "external_ids" not in tables:  # before schema 3: an empty one of its own
                conn.execute(
                    "CREATE TEMP TABLE external_ids "
                    "(external_id TEXT, system TEXT, run_id TEXT, "
                    "PRIMARY KEY (external_id, system))"
                )
        except BaseException:
            conn.close()
            raise
        return conn


def registry_path(option: str | None) -> str | None:
    """Return the registry's path: ``--db``'s value, else ``$AGENT_RUN_ID_DB``, else None."""
    return option or os.environ.get(ENV_DB) or None


def open_registry(path: str | None) -> BufferedRunRegistry:
    """Return the registry ``path`` names (see ``registry_path``) to read only, or raise UsageError.

    ``path`` is a SQLite file's path, or a ``postgresql://`` URL (nothing is connected yet).
    """
    if not path:
        raise UsageError(f"no registry database: give --db PATH or set ${ENV_DB}")
    if is_dsn(path):
        try:
            from agent_run_id.registry._postgres_read_only import ReadOnlyPostgresRegistry
        except ImportError:
            raise UsageError(
                f"a postgresql:// registry needs the psycopg package: {install_command('postgres')}"
            ) from None
        try:
            return ReadOnlyPostgresRegistry(path.strip())
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if not os.path.isfile(path):
        try:
            check_not_conninfo(path)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        raise UsageError(f"no registry database at {path}")
    return ReadOnlyRegistry(path)


def shown_registry(path: str) -> str:
    """Return the name of a registry opened (``open_registry``) to print: a URL, no password."""
    if not is_dsn(path):
        return path
    from agent_run_id.registry._postgres_schema import show_dsn  # opened: psycopg is there

    return show_dsn(path.strip())


def read_errors() -> tuple[type[BaseException], ...]:
    """Return the errors that mean the registry cannot be read: SQLite's, and psycopg's.

    psycopg's only once it is imported, as it is for a PostgreSQL registry: never otherwise.
    """
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)
