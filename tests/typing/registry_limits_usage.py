"""The registry's bounds as docs/registry.md shows them: budget, get() timeout, async (mypy)."""

from __future__ import annotations

import asyncio

from agent_run_id import RunId
from agent_run_id.registry import MAX_METADATA, RunRecord, SQLiteRunRegistry


def bounded(path: str) -> int:
    registry = SQLiteRunRegistry(path, max_pending=100_000, max_pending_bytes=64 * 1024 * 1024)
    registry.close()
    return MAX_METADATA


def read_now(registry: SQLiteRunRegistry, run_id: RunId) -> RunRecord:
    registry.get(run_id, timeout=None)
    return registry.get(run_id, timeout=0.5)


async def read_from_async_code(registry: SQLiteRunRegistry, run_id: RunId) -> RunRecord:
    record: RunRecord = await asyncio.to_thread(registry.get, run_id)
    print(record.status)
    return await asyncio.to_thread(registry.get, run_id, timeout=2.0)
