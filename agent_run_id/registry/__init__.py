"""The run registry: every run's start, end, status, user and task, looked up by its id.

Give a registry to ``RunContext(registry=...)``, or make it the process-wide default with
:func:`set_default` so runs started by middleware and ``@new_run`` are recorded too::

    from agent_run_id import registry

    registry.set_default(registry.SQLiteRunRegistry("runs.db"))

``SQLiteRunRegistry`` is the embedded backend (standard library ``sqlite3``); another backend
implements :class:`RunRegistry`. The ``agent-run-id runs`` command reads the same file.
"""

from __future__ import annotations

from ._base import MIN_PREFIX, AmbiguousRunError, RunRegistry
from ._default import get_default, set_default
from ._limits import MAX_METADATA
from ._record import STATUSES, RunRecord, Status
from ._schema import SCHEMA_VERSION, SchemaError
from ._sqlite import SQLiteRunRegistry

__all__ = [
    "MAX_METADATA",
    "MIN_PREFIX",
    "SCHEMA_VERSION",
    "STATUSES",
    "AmbiguousRunError",
    "RunRecord",
    "RunRegistry",
    "SQLiteRunRegistry",
    "SchemaError",
    "Status",
    "get_default",
    "set_default",
]
