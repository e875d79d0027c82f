"""The registry's bounds: metadata cut, memory held in an outage, and how long get() waits."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sqlite3
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from agent_run_id import RunContext, RunId
from agent_run_id.registry import MAX_METADATA, RunRecord, SQLiteRunRegistry

LOGGER = "agent_run_id.registry"
MIB = 1024 * 1024


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the database's write lock from a second connection for the block."""
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _one_run(registry: SQLiteRunRegistry) -> str:
    """Record one run and write it: the file exists, with its schema, before a lock is taken."""
    with RunContext(registry=registry) as run:
        pass
    registry.flush()
    return run.run_id.value


def _assert_the_newest_kept(
    found: list[RunRecord], ids: list[str], waiting: int, writing: int
) -> None:
    """Check that the runs written after an outage are the newest, whole and ended.

    The ``waiting`` rows of the buffer are the newest rows; each of their runs is written
    whole and ended (a run's end alone writes the whole run). The ``writing`` rows, older,
    were being tried when the lock went: they are written too when that try succeeds.
    """
    newest = (waiting + 1) // 2
    assert newest > 0
    status = {r.run_id: r.status for r in found}
    assert {status.get(run) for run in ids[-newest:]} == {"ok"}
    assert len(set(status) - set(ids[-newest:])) <= writing


def _json_size(metadata: dict[str, Any]) -> int:
    return len(json.dumps(metadata))


# -- metadata ---------------------------------------------------------------------------------


def test_metadata_up_to_the_limit_is_kept_whole(path: Path) -> None:
    registry = SQLiteRunRegistry(path)
    filler = "x" * (MAX_METADATA - _json_size({"name": "fit", "blob": ""}))
    metadata = {"blob": filler}
    assert _json_size({"name": "fit", **metadata}) == MAX_METADATA
    with RunContext(registry=registry, name="fit", metadata=metadata) as run:
        pass
    assert registry.get(run.run_id).metadata == {"name": "fit", "blob": filler}
    registry.close()


def test_metadata_over_the_limit_is_a_marker_with_its_size_and_name(path: Path) -> None:
    registry = SQLiteRunRegistry(path)
    metadata = {"prompt": "p" * 100_000, "model": "m"}
    with RunContext(registry=registry, name="summarize", metadata=metadata) as run:
        pass
    record = registry.get(run.run_id)
    size = _json_size({"name": "summarize", **metadata})
    assert size > 100_000
    assert record.metadata == {
        "metadata_cut": {"json_bytes": size, "limit": MAX_METADATA},
        "name": "summarize",
    }
    # One byte over is cut too; the marker leaves out a name too long to be short.
    over = {"blob": "y" * (MAX_METADATA - _json_size({"blob": ""}) + 1), "name": "n" * 300}
    with RunContext(registry=registry, metadata=over) as cut:
        pass
    assert registry.get(cut.run_id).metadata == {
        "metadata_cut": {"json_bytes": _json_size(over), "limit": MAX_METADATA}
    }
    registry.close()


class _Hostile(dict[Any, Any]):
    """Metadata that cannot be turned into JSON, nor shown with repr."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _NoGet(dict[str, Any]):
    """Metadata whose ``get`` fails."""

    def get(self, key: str, default: Any = None) -> Any:
        raise RuntimeError("no get")


def test_metadata_that_cannot_be_serialized_or_shown_never_fails_the_run(path: Path) -> None:
    registry = SQLiteRunRegistry(path)
    deep: list[Any] = []
    for _ in range(5_000):  # deeper than json.dumps and repr can go
        deep = [deep]
    hostile = _Hostile()
    hostile[(1, 2)] = "a key JSON cannot have"
    with RunContext(registry=registry, metadata={"deep": deep}) as first:
        pass
    second = RunId.generate()
    registry.start(second, metadata=hostile)  # as given (RunContext keeps a plain copy)
    assert registry.get(first.run_id).metadata == {"unrecorded": "<unprintable dict>"}
    assert registry.get(second).metadata == {"unrecorded": "<unprintable _Hostile>"}
    third = RunId.generate()
    registry.start(third, metadata=_NoGet(blob="z" * MAX_METADATA))
    assert registry.get(third).metadata["metadata_cut"]["limit"] == MAX_METADATA
    registry.close()


# -- memory held while the database fails ----------------------------------------------------


def test_an_outage_holds_at_most_the_budget_and_writes_the_rows_kept(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """100 KB of metadata per run, 1,500 runs while the database is locked: the writes held
    stay within max_pending_bytes (counted, and measured with tracemalloc), the oldest are
    dropped with one warning, and the rows kept are all written once the lock goes."""
    budget = MIB
    registry = SQLiteRunRegistry(path, timeout=0.01, max_pending_bytes=budget)
    warm_up = _one_run(registry)
    caplog.set_level(logging.INFO, LOGGER)
    prompt = "p" * 100_000
    ids: list[str] = []
    peak = 0
    tracemalloc.start()
    try:
        with locked(path):
            before = tracemalloc.get_traced_memory()[0]
            for n in range(1_500):
                with RunContext(registry=registry, metadata={"prompt": prompt, "n": n}) as run:
                    ids.append(run.run_id.value)
                peak = max(peak, registry._writer.held()[2])
            registry.flush()
            waiting, writing, held_bytes = registry._writer.held()
            used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert peak <= budget
    # What the test itself keeps (1,500 ids, log records) is well under the margin.
    assert used <= budget + MIB // 2, f"{used:,} bytes held"
    held_rows = waiting + writing
    assert 0 < held_rows < 2 * len(ids)
    assert held_bytes <= budget

    registry.flush()  # the database is back: the rows kept are written
    recovered = [m for m in caplog.messages if "works again" in m]
    assert len(recovered) == 1
    match = re.search(r"writing the (\d+) writes kept, (\d+) were dropped", recovered[0])
    assert match is not None
    assert (int(match[1]), int(match[1]) + int(match[2])) == (held_rows, 2 * len(ids))
    drops = [w for w in _warnings(caplog) if "max_pending_bytes=1048576" in w]
    assert len(drops) == 1  # thousands of drops, one warning
    assert len(_warnings(caplog)) == 2  # that one, and the failure's

    # The oldest rows went: what is in the file is the newest runs, each whole and ended.
    found = [r for r in registry.find(limit=2_000) if r.run_id != warm_up]
    _assert_the_newest_kept(found, ids, waiting, writing)
    assert found[0].metadata["metadata_cut"]["json_bytes"] > 100_000
    assert registry._writer.held() == (0, 0, 0)
    registry.close()


def test_rows_near_the_metadata_limit_are_bounded_by_bytes_not_by_count(path: Path) -> None:
    """Rows of 12 KB each: 400 runs would hold about 10 MB; the budget keeps it to 1 MiB."""
    registry = SQLiteRunRegistry(path, timeout=0.01, max_pending_bytes=MIB)
    warm_up = _one_run(registry)
    blob = "b" * 12_000
    with locked(path):
        ids = []
        for _ in range(400):
            with RunContext(registry=registry, metadata={"blob": blob}) as run:
                ids.append(run.run_id.value)
            assert registry._writer.held()[2] <= MIB
        waiting, writing, held = registry._writer.held()
        assert held > MIB - 64 * 1024  # full, give or take a row
        assert waiting + writing < 2 * MIB // 12_000
    found = [r for r in registry.find(limit=1_000) if r.run_id != warm_up]
    _assert_the_newest_kept(found, ids, waiting, writing)
    assert all(r.metadata == {"blob": blob} for r in found)
    registry.close()


def test_a_healthy_database_drops_nothing(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = SQLiteRunRegistry(path, max_pending_bytes=MIB)
    blob = "b" * 12_000
    ids = []
    for _ in range(300):  # 7 MB in all, written as it comes
        with RunContext(registry=registry, metadata={"blob": blob}) as run:
            ids.append(run.run_id.value)
        registry.flush()
    assert len(registry.find(limit=1_000)) == 300
    assert _warnings(caplog) == []
    registry.close()


@pytest.mark.parametrize("bad", [True, 1.5, "64MB", None, MIB - 1, -1])
def test_a_bad_max_pending_bytes_is_refused_with_the_fix(path: Path, bad: object) -> None:
    with pytest.raises(ValueError, match=r"max_pending_bytes must be an int >= 1,048,576") as info:
        SQLiteRunRegistry(path, max_pending_bytes=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)
    assert "64 * 1024 * 1024" in str(info.value)


# -- get() while writes wait -------------------------------------------------------------------


def test_get_sees_its_own_queued_writes(path: Path) -> None:
    registry = SQLiteRunRegistry(path)
    run = RunId.generate()
    registry.start(run, task="queued")
    assert registry.get(run).status == "running"
    registry.finish(run)
    assert registry.get(run).status == "ok"  # no flush: get waited for it
    registry.close()


def test_get_behind_a_locked_database_returns_the_last_committed_state_in_time(
    path: Path,
) -> None:
    registry = SQLiteRunRegistry(path, timeout=3.0)
    committed = RunId.generate()
    registry.start(committed, task="committed")
    registry.flush()
    with locked(path):
        registry.finish(committed)  # queued: the writer waits 3 s for the lock
        queued = RunId.generate()
        registry.start(queued)
        started = time.monotonic()
        record = registry.get(committed, timeout=0.2)
        took = time.monotonic() - started
        assert record.status == "running"  # its end is not in the file yet
        assert 0.2 <= took < 1.2, took
        started = time.monotonic()
        with pytest.raises(KeyError):
            registry.get(queued, timeout=0.2)  # its start is not in the file yet
        assert time.monotonic() - started < 1.2
    assert registry.get(committed, timeout=None).status == "ok"
    assert registry.get(queued, timeout=None).status == "running"
    registry.close()


def test_get_with_no_timeout_waits_for_the_writes(path: Path) -> None:
    registry = SQLiteRunRegistry(path, timeout=5.0)
    run = RunId.generate()
    registry.start(run)
    registry.flush()
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    registry.finish(run)
    releaser = threading.Timer(0.3, lambda: (locker.execute("ROLLBACK"), locker.close()))
    releaser.start()
    try:
        assert registry.get(run, timeout=None).status == "ok"
    finally:
        releaser.join()
        registry.close()


async def test_get_in_a_thread_leaves_the_event_loop_free(path: Path) -> None:
    registry = SQLiteRunRegistry(path, timeout=3.0)
    run = RunId.generate()
    registry.start(run)
    registry.flush()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    with locked(path):
        registry.finish(run)
        record = await asyncio.to_thread(registry.get, run.value, timeout=0.5)
    ticker.cancel()
    assert record.status == "running"
    assert ticks >= 10  # the loop ran all along the 0.5 s wait
    registry.close()


@pytest.mark.parametrize("bad", [-1, float("nan"), "1", True])
def test_a_bad_get_timeout_is_refused_with_the_fix(path: Path, bad: object) -> None:
    registry = SQLiteRunRegistry(path)
    with pytest.raises(ValueError, match=r"timeout must be a number of seconds >= 0 or None"):
        registry.get(RunId.generate(), timeout=bad)  # type: ignore[arg-type]
    registry.close()
