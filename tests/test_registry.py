"""The run registry: RunContext records runs; look-ups by id, prefix, filters and trees."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agent_run_id import RunContext, RunId, new_run
from agent_run_id._hooks import observers
from agent_run_id.registry import (
    AmbiguousRunError,
    RunRecord,
    SQLiteRunRegistry,
    get_default,
    set_default,
)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SQLiteRunRegistry]:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    try:
        yield registry
    finally:
        set_default(None)
        registry.close()


def test_a_run_is_recorded_running_then_ok(registry: SQLiteRunRegistry) -> None:
    with RunContext(registry=registry, user_id="u-1", task="sum", metadata={"k": 1}) as run:
        during = registry.get(run.run_id)
    after = registry.get(run.run_id)
    assert during.status == "running"
    assert during.ended_at is None
    assert during.duration is None
    assert after.status == "ok"
    assert after.error is None
    assert after.run_id == run.run_id.value
    assert after.parent_id is None
    assert after.root_id == run.run_id.value
    assert (after.user_id, after.task, dict(after.metadata)) == ("u-1", "sum", {"k": 1})
    assert after.ended_at is not None
    assert after.started_at.tzinfo is timezone.utc
    assert after.started_at <= after.ended_at
    assert after.duration is not None
    assert after.duration >= 0
    assert after.pid == __import__("os").getpid()
    assert after.host


def test_an_escaping_exception_is_recorded_and_propagates_untouched(
    registry: SQLiteRunRegistry,
) -> None:
    error = ValueError("tool failed")
    with pytest.raises(ValueError, match="tool failed") as caught, RunContext(registry=registry):
        raise error
    assert caught.value is error
    (record,) = registry.find()
    assert record.status == "error"
    assert record.error == "ValueError: tool failed"


def test_the_run_name_is_kept_in_metadata(registry: SQLiteRunRegistry) -> None:
    with RunContext(registry=registry, name="planner") as run:
        pass
    assert registry.get(run.run_id).metadata == {"name": "planner"}


def test_nested_runs_go_to_the_enclosing_runs_registry(registry: SQLiteRunRegistry) -> None:
    with RunContext(registry=registry) as root:
        with RunContext() as child, RunContext() as grandchild:
            pass
        with RunContext() as second:
            pass
    tree = registry.tree(root.run_id)
    assert [r.run_id for r in tree] == [
        str(root.run_id),
        str(child.run_id),
        str(grandchild.run_id),
        str(second.run_id),
    ]
    assert [r.run_id for r in registry.children(root.run_id)] == [
        str(child.run_id),
        str(second.run_id),
    ]
    assert registry.get(grandchild.run_id).parent_id == str(child.run_id)
    assert registry.get(grandchild.run_id).root_id == str(root.run_id)
    assert [r.run_id for r in registry.tree(child.run_id)] == [
        str(child.run_id),
        str(grandchild.run_id),
    ]


def test_the_default_registry_records_runs_started_anywhere(registry: SQLiteRunRegistry) -> None:
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
    registry: SQLiteRunRegistry, tmp_path: Path
) -> None:
    other = SQLiteRunRegistry(tmp_path / "other.db")
    set_default(registry)
    with RunContext(registry=other) as run:
        pass
    assert other.get(run.run_id).status == "ok"
    with pytest.raises(KeyError):
        registry.get(run.run_id)
    other.close()


def test_a_run_is_recorded_once_however_often_the_default_is_set(
    registry: SQLiteRunRegistry, tmp_path: Path
) -> None:
    starts: list[str] = []
    real_start = registry.start

    def counting_start(run_id: RunId, **facts: Any) -> None:
        starts.append(run_id.value)
        real_start(run_id, **facts)

    registry.start = counting_start  # type: ignore[method-assign]
    SQLiteRunRegistry(tmp_path / "b.db").close()
    set_default(registry)
    set_default(registry)
    with RunContext() as run:
        pass
    assert starts == [run.run_id.value]
    assert registry.get(run.run_id).status == "ok"


def test_making_a_registry_registers_nothing_process_wide(tmp_path: Path) -> None:
    """A registry records the runs given to it; making one installs no observer."""
    made = SQLiteRunRegistry(tmp_path / "c.db")
    assert observers.items == ()
    with RunContext(registry=made) as run:
        pass
    assert made.get(run.run_id).status == "ok"
    made.close()


def test_bad_registry_arguments_are_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="registry must be a RunRegistry"):
        RunContext(registry=object())
    with pytest.raises(TypeError, match="registry must be a RunRegistry"):
        set_default(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be a str or a path"):
        SQLiteRunRegistry(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="path must name a file"):
        SQLiteRunRegistry(":memory:")
    with pytest.raises(ValueError, match="timeout must be"):
        SQLiteRunRegistry(tmp_path / "x.db", timeout=-1)
    with pytest.raises(ValueError, match="max_pending must be"):
        SQLiteRunRegistry(tmp_path / "x.db", max_pending=True)


def _make(registry: SQLiteRunRegistry, *values: str) -> list[RunId]:
    runs = [RunId.from_string(v) for v in values]
    for run in runs:
        registry.start(run)
    return runs


def test_get_takes_a_run_id_its_text_in_any_form_or_a_unique_prefix(
    registry: SQLiteRunRegistry,
) -> None:
    (run,) = _make(registry, "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")
    for key in (
        run,
        run.value,
        run.value.upper(),
        run.value.replace("-", ""),
        "0b6f5d3e",
        "0B6F5D3E-2C",
        " 0b6f5d3e-2c1a ",
    ):
        assert registry.get(key).run_id == run.value, key
    assert repr(registry).startswith("SQLiteRunRegistry(")


def test_an_unknown_run_raises_key_error(registry: SQLiteRunRegistry) -> None:
    with pytest.raises(KeyError, match="no run"):
        registry.get(RunId.generate())
    with pytest.raises(KeyError, match="no run"):
        registry.get("ffffffff")
    with pytest.raises(KeyError):
        registry.tree(RunId.generate())


def test_an_ambiguous_prefix_names_the_candidates(registry: SQLiteRunRegistry) -> None:
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


def test_many_matching_runs_list_ten_candidates(registry: SQLiteRunRegistry) -> None:
    _make(registry, *(f"0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a19{i:02d}" for i in range(15)))
    with pytest.raises(AmbiguousRunError) as caught:
        registry.get("0b6f5d3e-2c1a")
    assert len(caught.value.candidates) == 10


@pytest.mark.parametrize("bad", ["0b6f5d3", "", "not-a-run", "0b6f5d3e?", "0" * 40])
def test_a_bad_key_raises_value_error_with_the_fix(registry: SQLiteRunRegistry, bad: str) -> None:
    with pytest.raises(ValueError, match="at least its first 8 characters"):
        registry.get(bad)


def test_a_key_of_another_type_raises_type_error(registry: SQLiteRunRegistry) -> None:
    with pytest.raises(TypeError, match="run must be a RunId or a str"):
        registry.get(42)  # type: ignore[arg-type]


def test_children_accept_a_prefix(registry: SQLiteRunRegistry) -> None:
    with RunContext(registry=registry) as root, RunContext() as child:
        pass
    (found,) = registry.children(root.run_id.value[:12])
    assert found.run_id == child.run_id.value
    assert registry.children(child.run_id) == []


def test_find_filters_and_orders_newest_first(registry: SQLiteRunRegistry) -> None:
    runs = []
    for i in range(6):
        try:
            with RunContext(registry=registry, user_id=f"u{i % 2}") as run:
                runs.append(run.run_id.value)
                if i == 3:
                    raise RuntimeError("x")
        except RuntimeError:
            pass
    assert [r.run_id for r in registry.find()] == runs[::-1]
    assert [r.run_id for r in registry.find(limit=2)] == runs[:-3:-1]
    assert [r.run_id for r in registry.find(user_id="u0")] == runs[4::-2]
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
    registry: SQLiteRunRegistry, kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        registry.find(**kwargs)  # type: ignore[arg-type]


def test_stale_takes_the_running_status(registry: SQLiteRunRegistry) -> None:
    assert registry.find(stale=True, status="running") == []


def test_metadata_that_is_not_json_is_kept_as_text(registry: SQLiteRunRegistry) -> None:
    cyclic: dict[str, object] = {}
    cyclic["self"] = cyclic
    with RunContext(registry=registry, metadata={"when": datetime(2024, 1, 1)}) as a:
        pass
    with RunContext(registry=registry, metadata=cyclic) as b:
        pass
    assert registry.get(a.run_id).metadata == {"when": "datetime.datetime(2024, 1, 1, 0, 0)"}
    assert "unrecorded" in registry.get(b.run_id).metadata


def test_an_error_whose_message_fails_is_still_recorded(registry: SQLiteRunRegistry) -> None:
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


def test_a_finish_without_a_recorded_start_writes_the_whole_run(
    registry: SQLiteRunRegistry,
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
    assert record.error == "KeyError: 'k'"
    assert record.duration == 0


def test_a_run_entered_again_is_recorded_again(registry: SQLiteRunRegistry) -> None:
    context = RunContext(RunId.generate(), registry=registry)
    with pytest.raises(OSError, match="first"), context:
        raise OSError("first")
    with context:
        assert registry.get(context.run_id).status == "running"
    assert registry.get(context.run_id).status == "ok"
    assert registry.get(context.run_id).error is None


def test_records_turn_into_json_with_the_field_names(registry: SQLiteRunRegistry) -> None:
    with RunContext(registry=registry, user_id="u") as run:
        pass
    data = registry.get(run.run_id).to_json()
    assert list(data) == [f.name for f in RunRecord.__dataclass_fields__.values()]
    assert data["started_at"].endswith("+00:00")
    assert json.loads(json.dumps(data)) == data


def test_writes_after_close_start_the_writer_again(registry: SQLiteRunRegistry) -> None:
    registry.close()
    with RunContext(registry=registry) as run:
        pass
    assert registry.get(run.run_id).status == "ok"


def test_many_threads_record_every_run_without_cross_talk(registry: SQLiteRunRegistry) -> None:
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
    children = {r.run_id: r.parent_id for r in records if r.parent_id is not None}
    assert children == seen
    assert {r.user_id for r in records if r.parent_id is None} == {f"t{n}" for n in range(8)}


async def test_many_tasks_record_their_own_runs(registry: SQLiteRunRegistry) -> None:
    async def task(n: int) -> tuple[str, str]:
        async with RunContext(user_id=f"a{n}") as run:
            await asyncio.sleep(0)
            return run.run_id.value, f"a{n}"

    async with RunContext(registry=registry) as outer:
        results = await asyncio.gather(*(task(n) for n in range(200)))
    for run_id, user in results:
        record = registry.get(run_id)
        assert (record.user_id, record.parent_id, record.status) == (
            user,
            outer.run_id.value,
            "ok",
        )
    assert len(registry.children(outer.run_id)) == 200


def test_a_run_entered_again_inside_itself_keeps_its_start_and_ends_with_the_outermost(
    registry: SQLiteRunRegistry,
) -> None:
    """The inner entry fills only what is missing, and only the outermost exit ends the run."""
    with RunContext(registry=registry, user_id="u-42", task="summarize") as outer:
        first = registry.get(outer.run_id)
        inner = RunContext(outer.run_id, registry=registry, task="other", metadata={"k": 1})
        with pytest.raises(KeyError), inner:
            raise KeyError("handled by the outer entry")
        record = registry.get(outer.run_id)
        assert (record.status, record.ended_at, record.error) == ("running", None, None)
        assert (record.user_id, record.task) == ("u-42", "summarize")
        assert record.metadata == {"k": 1}  # the first entry gave none
        assert record.started_at == first.started_at
    record = registry.get(outer.run_id)
    assert (record.status, record.error, record.started_at) == ("ok", None, first.started_at)
    assert record.ended_at is not None


def test_the_outermost_entrys_error_is_the_runs(registry: SQLiteRunRegistry) -> None:
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
    registry: SQLiteRunRegistry, tmp_path: Path
) -> None:
    """Another registry object on the file stands for another process continuing the run."""
    other = SQLiteRunRegistry(tmp_path / "runs.db")
    run = RunId.generate()
    try:
        registry.start(run, user_id="u-42", task="summarize")
        first = registry.get(run)
        other.start(run, task="tool", metadata={"k": 1})
        other.flush()
        record = registry.get(run)
        assert (record.user_id, record.task, record.metadata) == ("u-42", "summarize", {"k": 1})
        assert (record.started_at, record.pid) == (first.started_at, first.pid)
        other.finish(run, error=TimeoutError("tool"))
        other.flush()
        registry.finish(run)
        record = registry.get(run)
        assert (record.status, record.error, record.started_at) == ("ok", None, first.started_at)
        assert record.duration is not None
    finally:
        other.close()


def test_a_rerun_of_a_child_keeps_its_parent(registry: SQLiteRunRegistry) -> None:
    parent = RunId.generate()
    run = parent.child()
    registry.start(run)
    registry.start(RunId(run.value), user_id="u")
    registry.finish(run)
    registry.finish(run)
    record = registry.get(run)
    assert (record.parent_id, record.root_id, record.user_id) == (parent.value, parent.value, "u")
    assert record.status == "ok"


def test_set_default_takes_any_registry_that_runcontext_takes() -> None:
    """One rule for what a registry is: an object with start() and finish(), as RunContext has."""

    class Recorder:
        def __init__(self) -> None:
            self.calls: list[tuple[str, RunId]] = []

        def start(self, run_id: RunId, **fields: object) -> None:
            self.calls.append(("start", run_id))

        def finish(self, run_id: RunId, *, error: BaseException | None = None) -> None:
            self.calls.append(("finish", run_id))

    recorder = Recorder()
    set_default(recorder)  # type: ignore[arg-type]
    try:
        with RunContext() as run:
            pass
    finally:
        set_default(None)
    assert recorder.calls == [("start", run.run_id), ("finish", run.run_id)]


def test_records_are_hashable_and_compare_by_value(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    with RunContext(registry=registry, metadata={"k": [1, 2]}) as run:
        pass
    first, again = registry.get(run.run_id), registry.get(run.run_id)
    assert first == again
    assert {first, again} == {first}
    registry.close()


class _Failing:
    """A registry that cannot write at all."""

    def start(self, run_id: RunId, **facts: Any) -> None:
        raise OSError("disk full")

    def finish(self, run_id: RunId, error: BaseException | None = None) -> None:
        raise OSError("disk full")


def test_a_registry_that_cannot_write_never_breaks_the_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = _Failing()
    with caplog.at_level(logging.DEBUG, logger="agent_run_id"):
        with RunContext(registry=failing) as run:  # type: ignore[arg-type]
            inner = RunContext()
            with inner:
                assert inner.run_id.parent == run.run_id
        set_default(failing)  # type: ignore[arg-type]
        with RunContext():
            pass
    reports = [r for r in caplog.records if r.name == "agent_run_id"]
    assert [r.levelno for r in reports] == [logging.WARNING] + [logging.DEBUG] * 2
    assert "run registry" in reports[0].getMessage()
