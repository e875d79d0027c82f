"""The PostgreSQL registry's tables, their migrations, and how a connection is opened.

The schema is versioned in a table of its own, ``agent_run_id_schema`` (one row, the version),
and migrated in place when a registry connects, inside one transaction that holds an advisory
lock: the first of many workers starting at once against an empty database creates the tables,
the others wait for it and find them made.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg import sql

from ._schema import SchemaError

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "check_schema_name",
    "connect",
    "migrate",
    "read_version",
    "show_dsn",
]

# MIGRATIONS[n] takes a database from version n to n + 1 (an empty database is version 0). Add
# a step at the end for each change; never edit a released step. Ids are compared in the "C"
# collation, byte by byte, so that a prefix's range and the order of ids are SQLite's.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 0 -> 1: the first published schema
        """CREATE TABLE runs (
            run_id TEXT COLLATE "C" PRIMARY KEY,
            parent_id TEXT COLLATE "C",
            root_id TEXT COLLATE "C" NOT NULL,
            status TEXT NOT NULL,
            started_at BIGINT NOT NULL,
            ended_at BIGINT,
            duration DOUBLE PRECISION,
            user_id TEXT,
            task TEXT,
            error TEXT,
            host TEXT,
            pid INTEGER,
            metadata TEXT NOT NULL DEFAULT '{}',
            session_id TEXT
        )""",
        "CREATE INDEX runs_started_at ON runs (started_at)",
        "CREATE INDEX runs_parent_id ON runs (parent_id)",
        "CREATE INDEX runs_root_id ON runs (root_id)",
        "CREATE INDEX runs_session_id ON runs (session_id, started_at)",
        "CREATE INDEX runs_user_id ON runs (user_id, started_at)",
    ),
    (  # 1 -> 2: the ids other systems gave a run (a LangSmith run, an OpenAI trace), found by id
        """CREATE TABLE external_ids (
            external_id TEXT NOT NULL,
            system TEXT NOT NULL,
            run_id TEXT COLLATE "C" NOT NULL,
            PRIMARY KEY (external_id, system)
        )""",
        # A run's id of a system is found (and replaced) by the run and the system.
        "CREATE INDEX external_ids_run_id ON external_ids (run_id, system)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_VERSION_TABLE = "agent_run_id_schema"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# The advisory lock that serializes migrations of one schema: a fixed key of this library, and
# the schema's name (hashed by the server).
_LOCK_KEY = 0x61726964  # "arid"


def check_schema_name(schema: object) -> str | None:
    """Return ``schema`` checked: None, or a plain SQL name; raise naming the argument."""
    if schema is None:
        return None
    if not isinstance(schema, str):
        raise TypeError(f"schema must be a str or None, got {type(schema).__name__}")
    if not _NAME.fullmatch(schema):
        raise ValueError(
            f"schema must be a plain SQL name (letters, digits, _; at most 63), got "
            f"{schema[:70]!r}: e.g. schema='agent_runs'"
        )
    return schema


def show_dsn(dsn: str) -> str:
    """Return the DSN (one that parses) without its password, to show in a log or an error."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    user = params.get("user")
    host = params.get("host") or "localhost"
    port = params.get("port")
    name = params.get("dbname") or ""
    where = f"{host}:{port}" if port else f"{host}"
    return f"postgresql://{f'{user}@' if user else ''}{where}/{name}"


def connect(
    dsn: str,
    schema: str | None,
    *,
    connect_timeout: float,
    statement_timeout: float,
    migrate_schema: bool = True,
    settings: Mapping[str, Any] | None = None,
) -> psycopg.Connection[Any]:
    """Open a connection (autocommit, transactions begun explicitly) and migrate the schema.

    TCP keepalives and ``statement_timeout`` make a server that stops answering an error after a
    while rather than a thread blocked for good.
    """
    extra = dict(settings or {})
    if "options" in extra:  # added to the DSN's own options, never in their place
        given = psycopg.conninfo.conninfo_to_dict(dsn).get("options")
        if given:
            extra["options"] = f"{given} {extra['options']}"
    conn = psycopg.connect(
        dsn,
        autocommit=True,
        connect_timeout=max(1, round(connect_timeout)),
        application_name="agent-run-id",
        keepalives=1,
        keepalives_idle=10,
        keepalives_interval=5,
        keepalives_count=3,
        **extra,
    )
    try:
        conn.execute(
            "SELECT set_config('statement_timeout', %s, false)",
            (f"{round(statement_timeout * 1000)}ms",),
        )
        if migrate_schema:
            migrate(conn, schema)
        if schema is not None:
            conn.execute(
                "SELECT set_config('search_path', %s, false)",
                (sql.Identifier(schema).as_string(conn),),
            )
    except BaseException:
        conn.close()
        raise
    return conn


def read_version(conn: psycopg.Connection[Any], schema: str | None) -> int | None:
    """Return the schema version of ``schema`` (None: the search path's), None without tables.

    The catalog is read with a query, whose snapshot sees what another worker committed while
    this one waited for the migration lock (``to_regclass`` may not, in the same transaction).
    """
    found = conn.execute(
        "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
        "ON n.oid = c.relnamespace WHERE c.relname = %s "
        "AND n.nspname = COALESCE(%s, current_schema())",
        (_VERSION_TABLE, schema),
    ).fetchone()
    if found is None:
        return None
    table = _qualified(schema, _VERSION_TABLE)
    row = conn.execute(sql.SQL("SELECT version FROM {}").format(table)).fetchone()
    return 0 if row is None else int(row[0])


def migrate(conn: psycopg.Connection[Any], schema: str | None) -> None:
    """Bring ``schema`` to SCHEMA_VERSION, once however many workers start at once.

    Raises SchemaError when the database was made by a newer agent-run-id.
    """
    version = read_version(conn, schema)
    if version == SCHEMA_VERSION:
        return
    _check_version(version)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_KEY, schema or ""))
        if schema is not None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            conn.execute(
                "SELECT set_config('search_path', %s, true)",
                (sql.Identifier(schema).as_string(conn),),
            )
        version = read_version(conn, schema)  # another worker may have migrated meanwhile
        _check_version(version)
        if version is None:
            conn.execute(
                sql.SQL("CREATE TABLE {} (version INTEGER NOT NULL)").format(
                    _qualified(schema, _VERSION_TABLE)
                )
            )
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (0)").format(_qualified(schema, _VERSION_TABLE))
            )
            version = 0
        for step in MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        conn.execute(
            sql.SQL("UPDATE {} SET version = %s").format(_qualified(schema, _VERSION_TABLE)),
            (SCHEMA_VERSION,),
        )


def _check_version(version: int | None) -> None:
    if version is not None and version > SCHEMA_VERSION:
        raise SchemaError(
            f"the run registry database has schema version {version}, newer than this "
            f"agent-run-id knows ({SCHEMA_VERSION}): upgrade agent-run-id"
        )


def _qualified(schema: str | None, name: str) -> sql.Composable:
    if schema is None:
        return sql.Identifier(name)
    return sql.Identifier(schema, name)
