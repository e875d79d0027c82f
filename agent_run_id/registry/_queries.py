"""The statements that read runs back from the ``runs`` table, and the test for a stale run."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any

from ._record import to_micros
from ._rows import HOST
from ._schema import COLUMNS

__all__ = [
    "BY_EXTERNAL",
    "BY_ID",
    "BY_PREFIX",
    "CANDIDATES",
    "CHILDREN",
    "PRUNE",
    "PRUNE_BATCH",
    "PRUNE_EXTERNAL_IDS",
    "TREE",
    "alive",
    "externals_of",
    "find_query",
]

#: The most candidates an ambiguous prefix lists.
CANDIDATES = 10

#: The run with the id given.
BY_ID = f"SELECT {COLUMNS} FROM runs WHERE run_id = ?"
#: The runs whose id is at least the prefix given and below the bound given (the prefix and
#: "g": every id character sorts below "g"), one more than an ambiguous prefix lists.
BY_PREFIX = (
    f"SELECT {COLUMNS} FROM runs WHERE run_id >= ? AND run_id < ? "
    f"ORDER BY run_id LIMIT {CANDIDATES + 1}"
)
#: The runs that carry the external id given, of the system given (None: of any system),
#: newest first.
BY_EXTERNAL = (
    f"SELECT {', '.join('runs.' + c.strip() for c in COLUMNS.split(','))} FROM external_ids "
    "JOIN runs ON runs.run_id = external_ids.run_id WHERE external_ids.external_id = ?1 "
    "AND (?2 IS NULL OR external_ids.system = ?2) ORDER BY runs.started_at DESC, runs.run_id"
)


def externals_of(count: int) -> str:
    """Return the statement that reads the external ids of ``count`` runs given as parameters."""
    marks = ", ".join("?" * count)
    return f"SELECT run_id, system, external_id FROM external_ids WHERE run_id IN ({marks})"


#: How many runs retention deletes per transaction, so that writers wait for one batch at most.
PRUNE_BATCH = 10_000
# The oldest runs started before the time given (microseconds since the epoch), a batch of them:
# the same runs for both statements of a batch's transaction.
_OLDEST = "SELECT run_id FROM runs WHERE started_at < ?1 ORDER BY started_at, run_id LIMIT ?2"
#: Retention: delete a batch of the runs started before the time given (PRUNE_EXTERNAL_IDS
#: first, their external ids).
PRUNE = f"DELETE FROM runs WHERE run_id IN ({_OLDEST})"
PRUNE_EXTERNAL_IDS = f"DELETE FROM external_ids WHERE run_id IN ({_OLDEST})"
#: The runs whose parent is the run given, in start order.
CHILDREN = f"SELECT {COLUMNS} FROM runs WHERE parent_id = ? ORDER BY started_at, run_id"
#: The run given and all its descendants, in no order.
TREE = (
    "WITH RECURSIVE tree (id) AS (SELECT ? UNION "
    "SELECT runs.run_id FROM runs JOIN tree ON runs.parent_id = tree.id) "
    f"SELECT {COLUMNS} FROM runs WHERE run_id IN tree"
)


def find_query(
    status: str | None,
    user_id: str | None,
    session_id: str | None,
    since: datetime | None,
    until: datetime | None,
    stale: bool,
) -> tuple[str, list[Any]]:
    """Return the statement (without a limit) and its parameters for ``find``'s filters.

    Newest first. With ``stale``, the runs still running that were started on this host: the
    caller keeps those whose process is gone (``alive``).
    """
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("status = ?", "running" if stale else status),
        ("user_id = ?", user_id),
        ("session_id = ?", session_id),
        ("started_at >= ?", None if since is None else to_micros(since)),
        ("started_at < ?", None if until is None else to_micros(until)),
        ("host = ?", HOST if stale else None),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = f"SELECT {COLUMNS} FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, run_id DESC"
    return sql, params


def alive(pid: object) -> bool:
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
