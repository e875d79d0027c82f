"""The run registry: every run's start, end, status, user and task, looked up by its id.

Give a registry to ``RunContext(registry=...)``, or make it the process-wide default with
:func:`set_default` so runs started by middleware and ``@new_run`` are recorded too::

    from agent_run_id import registry

    registry.set_default(registry.SQLiteRunRegistry("runs.db"))

``SQLiteRunRegistry`` is the embedded backend (standard library ``sqlite3``);
``PostgresRunRegistry`` records a fleet's runs in PostgreSQL (the ``postgres`` extra, psycopg,
imported when first used). :func:`open_registry` takes either's name: a path or a
``postgresql://`` URL. The ``agent-run-id runs`` command reads both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import MIN_PREFIX, AmbiguousRunError, RunRegistry
from ._default import get_default, set_default
from ._limits import MAX_METADATA
from ._open import open_registry
from ._record import STATUSES, RunRecord, Status
from ._schema import SCHEMA_VERSION, SchemaError
from ._sqlite import SQLiteRunRegistry

if TYPE_CHECKING:
    from ._postgres import PostgresRunRegistry

__all__ = [
    "MAX_METADATA",
    "MIN_PREFIX",
    "SCHEMA_VERSION",
    "STATUSES",
    "AmbiguousRunError",
    "PostgresRunRegistry",
    "RunRecord",
    "RunRegistry",
    "SQLiteRunRegistry",
    "SchemaError",
    "Status",
    "get_default",
    "open_registry",
    "set_default",
]


def __getattr__(name: str) -> object:
    # PostgresRunRegistry needs psycopg (the postgres extra): imported on first use only.
    if name == "PostgresRunRegistry":
        from ._postgres import PostgresRunRegistry

        return PostgresRunRegistry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
