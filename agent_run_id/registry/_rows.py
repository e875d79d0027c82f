"""A run's row in the ``runs`` table: the rows a start and a finish write, and a row read back.

The order of the columns (``COLUMNS`` in ``_schema``) is known here and nowhere else in the
registry: the statements that write a row, the rows ``start`` and ``finish`` give them, the rule
that merges a run started again, and the RunRecord made of a row read back.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Mapping
from typing import Any

from agent_run_id._external import check_external_ids
from agent_run_id._run_id import RunId

from ._limits import cut_text, dump_metadata, error_text
from ._record import RunRecord, from_micros

__all__ = [
    "ANNOTATE",
    "EXTERNAL",
    "FINISH",
    "HOST",
    "START",
    "Row",
    "annotated_row",
    "check_args",
    "external_rows",
    "finish_row",
    "merge_rows",
    "start_row",
    "to_record",
]

#: The name of this host, as rows record it.
HOST = socket.gethostname()

#: A row's values, in the order of the table's columns.
Row = tuple[Any, ...]

# A start of a run already in the file (entered again, or continued by another service or process)
# never clobbers it: the earliest start and the first user, task and metadata given are kept
# (later ones only fill what is missing); the run is running again until the next end is written.
# A finish adds the end to the row, or writes the whole row when the start never reached this
# file (the file was deleted or replaced in between).
START = (
    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id) DO UPDATE"
    " SET parent_id = COALESCE(runs.parent_id, excluded.parent_id),"
    " root_id = CASE WHEN runs.parent_id IS NULL THEN excluded.root_id ELSE runs.root_id END,"
    " status = excluded.status, started_at = MIN(runs.started_at, excluded.started_at),"
    " ended_at = NULL, duration = NULL,"
    " user_id = COALESCE(runs.user_id, excluded.user_id),"
    " task = COALESCE(runs.task, excluded.task), error = NULL,"
    " host = CASE WHEN runs.status = 'running' THEN runs.host ELSE excluded.host END,"
    " pid = CASE WHEN runs.status = 'running' THEN runs.pid ELSE excluded.pid END,"
    " metadata = CASE WHEN runs.metadata = '{}' THEN excluded.metadata ELSE runs.metadata END,"
    " session_id = COALESCE(runs.session_id, excluded.session_id)"
)
# An annotation gives the run's facts as they are now (annotate() keeps them whole): what it
# knows replaces what the row has; nothing else changes, not the status or times. It updates a
# row only: a run whose start this registry never recorded gets no row from an annotation.
# Numbered parameters take the values from a whole row, in the order of its columns.
ANNOTATE = (
    "UPDATE runs SET user_id = COALESCE(?8, user_id), task = COALESCE(?9, task),"
    " metadata = CASE WHEN ?13 = '{}' THEN metadata ELSE ?13 END,"
    " session_id = COALESCE(?14, session_id) WHERE run_id = ?1"
)
# An external id names one run in its system, and a run has one id per system: given again (to
# another run, or another id to the same run), the latest wins. REPLACE deletes the rows of
# either rule it would break (schema 3's primary key and unique index).
EXTERNAL = "INSERT OR REPLACE INTO external_ids VALUES (?, ?, ?)"
FINISH = (
    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id) DO UPDATE"
    " SET status = excluded.status, ended_at = excluded.ended_at,"
    " duration = MAX(0.0, (excluded.ended_at - runs.started_at) / 1e6), error = excluded.error"
)


def check_args(run_id: object, user_id: object, task: object, session_id: object = None) -> None:
    """Raise TypeError, naming the argument, for a start or finish given the wrong types.

    Checked at once: a row that the database refuses would otherwise be retried forever.
    """
    if not isinstance(run_id, RunId):
        raise TypeError(f"run_id must be a RunId, got {type(run_id).__name__}")
    for what, value in (("user_id", user_id), ("task", task), ("session_id", session_id)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{what} must be a str or None, got {type(value).__name__}")


def start_row(
    run_id: RunId,
    user_id: str | None,
    task: str | None,
    metadata: Mapping[str, Any] | None,
    session_id: str | None = None,
) -> Row:
    """Return the row of ``run_id`` started now, in this process, its text cut to the limits."""
    parent = run_id.parent
    return (
        run_id.value,
        None if parent is None else parent.value,
        run_id.root.value,
        "running",
        time.time_ns() // 1000,
        None,
        None,
        cut_text(user_id),
        cut_text(task),
        None,
        HOST,
        os.getpid(),
        dump_metadata(metadata),
        cut_text(session_id),
    )


def external_rows(run_id: RunId, external_ids: Mapping[str, str] | None) -> list[Row]:
    """Return the rows of the ``external_ids`` table that give ``run_id`` its external ids.

    Raises TypeError or ValueError, naming the argument, for ids that break their rule.
    """
    if not external_ids:
        return []
    checked = check_external_ids(external_ids)
    return [(external_id, system, run_id.value) for system, external_id in checked.items()]


def finish_row(run_id: RunId, start: Row | None, ended: int, error: BaseException | None) -> Row:
    """Return the row of ``run_id`` ended at ``ended`` (microseconds since the epoch).

    ``start`` is the row its start wrote in this process, or None when there was none here:
    the row then starts when it ends, so that a finish whose start never reached the file
    still writes the whole run.
    """
    if start is not None:
        row = start
    else:
        parent = run_id.parent
        row = (run_id.value, None if parent is None else parent.value, run_id.root.value)
        row = (*row, "running", ended, None, None, None, None, None, HOST, os.getpid(), "{}", None)
    status = "ok" if error is None else "error"
    duration = max(0.0, (ended - row[4]) / 1e6)
    end = (status, row[4], ended, duration, *row[7:9], error_text(error))
    return (*row[:3], *end, *row[10:])


def merge_rows(first: Row, later: Row) -> Row:
    """Return the row of a run started again: the first start's, its gaps filled from the later.

    The same rule as the START statement's, for the row a finish may have to write whole.
    """
    parent, root = (later[1], later[2]) if first[1] is None else (first[1], first[2])
    user_id = later[7] if first[7] is None else first[7]
    task = later[8] if first[8] is None else first[8]
    metadata = later[12] if first[12] == "{}" else first[12]
    session_id = later[13] if first[13] is None else first[13]
    return (first[0], parent, root, *first[3:7], user_id, task, *first[9:12], metadata, session_id)


def annotated_row(row: Row, annotation: Row) -> Row:
    """Return a run's row with what an annotation knows in place of what the row had."""
    user_id = row[7] if annotation[7] is None else annotation[7]
    task = row[8] if annotation[8] is None else annotation[8]
    metadata = row[12] if annotation[12] == "{}" else annotation[12]
    session_id = row[13] if annotation[13] is None else annotation[13]
    return (*row[:7], user_id, task, *row[9:12], metadata, session_id)


def to_record(row: Any, external_ids: Mapping[str, str] | None = None) -> RunRecord:
    """Return the RunRecord of a row read back; metadata that does not parse reads as empty."""
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
        session_id=row[13],
        external_ids={} if external_ids is None else dict(external_ids),
    )
