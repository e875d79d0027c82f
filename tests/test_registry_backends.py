"""The behaviour every registry backend shares, one suite run on SQLite and on PostgreSQL.

Each test runs once per backend (``[sqlite]``, ``[postgres]``), against a real database: a
SQLite file, and a schema of its own on the test run's PostgreSQL server
(``tests/_postgres_server.py``). The two backends can never drift: a rule that one breaks
fails here, named by its backend.
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agent_run_id import RunContext, RunId, annotate, new_run
from agent_run_id._cli.main import main
from agent_run_id.registry import (
    AmbiguousRunError,
    RunRecord,
    SQLiteRunRegistry,
    get_default,
    open_registry,
    set_default,
)
from agent_run_id.registry._buffered import BufferedRunRegistry
from tests._postgres_server import shared_server

BACKENDS = ["sqlite", "postgres"]


@dataclass
class Store:
    """Where a test's runs go: ``name`` opens (another) registry on it, as another process would."""

    backend: str
    name: str
    schema: str | None = None

    def open(self) -> BufferedRunRegistry:
        if self.backend == "sqlite":
            return SQLiteRunRegistry(self.name)
        from agent_run_id.registry import PostgresRunRegistry

        return PostgresRunRegistry(self.name, schema=self.schema)

    def another(self, tmp_path: Path) -> Store:
        """A second store of the same backend, which shares no run with this one."""
        if self.backend == "sqlite":
            return Store("sqlite", str(tmp_path / "other.db"))
        return Store("postgres", self.name, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return Store("sqlite", str(tmp_path / "runs.db"))
    return Store("postgres", shared_server().dsn, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def registry(store: Store) -> Iterator[BufferedRunRegistry]:
    registry = store.open()
    try:
        yield registry
    finally:
        set_default(None)
        registry.close()


def _make(registry: BufferedRunRegistry, *values: str) -> list[RunId]:
    runs = [RunId.from_string(v) for v in values]
    for run in runs:
        registry.start(run)
    return runs


# -- recording ------------------------------------------------------------------------------


def test_a_run_is_recorded_running_then_ok(registry: BufferedRunRegistry) -> None:
    with RunContext(registry=registry, user_id="u-1", task="sum", metadata={"k": 1}) as run:
        during = registry.get(run.run_id)
    after = registry.get(run.run_id)
    assert (during.status, during.ended_at, during.duration) == ("running", None, None)
    assert after.status == "ok"
    assert after.error is None
    assert (after.run_id, after.parent_id, after.root_id) == (
        run.run_id.value,
        None,
        run.run_id.value,
    )
    assert (after.user_id, after.task, dict(after.metadata)) == ("u-1", "sum", {"k": 1})
    assert after.ended_at is not None
    assert after.started_at.tzinfo is timezone.utc
    assert after.started_at == during.started_at <= after.ended_at
    assert after.duration is not None
    assert after.duration >= 0
    assert (after.pid, after.host) == (os.getpid(), during.host)
    assert after.host


def test_an_escaping_exception_is_recorded_and_propagates_untouched(
    registry: BufferedRunRegistry,
) -> None:
    error = ValueError("tool failed")
    with pytest.raises(ValueError, match="tool failed") as caught, RunContext(registry=registry):
        raise error
    assert caught.value is error
    (record,) = registry.find()
    assert (record.status, record.error) == ("error", "ValueError: tool failed")


def test_nested_runs_make_a_tree(registry: BufferedRunRegistry) -> None:
    with RunContext(registry=registry) as root:
        with RunContext() as child, RunContext() as grandchild:
            pass
        with RunContext() as second:
            pass
    ids = [r.run_id for r in registry.tree(root.run_id)]
    assert ids == [r.run_id.value for r in (root, child, grandchild, second)]
    assert [r.run_id for r in registry.children(root.run_id.value[:12])] == [
        child.run_id.value,
        second.run_id.value,
    ]
    assert registry.get(grandchild.run_id).parent_id == child.run_id.value
    assert registry.get(grandchild.run_id).root_id == root.run_id.value
    assert [r.run_id for r in registry.tree(child.run_id)] == [
        child.run_id.value,
        grandchild.run_id.value,
    ]
    assert registry.children(grandchild.run_id) == []


def test_the_default_registry_records_runs_started_anywhere(registry: BufferedRunRegistry) -> None:
    set_default(registry)
    assert get_default() is registry

    @new_run
    def step() -> RunId | None:
        from agent_run_id import current_run_id

        return current_run_id()

    run = step()
    assert run is not None
    assert registry.get(run).status == "ok"
    set_default(None)
    assert get_default() is None
    with RunContext() as unrecorded:
        pass
    with pytest.raises(KeyError):
        registry.get(unrecorded.run_id)


def test_a_run_given_a_registry_is_recorded_there_and_not_in_the_default(
    registry: BufferedRunRegistry, store: Store, tmp_path: Path
) -> None:
    other = store.another(tmp_path).open()
    set_default(registry)
    try:
        with RunContext(registry=other) as run:
            pass
        assert other.get(run.run_id).status == "ok"
        with pytest.raises(KeyError):
            registry.get(run.run_id)
    finally:
        other.close()


def test_a_run_is_recorded_once_however_often_the_default_is_set(
    registry: BufferedRunRegistry, store: Store, tmp_path: Path
) -> None:
    starts: list[str] = []
    real_start = registry.start

    def counting_start(run_id: RunId, **facts: Any) -> None:
        starts.append(run_id.value)
        real_start(run_id, **facts)

    registry.start = counting_start  # type: ignore[method-assign]
    store.another(tmp_path).open().close()
    set_default(registry)
    set_default(registry)
    with RunContext() as run:
        pass
    assert starts == [run.run_id.value]
    assert registry.get(run.run_id).status == "ok"


def test_the_run_name_is_kept_in_metadata(registry: BufferedRunRegistry) -> None:
    with RunContext(registry=registry, name="planner") as run:
        pass
    assert registry.get(run.run_id).metadata == {"name": "planner"}


def test_annotate_replaces_the_facts_and_adds_external_ids(registry: BufferedRunRegistry) -> None:
    with RunContext(registry=registry, task="plan", metadata={"k": 1}) as run:
        annotate(user_id="u-42", session_id="chat-7", external_ids={"langsmith_run": "ls-1"})
        annotate(external_ids={"openai_trace": "trace_abc"})
    record = registry.get(run.run_id)
    assert (record.user_id, record.session_id, record.task) == ("u-42", "chat-7", "plan")
    assert record.metadata == {"k": 1}
    assert record.external_ids == {"langsmith_run": "ls-1", "openai_trace": "trace_abc"}
    assert registry.find(session_id="chat-7") == [record]
    # A run this registry never saw start gets no row from an annotation.
    stranger = RunId.generate()
    registry.annotate(stranger, user_id="u")
    with pytest.raises(KeyError):
        registry.get(stranger)


def test_a_runs_new_id_of_a_system_replaces_its_old_one(registry: BufferedRunRegistry) -> None:
    run = RunId.generate()
    registry.start(run, external_ids={"openai_trace": "a", "langsmith_run": "ls-1"})
    registry.flush()  # written: the next id for the system replaces a row in the database
    registry.annotate(run, external_ids={"openai_trace": "b"})
    assert registry.get(run).external_ids == {"openai_trace": "b", "langsmith_run": "ls-1"}
    assert registry.by_external_id("a") == []
    assert [r.run_id for r in registry.by_external_id("b")] == [run.value]
    # Queued together, written in one batch: the latest wins, the same id again is kept.
    for trace in ("c", "d", "c", "e", "e"):
        registry.annotate(run, external_ids={"openai_trace": trace})
    for _ in range(5):  # one row per system: every read shows the latest
        assert registry.get(run).external_ids == {"openai_trace": "e", "langsmith_run": "ls-1"}
    assert [registry.by_external_id(t) for t in "abcd"] == [[], [], [], []]
    assert [r.run_id for r in registry.by_external_id("e", system="openai_trace")] == [run.value]


def test_an_id_given_to_another_run_moves_to_it_and_replaces_that_runs_own(
    registry: BufferedRunRegistry,
) -> None:
    run, other = RunId.generate(), RunId.generate()
    registry.start(run, external_ids={"openai_trace": "t-1"})
    registry.start(other, external_ids={"openai_trace": "t-2", "langsmith_run": "ls-2"})
    registry.flush()
    registry.annotate(other, external_ids={"openai_trace": "t-1"})  # moves, replaces t-2
    assert registry.get(run).external_ids == {}
    assert registry.get(other).external_ids == {"openai_trace": "t-1", "langsmith_run": "ls-2"}
    assert [r.run_id for r in registry.by_external_id("t-1")] == [other.value]
    assert registry.by_external_id("t-2") == []
    registry.annotate(run, external_ids={"openai_trace": "t-2"})
    registry.annotate(run, external_ids={"openai_trace": "t-1"})  # and back, in one batch
    assert registry.get(run).external_ids == {"openai_trace": "t-1"}
    assert registry.get(other).external_ids == {"langsmith_run": "ls-2"}
    assert registry.by_external_id("t-2") == []


def test_by_external_id_finds_the_run_and_an_id_given_again_moves(
    registry: BufferedRunRegistry,
) -> None:
    first, second = RunId.generate(), RunId.generate()
    registry.start(first, external_ids={"langsmith_run": "ls-1", "openai_trace": "t-1"})
    registry.start(second, external_ids={"langfuse_trace": "ls-1"})
    found = registry.by_external_id("ls-1")
    assert [r.run_id for r in found] == [second.value, first.value]  # newest first
    assert [r.run_id for r in registry.by_external_id("ls-1", system="langsmith_run")] == [
        first.value
    ]
    assert registry.by_external_id("nope") == []
    registry.annotate(second, external_ids={"openai_trace": "t-1"})
    assert [r.run_id for r in registry.by_external_id("t-1")] == [second.value]
    assert registry.get(first).external_ids == {"langsmith_run": "ls-1"}
    with pytest.raises(TypeError, match="external_id must be a str"):
        registry.by_external_id(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="system must be a str"):
        registry.by_external_id("x", system=3)  # type: ignore[arg-type]


# -- look-ups -------------------------------------------------------------------------------


def test_get_takes_a_run_id_its_text_in_any_form_or_a_unique_prefix(
    registry: BufferedRunRegistry,
) -> None:
    (run,) = _make(registry, "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")
    for key in (run, run.value, run.value.upper(), run.value.replace("-", ""), "0b6f5d3e"):
        assert registry.get(key).run_id == run.value, key
    assert registry.get("0B6F5D3E-2C").run_id == run.value
    assert registry.get(" 0b6f5d3e-2c1a ").run_id == run.value
    assert repr(registry) == f"{type(registry).__name__}({registry.where!r})"


def test_unknown_runs_and_ambiguous_prefixes(registry: BufferedRunRegistry) -> None:
    a, b, _ = _make(
        registry,
        "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908",
        "0b6f5d3e-99aa-4e8b-9f7d-5a4c3b2a1908",
        "0b6f5d3f-2c1a-4e8b-9f7d-5a4c3b2a1908",
    )
    with pytest.raises(AmbiguousRunError) as caught:
        registry.get("0b6f5d3e")
    assert caught.value.candidates == (a.value, b.value)
    assert a.value in str(caught.value)
    assert isinstance(caught.value, LookupError)
    assert not isinstance(caught.value, KeyError)
    assert registry.get("0b6f5d3e-99").run_id == b.value
    with pytest.raises(KeyError, match="no run"):
        registry.get(RunId.generate())
    with pytest.raises(KeyError, match="no run"):
        registry.get("ffffffff")
    with pytest.raises(KeyError):
        registry.tree(RunId.generate())


@pytest.mark.parametrize("bad", ["0b6f5d3", "", "not-a-run", "0b6f5d3e?", "0" * 40])
def test_a_bad_key_raises_value_error_with_the_fix(registry: BufferedRunRegistry, bad: str) -> None:
    with pytest.raises(ValueError, match="at least its first 8 characters"):
        registry.get(bad)


def test_a_key_of_another_type_raises_type_error(registry: BufferedRunRegistry) -> None:
    with pytest.raises(TypeError, match="run must be a RunId or a str"):
        registry.get(42)  # type: ignore[arg-type]


def test_many_matching_runs_list_ten_candidates_in_id_order(registry: BufferedRunRegistry) -> None:
    made = _make(registry, *(f"0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a19{i:02d}" for i in range(15)))
    with pytest.raises(AmbiguousRunError) as caught:
        registry.get("0b6f5d3e-2c1a")
    assert caught.value.candidates == tuple(sorted(r.value for r in made)[:10])


def test_find_filters_and_orders_newest_first(registry: BufferedRunRegistry) -> None:
    runs = []
    for i in range(6):
        try:
            with RunContext(registry=registry, user_id=f"u{i % 2}", session_id=f"s{i % 3}") as r:
                runs.append(r.run_id.value)
                if i == 3:
                    raise RuntimeError("x")
        except RuntimeError:
            pass
    assert [r.run_id for r in registry.find()] == runs[::-1]
    assert [r.run_id for r in registry.find(limit=2)] == runs[:-3:-1]
    assert [r.run_id for r in registry.find(user_id="u0")] == runs[4::-2]
    assert [r.run_id for r in registry.find(session_id="s1")] == [runs[4], runs[1]]
    assert [r.run_id for r in registry.find(user_id="u1", session_id="s0")] == [runs[3]]
    assert [r.run_id for r in registry.find(status="error")] == [runs[3]]
    assert len(registry.find(status="ok")) == 5
    assert registry.find(status="running") == []
    middle = registry.get(runs[2]).started_at
    assert [r.run_id for r in registry.find(since=middle)] == runs[:1:-1]
    assert [r.run_id for r in registry.find(until=middle)] == runs[1::-1]
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    assert registry.find(since=later) == []


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"status": "done"}, ValueError, "status must be one of"),
        ({"limit": 0}, ValueError, "limit must be a positive int"),
        ({"limit": True}, ValueError, "limit must be a positive int"),
        ({"since": "yesterday"}, TypeError, "since must be a datetime"),
        ({"until": datetime(2024, 1, 1)}, ValueError, "until must be an aware datetime"),
        ({"stale": True, "status": "ok"}, ValueError, "status='ok' would find none"),
        ({"stale": True, "status": "error"}, ValueError, "leave status out"),
    ],
)
def test_find_refuses_bad_filters(
    registry: BufferedRunRegistry, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        registry.find(**kwargs)  # type: ignore[arg-type]


def test_records_turn_into_json_with_the_field_names(registry: BufferedRunRegistry) -> None:
    with RunContext(registry=registry, user_id="u") as run:
        pass
    data = registry.get(run.run_id).to_json()
    assert list(data) == [f.name for f in RunRecord.__dataclass_fields__.values()]
    assert data["started_at"].endswith("+00:00")
    assert json.loads(json.dumps(data)) == data


# -- the rules of a run entered again ---------------------------------------------------------


def test_a_finish_without_a_recorded_start_writes_the_whole_run(
    registry: BufferedRunRegistry,
) -> None:
    parent = RunId.generate()
    run = parent.child()
    registry.finish(run, error=KeyError("k"))
    record = registry.get(run)
    assert (record.status, record.parent_id, record.root_id) == (
        "error",
        parent.value,
        parent.value,
    )
    assert (record.error, record.duration) == ("KeyError: 'k'", 0)


def test_a_run_entered_again_is_recorded_again(registry: BufferedRunRegistry) -> None:
    context = RunContext(RunId.generate(), registry=registry)
    with pytest.raises(OSError, match="first"), context:
        raise OSError("first")
    with context:
        assert registry.get(context.run_id).status == "running"
    record = registry.get(context.run_id)
    assert (record.status, record.error) == ("ok", None)


def test_a_run_entered_again_inside_itself_keeps_its_start_and_ends_with_the_outermost(
    registry: BufferedRunRegistry,
) -> None:
    with RunContext(registry=registry, user_id="u-42", task="summarize") as outer:
        first = registry.get(outer.run_id)
        inner = RunContext(outer.run_id, registry=registry, task="other", metadata={"k": 1})
        with pytest.raises(KeyError), inner:
            raise KeyError("handled by the outer entry")
        record = registry.get(outer.run_id)
        assert (record.status, record.ended_at, record.error) == ("running", None, None)
        assert (record.user_id, record.task, record.metadata) == ("u-42", "summarize", {"k": 1})
        assert record.started_at == first.started_at
    record = registry.get(outer.run_id)
    assert (record.status, record.error, record.started_at) == ("ok", None, first.started_at)
    assert record.ended_at is not None


def test_the_outermost_entrys_error_is_the_runs(registry: BufferedRunRegistry) -> None:
    run = RunId.generate()

    def work() -> None:
        with RunContext(run, registry=registry):
            pass
        assert registry.get(run).status == "running"
        raise ValueError("outer")

    with pytest.raises(ValueError, match="outer"), RunContext(run, registry=registry):
        work()
    record = registry.get(run)
    assert (record.status, record.error) == ("error", "ValueError: outer")


def test_a_start_from_another_process_never_clobbers_the_recorded_run(
    registry: BufferedRunRegistry, store: Store
) -> None:
    """Another registry object on the same store stands for another process continuing the run."""
    other = store.open()
    run = RunId.generate()
    try:
        registry.start(run, user_id="u-42", task="summarize")
        first = registry.get(run)
        other.start(run, task="tool", metadata={"k": 1}, session_id="s")
        other.flush()
        record = registry.get(run)
        assert (record.user_id, record.task, record.metadata) == ("u-42", "summarize", {"k": 1})
        assert (record.started_at, record.pid, record.session_id) == (
            first.started_at,
            first.pid,
            "s",
        )
        other.finish(run, error=TimeoutError("tool"))
        other.flush()
        assert registry.get(run).error == "TimeoutError: tool"
        registry.finish(run)
        record = registry.get(run)
        assert (record.status, record.error, record.started_at) == ("ok", None, first.started_at)
        assert record.duration is not None
    finally:
        other.close()


def test_the_writes_of_a_run_queued_together_keep_their_order(
    registry: BufferedRunRegistry,
) -> None:
    """Ended, started again, annotated and ended again, all queued before one write."""
    run, other = RunId.generate(), RunId.generate()
    registry.start(run, task="first", external_ids={"langsmith_run": "ls-1"})
    registry.start(other)
    registry.finish(run, error=ValueError("first try"))
    registry.annotate(other, user_id="u-1")
    registry.start(run)
    registry.annotate(run, task="second", external_ids={"langsmith_run": "ls-2"})
    registry.start(other, external_ids={"langsmith_run": "ls-1"})  # the id moves to other
    registry.finish(run)
    again = RunId.generate()
    registry.start(again)
    registry.finish(again, error=KeyError("k"))
    registry.start(again)  # entered again, still running
    record = registry.get(again)
    assert (record.status, record.error, record.ended_at) == ("running", None, None)
    record = registry.get(run)
    assert (record.status, record.error, record.task) == ("ok", None, "second")
    assert record.external_ids == {"langsmith_run": "ls-2"}
    record = registry.get(other)
    assert (record.status, record.user_id, record.external_ids) == (
        "running",
        "u-1",
        {"langsmith_run": "ls-1"},
    )


def test_a_rerun_of_a_child_keeps_its_parent(registry: BufferedRunRegistry) -> None:
    parent = RunId.generate()
    run = parent.child()
    registry.start(run)
    registry.start(RunId(run.value), user_id="u")
    registry.finish(run)
    registry.finish(run)
    record = registry.get(run)
    assert (record.parent_id, record.root_id, record.user_id) == (parent.value, parent.value, "u")
    assert record.status == "ok"


# -- what is stored ---------------------------------------------------------------------------


def test_text_is_cut_and_stored_whatever_it_holds(registry: BufferedRunRegistry) -> None:
    """Long text is cut; a lone surrogate and a NUL (PostgreSQL's text has none) are escaped."""
    with RunContext(registry=registry, user_id="u" * 5000, task="bad \udcff and \x00 end") as a:
        pass
    with pytest.raises(ValueError, match="nul"), RunContext(registry=registry) as b:
        raise ValueError("a nul \x00 in the error")
    record = registry.get(a.run_id)
    assert record.user_id == "u" * 4096
    assert record.task == "bad \\udcff and \\x00 end"
    assert registry.get(b.run_id).error == "ValueError: a nul \\x00 in the error"


def test_metadata_that_is_not_json_or_too_big_is_kept_as_a_marker(
    registry: BufferedRunRegistry,
) -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    with RunContext(registry=registry, metadata={"when": datetime(2024, 1, 1), "z": "\x00"}) as a:
        pass
    with RunContext(registry=registry, metadata=cyclic) as b:
        pass
    with RunContext(registry=registry, name="big", metadata={"blob": "x" * 20_000}) as c:
        pass
    assert registry.get(a.run_id).metadata == {
        "when": "datetime.datetime(2024, 1, 1, 0, 0)",
        "z": "\x00",
    }
    assert "unrecorded" in registry.get(b.run_id).metadata
    assert registry.get(c.run_id).metadata == {
        "metadata_cut": {"json_bytes": 20_027, "limit": 16_384},
        "name": "big",
    }


def test_an_error_whose_message_fails_is_still_recorded(registry: BufferedRunRegistry) -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    class Quiet(Exception):
        pass

    for exc in (Weird(), Quiet()):
        with pytest.raises(type(exc)), RunContext(registry=registry):
            raise exc
    assert sorted(r.error or "" for r in registry.find()) == [
        "test_an_error_whose_message_fails_is_still_recorded.<locals>.Quiet",
        "test_an_error_whose_message_fails_is_still_recorded.<locals>.Weird: <unprintable message>",
    ]


# -- concurrency ------------------------------------------------------------------------------


def test_many_threads_record_every_run_without_cross_talk(registry: BufferedRunRegistry) -> None:
    barrier = threading.Barrier(8)
    seen: dict[str, str | None] = {}

    def work(n: int) -> None:
        barrier.wait()
        for _ in range(100):
            with RunContext(registry=registry, user_id=f"t{n}") as run, RunContext() as child:
                seen[child.run_id.value] = run.run_id.value

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = registry.find(limit=10_000)
    assert len(records) == 1600
    assert all(r.status == "ok" for r in records)
    assert {r.run_id: r.parent_id for r in records if r.parent_id is not None} == seen
    assert {r.user_id for r in records if r.parent_id is None} == {f"t{n}" for n in range(8)}


async def test_many_tasks_record_their_own_runs(registry: BufferedRunRegistry) -> None:
    async def task(n: int) -> tuple[str, str]:
        async with RunContext(user_id=f"a{n}") as run:
            await asyncio.sleep(0)
            annotate(external_ids={"task": f"x{n}"})
            return run.run_id.value, f"a{n}"

    async with RunContext(registry=registry) as outer:
        results = await asyncio.gather(*(task(n) for n in range(200)))
    records = {r.run_id: r for r in await asyncio.to_thread(registry.children, outer.run_id)}
    assert len(records) == 200
    for n, (run_id, user) in enumerate(results):
        record = records[run_id]
        assert (record.user_id, record.status, record.external_ids) == (
            user,
            "ok",
            {"task": f"x{n}"},
        )


def _record_runs(store: Store, count: int, user_id: str) -> None:
    registry = store.open()
    for _ in range(count):
        with RunContext(registry=registry, user_id=user_id):
            pass
    registry.close()


def _start_and_die(store: Store) -> None:
    registry = store.open()
    registry.start(RunId.generate(), task="dies")
    registry.flush()
    os._exit(0)


def test_several_processes_record_into_one_store_and_lose_nothing(
    registry: BufferedRunRegistry, store: Store
) -> None:
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_record_runs, args=(store, 150, f"p{n}")) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    records = registry.find(limit=1000)
    assert len(records) == 450
    assert {r.user_id for r in records} == {"p0", "p1", "p2"}
    assert all(r.status == "ok" for r in records)


def test_runs_of_a_dead_process_stay_running_and_show_as_stale(
    registry: BufferedRunRegistry, store: Store
) -> None:
    worker = multiprocessing.get_context("spawn").Process(target=_start_and_die, args=(store,))
    worker.start()
    worker.join(60)
    with RunContext(registry=registry):
        (stale,) = registry.find(stale=True)
    assert (stale.task, stale.status, stale.pid) == ("dies", "running", worker.pid)
    assert registry.find(stale=True, status="running") == [stale]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX only")
def test_a_forked_child_records_on_its_own_connection_and_the_parent_goes_on(
    registry: BufferedRunRegistry,
) -> None:
    """gunicorn and Celery prefork: the child never uses (or closes) its parent's connections."""
    with RunContext(registry=registry) as before:
        pass
    assert registry.get(before.run_id).status == "ok"  # the parent's connections are open
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            with RunContext(registry=registry, task="child") as run:
                pass
            ok = registry.get(run.run_id).status == "ok"
            os.write(write, run.run_id.value.encode() if ok else b"bad")
            registry.close()
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    child_run = os.read(read, 100).decode()
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with RunContext(registry=registry) as after:
        pass
    assert registry.get(after.run_id).status == "ok"  # the parent's connection still works
    record = registry.get(child_run)
    assert (record.task, record.status, record.pid) == ("child", "ok", pid)


# -- the registry object ----------------------------------------------------------------------


def test_writes_after_close_start_the_writer_again(registry: BufferedRunRegistry) -> None:
    registry.close()
    with RunContext(registry=registry) as run:
        pass
    assert registry.get(run.run_id).status == "ok"
    assert registry.failures == 0


@dataclass
class Refusing:
    """A database of the store's backend that refuses every write until ``allow()``.

    SQLite: the file locked by another connection (the registry waits 0 s for a lock);
    PostgreSQL: a database of the test server not created yet.
    """

    store: Store
    target: str
    allow: Callable[[], None]

    def open(self, close_timeout: float) -> BufferedRunRegistry:
        if self.store.backend == "sqlite":
            return SQLiteRunRegistry(self.target, timeout=0, close_timeout=close_timeout)
        from agent_run_id.registry import PostgresRunRegistry

        return PostgresRunRegistry(self.target, close_timeout=close_timeout)

    def reader(self) -> BufferedRunRegistry:
        return open_registry(self.target)


@pytest.fixture
def refusing(store: Store) -> Iterator[Refusing]:
    if store.backend == "sqlite":
        made = store.open()
        made.start(RunId.generate())
        made.close()
        locker = sqlite3.connect(store.name, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")

        def unlock() -> None:
            if locker.in_transaction:
                locker.execute("ROLLBACK")

        try:
            yield Refusing(store, store.name, unlock)
        finally:
            locker.close()
        return
    server = shared_server()
    name = f"t_{uuid.uuid4().hex[:16]}"

    def create() -> None:
        server.execute(f"CREATE DATABASE {name}")

    yield Refusing(store, server.dsn.rsplit("/", 1)[0] + f"/{name}", create)


def _until(done: Callable[[], bool]) -> None:
    """Wait for what the writer thread does and signals nowhere else (its attempts)."""
    deadline = time.monotonic() + 30
    while not done():
        assert time.monotonic() < deadline, "the writer thread never got there"
        time.sleep(0.01)


def _lost(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "agent_run_id.registry" and "lost" in r.getMessage()
    ]


def test_close_retries_a_refusing_database_until_its_timeout_then_says_what_is_lost(
    refusing: Refusing, caplog: pytest.LogCaptureFixture
) -> None:
    registry = refusing.open(close_timeout=1.5)
    for _ in range(3):
        with RunContext(registry=registry):
            pass
    _until(lambda: registry.failures > 0)  # the writer's first attempt, at the first write
    failures = registry.failures
    started = time.monotonic()
    registry.close()
    took = time.monotonic() - started
    assert 1.5 <= took < 3.0  # the timeout, and never the grace stop() gives a stuck attempt
    assert registry.failures > failures  # tried again while closing
    waiting, writing, _ = registry._writer.held()
    assert (waiting, writing) == (6, 0)
    (warning,) = _lost(caplog)
    assert "6 writes of 3 runs lost at close" in warning
    assert "in the 1.5 s given" in warning


def test_close_goes_on_trying_and_writes_everything_once_the_database_is_back(
    refusing: Refusing, caplog: pytest.LogCaptureFixture
) -> None:
    registry = refusing.open(close_timeout=60)
    runs = []
    for _ in range(3):
        with RunContext(registry=registry, task="kept") as run:
            runs.append(run.run_id)
    # Every write tried, failed, and waiting.
    _until(lambda: registry._writer.held()[:2] == (6, 0) and registry.failures > 0)
    failures = registry.failures
    closing = threading.Thread(target=registry.close)
    closing.start()
    _until(lambda: registry.failures > failures)  # a retry of close(), failed
    refusing.allow()
    closing.join(30)
    assert not closing.is_alive()
    assert registry._writer.held()[:2] == (0, 0)
    assert _lost(caplog) == []
    reader = refusing.reader()
    try:
        assert [reader.get(run).status for run in runs] == ["ok"] * 3
    finally:
        reader.close()


_EXIT = """
import logging, sys
logging.basicConfig(format="%(message)s")
from agent_run_id import RunContext
from agent_run_id.registry import PostgresRunRegistry, SQLiteRunRegistry
backend, target = sys.argv[1:]
if backend == "sqlite":
    registry = SQLiteRunRegistry(target, timeout=0, close_timeout=1.0)
else:
    registry = PostgresRunRegistry(target, close_timeout=1.0)
for _ in range(3):
    with RunContext(registry=registry):
        pass
"""


def test_the_exit_flush_retries_then_says_what_is_lost(refusing: Refusing) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _EXIT, refusing.store.backend, refusing.target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    lost = [line for line in done.stderr.splitlines() if "lost" in line]
    assert len(lost) == 1, done.stderr
    assert "6 writes of 3 runs lost at close" in lost[0]
    assert "in the 1.0 s given" in lost[0]
    assert took >= 1.0


def test_a_name_opens_the_backend_it_names_for_the_middleware_too(store: Store) -> None:
    from agent_run_id.wsgi import RunIdMiddleware

    app = RunIdMiddleware(lambda environ, start: [b""], registry=store.name)
    assert app.registry is not None
    app.registry.close()  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="a registry is named by a str or a path, got int"):
        open_registry(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "conninfo",
    [
        "host=db.internal dbname=agents user=agent password=s3cret",
        "dbname=agents",
        "host=db dbname=agents password='my s3cret'",  # a quoted value with a blank
        "host = db dbname = agents password = s3cret",  # blanks around =
        "password=s3cret sslmode=require",
    ],
)
def test_a_libpq_key_value_string_is_refused_never_made_a_file(
    conninfo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a path or a URL goes, libpq's key=value form would open a SQLite file of its name."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"key=value connection string .* postgresql://") as err:
        open_registry(conninfo)
    assert "s3cret" not in str(err.value)
    with pytest.raises(ValueError, match="key=value connection string"):
        set_default(conninfo)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "user=alice").mkdir()
    for path in ("runs=1.db", "user=alice/runs.db"):  # file names with "=": a folder that is
        named = open_registry(path)
        assert type(named).__name__ == "SQLiteRunRegistry"
        named.close()


def test_a_hostile_name_is_read_in_linear_time() -> None:
    from agent_run_id.registry._open import check_not_conninfo

    for hostile in ("a=" + "b=" * 50_000 + "'", "a=b " * 30_000 + "'", "a" * 100_000 + "="):
        started = time.thread_time()
        check_not_conninfo(hostile)  # no connection string: nothing raised
        assert time.thread_time() - started < 0.5


def test_a_name_opens_the_backend_it_names(store: Store) -> None:
    name = store.name
    opened = open_registry(name)
    try:
        expected = "SQLiteRunRegistry" if store.backend == "sqlite" else "PostgresRunRegistry"
        assert type(opened).__name__ == expected
        assert set_default(name) is not None
        assert type(get_default()).__name__ == expected
    finally:
        registry = get_default()
        set_default(None)
        assert registry is not None
        registry.close()  # type: ignore[attr-defined]
        opened.close()


# -- retention --------------------------------------------------------------------------------


def test_prune_deletes_the_runs_older_than_the_age_given(registry: BufferedRunRegistry) -> None:
    old = [RunId.generate() for _ in range(3)]
    for run in old:
        registry.start(run, external_ids={"langsmith_run": f"old-{run.hex[:6]}"})
        registry.finish(run)
    middle = registry.get(old[-1]).started_at + timedelta(microseconds=1)
    with RunContext(registry=registry) as kept:
        annotate(external_ids={"langsmith_run": "new"})
    assert registry.prune(middle) == 3
    assert [r.run_id for r in registry.find()] == [kept.run_id.value]
    assert registry.by_external_id(f"old-{old[0].hex[:6]}") == []
    assert registry.get(kept.run_id).external_ids == {"langsmith_run": "new"}
    assert registry.prune(timedelta(days=30)) == 0
    with pytest.raises(ValueError, match="positive age"):
        registry.prune(timedelta(0))
    with pytest.raises(ValueError, match="aware datetime"):
        registry.prune(datetime(2024, 1, 1))
    with pytest.raises(TypeError, match="timedelta or a datetime"):
        registry.prune(30)  # type: ignore[arg-type]


def test_prune_deletes_in_batches_as_many_as_there_are(
    registry: BufferedRunRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in ("_sqlite", "_postgres"):
        monkeypatch.setattr(f"agent_run_id.registry.{module}.PRUNE_BATCH", 2)
    old = [RunId.generate() for _ in range(5)]
    for n, run in enumerate(old):
        registry.start(run, external_ids={"langsmith_run": f"old-{n}"})
    kept = RunId.generate()
    registry.start(kept, external_ids={"langsmith_run": "new"})
    middle = registry.get(kept).started_at
    assert registry.prune(middle) == 5
    assert [r.run_id for r in registry.find()] == [kept.value]
    assert [registry.by_external_id(f"old-{n}") for n in range(5)] == [[]] * 5
    assert registry.get(kept).external_ids == {"langsmith_run": "new"}
    assert registry.prune(middle) == 0


# -- the command ----------------------------------------------------------------------------


def _command(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def target(store: Store) -> str:
    """A registry's name as --db takes it: the file, or a database of its own (a URL)."""
    return store.name if store.backend == "sqlite" else shared_server().fresh_dsn()


def test_the_runs_commands_read_either_backend_the_same(
    target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = open_registry(target)
    with RunContext(registry=registry, user_id="u-42", task="plan") as root:
        annotate(external_ids={"langsmith_run": "ls-9"})
        with pytest.raises(TimeoutError), RunContext(task="tool"):
            raise TimeoutError("slow")
    registry.close()
    code, out, err = _command("runs", "list", "--db", target)
    assert code == 0
    assert root.run_id.value in out
    assert "2 runs" in err
    code, out, _ = _command("runs", "list", "--status", "error", "--json", "--db", target)
    (line,) = out.splitlines()
    assert json.loads(line)["error"] == "TimeoutError: slow"
    monkeypatch.setenv("AGENT_RUN_ID_DB", target)
    code, out, _ = _command("runs", "show", "ls-9")  # an external id, the registry from $
    assert code == 0
    assert f"run_id:     {root.run_id.value}" in out
    code, out, _ = _command("runs", "tree", root.run_id.value[:8])
    assert code == 0
    assert out.splitlines()[1].startswith("  ")
    assert "TimeoutError: slow" in out.splitlines()[1]
    code, _, err = _command("runs", "show", "ffffffff")
    assert code == 2
    assert "unknown run 'ffffffff'" in err


def test_logs_session_finds_the_runs_in_either_backend(target: str, tmp_path: Path) -> None:
    """A text line names a run, not its session: the registry says the run is the session's."""
    registry = open_registry(target)
    with RunContext(registry=registry, session_id="chat-9"), RunContext() as child:
        pass
    registry.close()
    log = tmp_path / "agent.log"
    log.write_text(f"2026-12-06T10:00:00Z INFO {child.run_id.value} tool called\n")
    code, out, err = _command("logs", "--session", "chat-9", "--db", target, str(log))
    assert code == 0
    assert "tool called" in out
    assert "2 runs of it in" in err
    assert "s3cret" not in err


def test_runs_prune_deletes_the_old_runs_on_either_backend(target: str) -> None:
    registry = open_registry(target)
    old = RunId.generate()
    registry.finish(old)
    registry.flush()
    with RunContext(registry=registry) as kept:
        pass
    registry.close()
    code, out, _ = _command("runs", "prune", "--older-than", "30d", "--db", target)
    assert (code, out.split(" deleted")[0]) == (0, "no runs older than 30d")
    # Make the first run 31 days old, as a month of waiting would.
    month = 31 * 24 * 3600 * 1_000_000
    _age_run(target, old.value, month)
    code, out, _ = _command("runs", "prune", "--older-than", "30d", "--db", target)
    assert (code, out.split(" deleted")[0]) == (0, "1 run older than 30d")
    reader = open_registry(target)
    try:
        assert [r.run_id for r in reader.find()] == [kept.run_id.value]
    finally:
        reader.close()
    for bad in ("30", "0d", "-1d", "30y"):
        code, _, err = _command("runs", "prune", f"--older-than={bad}", "--db", target)
        assert code == 2
        assert "is not an age: give 30d, 12h or 90m" in err


def _age_run(target: str, run_id: str, micros: int) -> None:
    sql = f"UPDATE runs SET started_at = started_at - {micros} WHERE run_id = '{run_id}'"
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute(sql.encode())
    else:
        conn = sqlite3.connect(target)
        with conn:
            conn.execute(sql)
        conn.close()


def test_the_command_refuses_what_is_not_a_registry(tmp_path: Path) -> None:
    not_registry = tmp_path / "other.db"
    sqlite3.connect(not_registry).close()
    empty = shared_server().fresh_dsn()
    for target in (str(not_registry), empty):
        for argv in (("runs", "list"), ("runs", "prune", "--older-than", "1d")):
            code, _, err = _command(*argv, "--db", target)
            assert code == 2, (argv, target)
            assert "cannot read" in err
            assert "not a run registry" in err
    code, _, err = _command("runs", "list", "--db", "postgresql://who:s3cret@127.0.0.1:1/db")
    assert code == 2
    assert "cannot read postgresql://who@127.0.0.1:1/db" in err
    assert "s3cret" not in err
    bad = "postgresql://who:s3cret@[bad/db"
    code, _, err = _command("runs", "list", "--db", bad)
    assert code == 2
    assert "dsn is not a PostgreSQL connection string" in err
    assert "s3cret" not in err
    log = tmp_path / "agent.log"
    log.write_text("a line\n")
    code, _, err = _command("logs", "--session", "chat-1", "--db", bad, str(log))
    assert code == 2
    assert "dsn is not a PostgreSQL connection string" in err
    assert "s3cret" not in err
