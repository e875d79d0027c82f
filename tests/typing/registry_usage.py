"""The run registry, v7 ids and the command, used exactly as docs/registry.md shows (mypy only)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from agent_run_id import RunContext, RunId
from agent_run_id import registry as run_registry
from agent_run_id._cli.main import main
from agent_run_id.registry import AmbiguousRunError, RunRecord, SQLiteRunRegistry


def record_and_read(path: str) -> list[RunRecord]:
    registry = SQLiteRunRegistry(path)
    run_registry.set_default(registry)
    with RunContext(user_id="u-42", task="summarize the report", metadata={"model": "gpt"}) as run:
        pass
    record: RunRecord = registry.get(run.run_id)
    duration: float | None = record.duration
    started: datetime = record.started_at
    try:
        registry.get(run.run_id.short())
    except AmbiguousRunError as exc:
        candidates: tuple[str, ...] = exc.candidates
        del candidates
    except KeyError:
        pass
    del duration, started
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    failed = registry.find(status="error", since=since, limit=10)
    stale = registry.find(stale=True)
    registry.flush()
    registry.close()
    run_registry.set_default(None)
    return [*failed, *stale, *registry.tree(run.run_id)]


def time_ordered() -> datetime | None:
    run_id = RunId.generate(version=7)
    return run_id.created_at


def command() -> int:
    return main(["runs", "list", "--db", "runs.db"])
