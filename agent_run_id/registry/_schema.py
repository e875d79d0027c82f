"""The SQLite registry's schema, its migrations, and how a connection is opened."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

__all__ = ["COLUMNS", "SCHEMA_VERSION", "SchemaError", "connect", "connect_read_only", "file_id"]

COLUMNS = (
    "run_id, parent_id, root_id, status, started_at, ended_at, duration, "
    "user_id, task, error, host, pid, metadata, session_id"
)

# MIGRATIONS[n] takes a database from schema version n to n + 1 (PRAGMA user_version; a new
# file is version 0). Add a step at the end for each change; never edit a released step.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            parent_id TEXT,
            root_id TEXT NOT NULL,
            status TEXT NOT NULL,
            started_at INTEGER NOT NULL,
            ended_at INTEGER,
            duration REAL,
            user_id TEXT,
            task TEXT,
            error TEXT,
            host TEXT,
            pid INTEGER,
            metadata TEXT NOT NULL DEFAULT '{}'
        ) WITHOUT ROWID""",
        "CREATE INDEX runs_started_at ON runs (started_at)",
        "CREATE INDEX runs_parent_id ON runs (parent_id)",
        "CREATE INDEX runs_root_id ON runs (root_id)",
    ),
    (  # 1 -> 2: the run's session (conversation, thread); finding a user's and a session's runs
        "ALTER TABLE runs ADD COLUMN session_id TEXT",
        "CREATE INDEX runs_session_id ON runs (session_id, started_at)",
        "CREATE INDEX runs_user_id ON runs (user_id, started_at)",
    ),
    (  # 2 -> 3: the ids other systems gave a run (a LangSmith run, an OpenAI trace), found by
        # id: one run per id of a system, one id per system of a run
        """CREATE TABLE external_ids (
            external_id TEXT NOT NULL,
            system TEXT NOT NULL,
            run_id TEXT NOT NULL,
            PRIMARY KEY (external_id, system)
        ) WITHOUT ROWID""",
        "CREATE UNIQUE INDEX external_ids_run_id ON external_ids (run_id, system)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(sqlite3.DatabaseError):
    """The database was written by a newer agent-run-id, with a schema this one does not know."""


def connect(path: Path, timeout: float) -> sqlite3.Connection:
    """Open ``path`` (creating it and its folder), in WAL mode, migrated to the current schema."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are begun and ended here, explicitly.
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    try:
        # WAL lets readers go on while one process writes; NORMAL sync is durable against a
        # crash of the process (not of the machine) and spares an fsync per transaction.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def file_id(path: Path) -> tuple[int, int] | None:
    """Return the identity of the file at ``path`` (device, inode), or None when there is none.

    A connection opened on a file that has since been deleted or replaced goes on using the old
    file, which nobody else sees: compare this before using a connection, and reopen.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)


def connect_read_only(path: Path, timeout: float) -> sqlite3.Connection:
    """Open the registry at ``path`` for reading only: nothing in the file is created or changed.

    Raises sqlite3.DatabaseError when the file is not a run registry (it has no ``runs`` table),
    SchemaError when its schema is newer, and sqlite3.OperationalError when it cannot be opened.
    """
    # A URI, so that mode=ro applies; as_uri quotes the characters a URI gives a meaning to.
    uri = f"{path.resolve().as_uri()}?mode=ro"
    conn = sqlite3.connect(
        uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
    )
    try:
        _version(conn)
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'runs'"
        ).fetchone()
        if found is None:
            raise sqlite3.DatabaseError("not a run registry (it has no runs table)")
    except BaseException:
        conn.close()
        raise
    return conn


def _version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"the run registry database has schema version {version}, newer than this "
            f"agent-run-id knows ({SCHEMA_VERSION}): upgrade agent-run-id"
        )
    return version


def _migrate(conn: sqlite3.Connection) -> None:
    if _version(conn) == SCHEMA_VERSION:
        return
    # IMMEDIATE takes the write lock first, so two processes opening a new file migrate it once.
    conn.execute("BEGIN IMMEDIATE")
    try:
        for step in MIGRATIONS[_version(conn) :]:
            for statement in step:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
