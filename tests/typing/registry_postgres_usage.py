"""The PostgreSQL registry and the one way to name a registry, as docs/registry.md shows them."""

from __future__ import annotations

import os
from datetime import timedelta

from agent_run_id import RunContext
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.registry import (
    PostgresRunRegistry,
    RunRecord,
    RunRegistry,
    open_registry,
    set_default,
)


async def app(scope: object, receive: object, send: object) -> None:
    """An ASGI app of the user's own."""


def fleet(dsn: str) -> list[RunRecord]:
    registry = PostgresRunRegistry(dsn, schema="agent_runs", statement_timeout=5.0)
    with RunContext(registry=registry, user_id="u-42", task="summarize the report"):
        pass
    failed = registry.find(status="error", limit=10)
    failures: int = registry.failures
    deleted: int = registry.prune(timedelta(days=30))
    registry.close()
    del failures, deleted
    return failed


def by_name() -> None:
    chosen: RunRegistry | None = set_default(os.environ.get("AGENT_RUN_ID_DB", "runs.db"))
    registry = open_registry("postgresql://agent@db.internal/agents")
    registry.close()
    RunIdMiddleware(app, registry="runs.db")
    del chosen
