"""The PostgreSQL registry's statements: the same writes and reads as SQLite's, in its dialect.

The registry puts the same writes on both backends, each named by its SQLite statement
(``START``, ``ANNOTATE``, ``FINISH``, ``EXTERNAL`` of ``_rows``) with the same row; ``WRITES``
gives each its PostgreSQL statement and the parameters it takes from that row. The rules are
SQLite's, clause for clause: the earliest start and the first facts kept, the gaps filled, the
latest annotation and end written (``tests/test_registry_backends.py`` holds both to them).
"""

from __future__ import annotations

from collections.abc import Callable

from . import _queries as queries
from ._rows import ANNOTATE, EXTERNAL, FINISH, START, Row
from ._schema import COLUMNS

__all__ = [
    "BY_EXTERNAL",
    "BY_ID",
    "BY_PREFIX",
    "CHILDREN",
    "EXTERNALS_OF",
    "PRUNE",
    "TREE",
    "WRITES",
    "WRITES_AS_ARRAYS",
    "dialect",
]

_VALUES = ", ".join(["%s"] * len(COLUMNS.split(",")))
_INSERT = f"INSERT INTO runs ({COLUMNS}) VALUES ({_VALUES}) ON CONFLICT (run_id) DO UPDATE SET "
# The same insert of many rows at once, each column given as one array (rows of distinct runs:
# one statement cannot update a row twice).
_TYPES = ("text",) * 4 + ("int8", "int8", "float8") + ("text",) * 4 + ("int4", "text", "text")
_ARRAYS = ", ".join(f"%s::{name}[]" for name in _TYPES)
_INSERT_MANY = (
    f"INSERT INTO runs ({COLUMNS}) SELECT * FROM unnest({_ARRAYS}) "
    "ON CONFLICT (run_id) DO UPDATE SET "
)

_START = _INSERT + (
    "parent_id = COALESCE(runs.parent_id, EXCLUDED.parent_id),"
    " root_id = CASE WHEN runs.parent_id IS NULL THEN EXCLUDED.root_id ELSE runs.root_id END,"
    " status = EXCLUDED.status, started_at = LEAST(runs.started_at, EXCLUDED.started_at),"
    " ended_at = NULL, duration = NULL,"
    " user_id = COALESCE(runs.user_id, EXCLUDED.user_id),"
    " task = COALESCE(runs.task, EXCLUDED.task), error = NULL,"
    " host = CASE WHEN runs.status = 'running' THEN runs.host ELSE EXCLUDED.host END,"
    " pid = CASE WHEN runs.status = 'running' THEN runs.pid ELSE EXCLUDED.pid END,"
    " metadata = CASE WHEN runs.metadata = '{}' THEN EXCLUDED.metadata ELSE runs.metadata END,"
    " session_id = COALESCE(runs.session_id, EXCLUDED.session_id)"
)
_START_MANY = _INSERT_MANY + _START.split(" DO UPDATE SET ", 1)[1]
_ANNOTATE = (
    "UPDATE runs SET user_id = COALESCE(%s, user_id), task = COALESCE(%s, task),"
    " metadata = CASE WHEN %s::text = '{}' THEN metadata ELSE %s END,"
    " session_id = COALESCE(%s, session_id) WHERE run_id = %s"
)
_FINISH = _INSERT + (
    "status = EXCLUDED.status, ended_at = EXCLUDED.ended_at,"
    " duration = GREATEST(0.0, (EXCLUDED.ended_at - runs.started_at) / 1e6),"
    " error = EXCLUDED.error"
)
_FINISH_MANY = _INSERT_MANY + _FINISH.split(" DO UPDATE SET ", 1)[1]
# The run's id of that system replaces its earlier one (deleted where it differs: the insert's
# conflict, another run's row moved here, never meets a row the same statement deletes).
_EXTERNAL = (
    "WITH earlier AS (DELETE FROM external_ids WHERE run_id = %s AND system = %s"
    " AND external_id <> %s)"
    " INSERT INTO external_ids (external_id, system, run_id) VALUES (%s, %s, %s)"
    " ON CONFLICT (external_id, system) DO UPDATE SET run_id = EXCLUDED.run_id"
)


def _whole(row: Row) -> Row:
    return row


def _external(row: Row) -> Row:
    return (row[2], row[1], row[0], row[0], row[1], row[2])


def _annotation(row: Row) -> Row:
    return (row[7], row[8], row[12], row[12], row[13], row[0])


#: Each write the registry puts (named by its SQLite statement): PostgreSQL's statement, and
#: the parameters it takes from the write's row.
WRITES: dict[str, tuple[str, Callable[[Row], Row]]] = {
    START: (_START, _whole),
    ANNOTATE: (_ANNOTATE, _annotation),
    FINISH: (_FINISH, _whole),
    EXTERNAL: (_EXTERNAL, _external),
}


#: The writes of distinct runs that may go as one statement: each column as one array.
WRITES_AS_ARRAYS: dict[str, str] = {START: _START_MANY, FINISH: _FINISH_MANY}


def dialect(statement: str) -> str:
    """Return a read of ``_queries`` (``?`` parameters) with PostgreSQL's ``%s`` instead."""
    return statement.replace("?", "%s")


_QUALIFIED = ", ".join(f"runs.{column.strip()}" for column in COLUMNS.split(","))

# The reads SQLite's statements say as PostgreSQL does, taken from them: one text each.
BY_ID = dialect(queries.BY_ID)
BY_PREFIX = dialect(queries.BY_PREFIX)
CHILDREN = dialect(queries.CHILDREN)
#: The run given and all its descendants, in no order.
TREE = (
    'WITH RECURSIVE tree (id) AS (SELECT %s::text COLLATE "C" UNION '
    "SELECT runs.run_id FROM runs JOIN tree ON runs.parent_id = tree.id) "
    f"SELECT {COLUMNS} FROM runs WHERE run_id IN (SELECT id FROM tree)"
)
#: The runs that carry the external id given, of the system given (None: of any), newest first.
BY_EXTERNAL = (
    f"SELECT {_QUALIFIED} FROM external_ids JOIN runs ON runs.run_id = external_ids.run_id "
    "WHERE external_ids.external_id = %(id)s "
    "AND (%(system)s::text IS NULL OR external_ids.system = %(system)s) "
    "ORDER BY runs.started_at DESC, runs.run_id"
)
#: The external ids of the runs given as one array.
EXTERNALS_OF = "SELECT run_id, system, external_id FROM external_ids WHERE run_id = ANY(%s)"
#: Delete the runs that started before the time given, at most a batch of them; their
#: external ids go with them.
PRUNE = (
    "WITH gone AS (DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs "
    "WHERE started_at < %s LIMIT %s) RETURNING run_id), "
    "externals AS (DELETE FROM external_ids WHERE run_id IN (SELECT run_id FROM gone)) "
    "SELECT count(*) FROM gone"
)
