"""RunContext and current_run_id: entering, leaving, nesting, notes, isolation, observers."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import pickle
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from agent_run_id import (
    RunContext,
    RunFinisher,
    RunId,
    add_run_observer,
    current_run_id,
    remove_run_observer,
)

needs_notes = pytest.mark.skipif(sys.version_info < (3, 11), reason="PEP 678 notes are 3.11+")


def test_no_run_outside_any_context() -> None:
    assert current_run_id() is None


def test_with_makes_the_run_current_and_restores_none() -> None:
    run_id = RunId.generate()
    with RunContext(run_id=run_id) as context:
        assert context.run_id is run_id
        assert current_run_id() is run_id
    assert current_run_id() is None


async def test_async_with_makes_the_run_current() -> None:
    run_id = RunId.generate()
    async with RunContext(run_id=run_id) as context:
        await asyncio.sleep(0)
        assert current_run_id() is run_id
        assert context.run_id is run_id
    assert current_run_id() is None


def test_nested_contexts_restore_the_outer_run() -> None:
    outer, inner = RunId.generate(), RunId.generate()
    with RunContext(run_id=outer):
        with RunContext(run_id=inner):
            assert current_run_id() is inner
        assert current_run_id() is outer
    assert current_run_id() is None


def test_exit_restores_the_previous_run_after_an_exception() -> None:
    outer = RunId.generate()
    with RunContext(run_id=outer):
        with pytest.raises(RuntimeError), RunContext(run_id=RunId.generate()):
            raise RuntimeError("tool failed")
        assert current_run_id() is outer


def test_a_context_can_be_entered_again_and_nested_in_itself() -> None:
    run_id = RunId.generate()
    context = RunContext(run_id=run_id)
    with context:
        with context:
            assert current_run_id() is run_id
        assert current_run_id() is run_id
    assert current_run_id() is None
    with context:
        assert current_run_id() is run_id
    assert current_run_id() is None


def test_without_a_run_id_a_new_root_run_is_minted() -> None:
    with RunContext() as context:
        minted = current_run_id()
        assert minted is not None
        assert context.run_id is minted
        assert minted.parent is None
    assert context.run_id is minted  # still readable after the block


def test_without_a_run_id_inside_a_run_a_child_is_minted() -> None:
    outer = RunId.generate()
    with RunContext(run_id=outer), RunContext() as inner:
        assert inner.run_id.parent == outer
        assert inner.run_id.root == outer
        assert current_run_id() is inner.run_id


def test_each_entry_of_an_unbound_context_mints_a_new_run() -> None:
    context = RunContext()
    with context:
        first = context.run_id
        with context:
            second = context.run_id
            assert second.parent == first
        assert context.run_id is first
    with context:
        third = context.run_id
    assert len({first, second, third}) == 3


def test_run_id_before_entering_an_unbound_context_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="mints its run id when entered"):
        _ = RunContext().run_id


def test_exit_without_enter_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="without being entered"):
        RunContext(run_id=RunId.generate()).__exit__(None, None, None)


def test_bad_arguments_name_the_argument_and_the_fix() -> None:
    with pytest.raises(TypeError, match=r"run_id must be a RunId or None, got str.*from_string"):
        RunContext(run_id="0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="user_id must be a str or None, got int"):
        RunContext(user_id=7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metadata must be a mapping or None, got list"):
        RunContext(metadata=[1])  # type: ignore[arg-type]


def test_options_are_kept_for_observers() -> None:
    context = RunContext(name="planner", user_id="u-1", task="plan a trip", metadata={"k": 1})
    assert (context.name, context.user_id, context.task) == ("planner", "u-1", "plan a trip")
    assert context.metadata == {"k": 1}
    assert repr(context) == "RunContext(run_id=None)"


@needs_notes
def test_an_escaping_exception_carries_the_run_note_once() -> None:
    outer, inner = RunId.generate(), RunId.generate()
    with pytest.raises(KeyError) as info, RunContext(run_id=outer), RunContext(run_id=inner):
        raise KeyError("search_web")
    assert info.value.__notes__ == [f"run_id={inner.value}"]


@needs_notes
def test_the_note_is_not_added_again_when_the_exception_is_reraised() -> None:
    run_id = RunId.generate()
    error = ValueError("bad")
    for _ in range(3):
        with pytest.raises(ValueError, match="bad"), RunContext(run_id=run_id):
            raise error
    assert error.__notes__ == [f"run_id={run_id.value}"]


@needs_notes
def test_a_raise_crossing_runs_in_several_functions_keeps_the_innermost_run() -> None:
    outer, middle, inner = RunId.generate(), RunId.generate(), RunId.generate()

    def tool() -> None:
        with RunContext(run_id=inner):
            raise KeyError("search_web")

    def step() -> None:
        with RunContext(run_id=middle):
            tool()

    with pytest.raises(KeyError) as info, RunContext(run_id=outer):
        step()
    assert info.value.__notes__ == [f"run_id={inner.value}"]


@needs_notes
async def test_a_raise_from_a_child_task_keeps_the_task_s_run() -> None:
    outer, inner = RunId.generate(), RunId.generate()

    async def tool() -> None:
        async with RunContext(run_id=inner):
            await asyncio.sleep(0)
            raise KeyError("search_web")

    with pytest.raises(KeyError) as info:
        async with RunContext(run_id=outer):
            await asyncio.create_task(tool())
    assert info.value.__notes__ == [f"run_id={inner.value}"]


@needs_notes
def test_a_noted_exception_still_pickles_with_its_note_and_keeps_a_note_it_did_not_take() -> None:
    run, later = RunId.generate(), RunId.generate()
    with pytest.raises(ValueError, match="bad") as info, RunContext(run_id=run):
        raise ValueError("bad")
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.__notes__ == [f"run_id={run.value}"]
    with pytest.raises(ValueError, match="bad"), RunContext(run_id=later):
        raise copy
    assert copy.__notes__ == [f"run_id={run.value}"]
    theirs = ValueError("bad")
    theirs.add_note(f"run_id={run.value}")  # a note of our shape, from wherever: kept as it is
    with pytest.raises(ValueError, match="bad"), RunContext(run_id=later):
        raise theirs
    assert theirs.__notes__ == [f"run_id={run.value}"]


@needs_notes
@pytest.mark.parametrize("note", ["run_id=user-42", "run_id=", "run_id=" + "A" * 36, "run_id=x\n"])
def test_a_users_note_that_only_starts_with_run_id_does_not_stop_ours(note: str) -> None:
    run = RunId.generate()
    error = ValueError("bad")
    error.add_note(note)
    with pytest.raises(ValueError, match="bad"), RunContext(run_id=run):
        raise error
    assert error.__notes__ == [note, f"run_id={run.value}"]


@needs_notes
def test_the_run_note_goes_after_the_notes_already_there() -> None:
    run = RunId.generate()
    error = ValueError("bad")
    error.add_note("while searching")
    with pytest.raises(ValueError, match="bad"), RunContext(run_id=run):
        raise error
    assert error.__notes__ == ["while searching", f"run_id={run.value}"]


def test_control_flow_exceptions_get_no_note() -> None:
    with pytest.raises(KeyboardInterrupt) as info, RunContext(run_id=RunId.generate()):
        raise KeyboardInterrupt
    assert not hasattr(info.value, "__notes__")


def test_the_exception_propagates_untouched() -> None:
    error = LookupError("x")
    with pytest.raises(LookupError) as info, RunContext():
        raise error
    assert info.value is error


async def test_concurrent_tasks_each_see_their_own_run() -> None:
    seen: list[tuple[RunId, RunId | None]] = []

    async def agent(i: int) -> None:
        run_id = RunId.generate()
        async with RunContext(run_id=run_id):
            for _ in range(5):
                await asyncio.sleep(0)
                seen.append((run_id, current_run_id()))
            # tasks started inside inherit the run
            inner = await asyncio.create_task(_read_current())
            seen.append((run_id, inner))
        seen.append((run_id, run_id if current_run_id() is None else current_run_id()))

    await asyncio.gather(*(agent(i) for i in range(500)))
    assert len(seen) == 500 * 7
    assert all(expected is got for expected, got in seen)


async def _read_current() -> RunId | None:
    await asyncio.sleep(0)
    return current_run_id()


def test_concurrent_threads_each_see_their_own_run() -> None:
    barrier = threading.Barrier(32)
    mismatches: list[str] = []

    def agent() -> None:
        for _ in range(50):
            run_id = RunId.generate()
            with RunContext(run_id=run_id):
                barrier.wait() if _ == 0 else None
                for _ in range(10):
                    if current_run_id() is not run_id:
                        mismatches.append("inside")
            if current_run_id() is not None:
                mismatches.append("after")

    threads = [threading.Thread(target=agent) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_a_new_thread_starts_outside_the_run() -> None:
    """Plain threads do not copy the context (unlike asyncio tasks): no run leaks into them."""
    seen: list[RunId | None] = []
    with RunContext():
        thread = threading.Thread(target=lambda: seen.append(current_run_id()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_one_shared_context_entered_from_many_threads() -> None:
    context = RunContext()
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            with context:
                mine = current_run_id()
                ok = context.run_id is mine
            with lock:
                results.append(ok and current_run_id() is None)

    with ThreadPoolExecutor(16) as pool:
        for future in [pool.submit(worker) for _ in range(16)]:
            future.result()
    assert len(results) == 1600
    assert all(results)


async def test_one_shared_context_entered_from_many_tasks() -> None:
    run_id = RunId.generate()
    context = RunContext(run_id=run_id)

    async def worker() -> bool:
        async with context:
            await asyncio.sleep(0)
            inside = current_run_id() is run_id
        return inside and current_run_id() is None

    assert all(await asyncio.gather(*(worker() for _ in range(300))))


async def test_leaving_in_another_context_does_not_fail() -> None:
    """An async generator closed by another task leaves its run in a context that is not current."""
    run_id = RunId.generate()

    async def stream() -> AsyncIterator[RunId | None]:
        async with RunContext(run_id=run_id):
            yield current_run_id()
            yield current_run_id()

    agen = stream()
    assert await agen.__anext__() is run_id

    async def close_elsewhere() -> RunId | None:
        await agen.aclose()  # runs the generator's exit in this task's copy of the context
        return current_run_id()

    assert await asyncio.create_task(close_elsewhere()) is None


def test_leaving_in_another_context_still_calls_finishers() -> None:
    ended: list[BaseException | None] = []
    add_run_observer(lambda run_id, context: ended.append)
    context = RunContext()
    context.__enter__()
    contextvars.Context().run(context.__exit__, None, None, None)
    assert ended == [None]


def test_leaving_one_entry_twice_is_an_error_and_ends_the_run_once() -> None:
    """Left in a copy of its context made inside it, then again in the context itself."""
    ended: list[BaseException | None] = []
    add_run_observer(lambda run_id, context: ended.append)
    context = RunContext()
    context.__enter__()
    contextvars.copy_context().run(context.__exit__, None, None, None)
    with pytest.raises(RuntimeError, match="left twice"):
        context.__exit__(None, None, None)
    assert ended == [None]
    assert current_run_id() is None


def test_observers_see_every_run_start_and_end() -> None:
    events: list[tuple[str, RunId, object]] = []

    def observer(run_id: RunId, context: RunContext) -> RunFinisher:
        events.append(("start", run_id, context.task))
        assert current_run_id() is run_id  # called once the run is current
        return lambda exc: events.append(("end", run_id, exc))

    add_run_observer(observer)
    add_run_observer(observer)  # registered once
    error = RuntimeError("boom")
    with RunContext(task="t1") as first:
        pass
    with pytest.raises(RuntimeError), RunContext(task="t2") as second:
        raise error
    remove_run_observer(observer)
    with RunContext():
        pass
    assert events == [
        ("start", first.run_id, "t1"),
        ("end", first.run_id, None),
        ("start", second.run_id, "t2"),
        ("end", second.run_id, error),
    ]


def test_finishers_run_in_reverse_order_of_their_observers() -> None:
    order: list[str] = []
    add_run_observer(lambda r, c: lambda e: order.append("first"))
    add_run_observer(lambda r, c: lambda e: order.append("second"))
    add_run_observer(lambda r, c: None)  # an observer may return nothing
    with RunContext():
        pass
    assert order == ["second", "first"]


def test_a_failing_observer_never_breaks_the_run_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[RunId | None] = []

    def broken(run_id: RunId, context: RunContext) -> RunFinisher:
        raise RuntimeError("registry is down")

    def broken_finish(run_id: RunId, context: RunContext) -> RunFinisher:
        def finish(exc: BaseException | None) -> None:
            raise OSError("disk full")

        return finish

    add_run_observer(broken)
    add_run_observer(broken_finish)
    caplog.set_level(logging.DEBUG, logger="agent_run_id")
    for _ in range(5):
        with RunContext():
            calls.append(current_run_id())
    assert len(calls) == 5
    assert all(calls)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "failed when the run started" in warnings[0].getMessage()
    assert "failed when the run ended" in warnings[1].getMessage()
    assert warnings[0].exc_info is not None
    repeats = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(repeats) == 8


def test_remove_an_observer_that_was_never_added_is_a_no_op() -> None:
    remove_run_observer(lambda r, c: None)


def test_a_non_callable_observer_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="observer must be callable, got int"):
        add_run_observer(3)  # type: ignore[arg-type]


def test_observers_under_concurrency_pair_each_start_with_its_end() -> None:
    lock = threading.Lock()
    open_runs: set[RunId] = set()
    ended: list[RunId] = []

    def observer(run_id: RunId, context: RunContext) -> RunFinisher:
        with lock:
            open_runs.add(run_id)

        def finish(exc: BaseException | None) -> None:
            assert current_run_id() != run_id  # the run is no longer current when it ends
            with lock:
                open_runs.remove(run_id)
                ended.append(run_id)

        return finish

    add_run_observer(observer)

    def worker() -> None:
        for _ in range(100):
            with RunContext():
                pass

    with ThreadPoolExecutor(8) as pool:
        for future in [pool.submit(worker) for _ in range(8)]:
            future.result()
    assert open_runs == set()
    assert len(set(ended)) == 800


@needs_notes
def test_an_exception_that_refuses_notes_still_propagates_untouched() -> None:
    @dataclasses.dataclass(frozen=True)
    class Frozen(Exception):
        code: int

    error = Frozen(7)
    with pytest.raises(Frozen) as info, RunContext():
        raise error
    assert info.value is error
    assert not hasattr(error, "__notes__")


@needs_notes
def test_a_run_inside_a_context_manager_keeps_its_note_on_the_way_out() -> None:
    """contextlib re-sets the traceback when it throws into the generator: the note stays."""

    @contextlib.contextmanager
    def step() -> Iterator[RunContext]:
        with RunContext() as inner:
            yield inner

    with pytest.raises(ValueError, match="boom") as info, RunContext(), step() as inner:
        raise ValueError("boom")
    assert info.value.__notes__ == [f"run_id={inner.run_id.value}"]


@needs_notes
def test_a_cached_exception_raised_again_keeps_its_first_note() -> None:
    """The documented limit: one note per exception instance, the first run it escaped."""
    cached = LookupError("not found")
    with pytest.raises(LookupError), RunContext() as first:
        raise cached
    with pytest.raises(LookupError), RunContext():
        raise cached
    assert cached.__notes__ == [f"run_id={first.run_id.value}"]


@needs_notes
def test_a_noted_exception_pickles_to_plain_notes() -> None:
    with pytest.raises(ValueError, match="x") as info, RunContext() as run:
        raise ValueError("x")
    data = pickle.dumps(info.value)
    assert b"agent_run_id" not in data  # loads where the library is not installed
    assert pickle.loads(data).__notes__ == [f"run_id={run.run_id.value}"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_observer_raising_a_base_exception_on_start_leaks_no_run(
    interrupt: type[BaseException],
) -> None:
    """__exit__ never runs then: the entry is undone and the run ends for who saw it start."""
    events: list[tuple[str, object]] = []

    def first(run_id: RunId, context: RunContext) -> RunFinisher:
        events.append(("start", run_id))
        return lambda exc: events.append(("end", exc))

    def interrupting(run_id: RunId, context: RunContext) -> None:
        raise interrupt

    def never(run_id: RunId, context: RunContext) -> None:
        events.append(("never", run_id))

    outer = RunId.generate()
    context = RunContext()
    with RunContext(run_id=outer):
        for observer in (first, interrupting, never):
            add_run_observer(observer)
        with pytest.raises(interrupt) as info:
            context.__enter__()
        assert current_run_id() is outer
        assert events == [("start", context.run_id), ("end", info.value)]
    assert current_run_id() is None
    with pytest.raises(RuntimeError, match="without being entered"):
        context.__exit__(None, None, None)


def test_an_interrupting_first_observer_leaves_no_run_behind() -> None:
    def interrupting(run_id: RunId, context: RunContext) -> None:
        raise KeyboardInterrupt

    add_run_observer(interrupting)
    with pytest.raises(KeyboardInterrupt):
        RunContext().__enter__()
    assert current_run_id() is None


class _FailingTool:
    """An observer as a bound method: one registration per instance."""

    def observe(self, run_id: RunId, context: RunContext) -> None:
        raise RuntimeError("down")


class _FailingCallable:
    """An observer that is an object with __call__."""

    def __call__(self, run_id: RunId, context: RunContext) -> None:
        raise RuntimeError("down")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING]


def test_each_instance_s_failing_bound_method_is_warned_about(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = _FailingTool(), _FailingTool()
    add_run_observer(first.observe)
    with RunContext(), RunContext():  # the second failure of the same observer: debug only
        pass
    add_run_observer(second.observe)
    with RunContext():
        pass
    assert [r.args[0] for r in _warnings(caplog)] == [first.observe, second.observe]  # type: ignore[index]


def test_an_observer_added_again_after_removal_is_warned_about_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(run_id: RunId, context: RunContext) -> None:
        raise RuntimeError("down")

    for _ in range(2):
        add_run_observer(broken)
        with RunContext(), RunContext():
            pass
        remove_run_observer(broken)
    assert len(_warnings(caplog)) == 2


def test_a_new_observer_at_a_freed_observer_s_address_is_warned_about() -> None:
    """Flags were kept by id(): a new observer reusing a freed one's id inherited its flag."""
    levels: list[int] = []

    class Levels(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            levels.append(record.levelno)  # keeps no record: they would keep the observer alive

    log = logging.getLogger("agent_run_id")
    handler = Levels()
    log.addHandler(handler)
    log.propagate = False
    addresses = []
    try:
        for _ in range(50):
            tool = _FailingCallable()
            addresses.append(id(tool))
            add_run_observer(tool)
            with RunContext():
                pass
            remove_run_observer(tool)
            del tool
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert len(set(addresses)) < len(addresses)  # CPython reuses the freed memory
    assert levels == [logging.WARNING] * 50


class _Unhashable:
    """A callable observer that is neither hashable nor weakly referable."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]

    def __call__(self, run_id: RunId, context: RunContext) -> None:
        raise RuntimeError("down")


def test_an_unhashable_observer_is_warned_about_once_and_forgotten_on_removal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observer = _Unhashable()
    other = _Unhashable()
    for _ in range(2):
        add_run_observer(observer)
        add_run_observer(other)
        with RunContext(), RunContext():
            pass
        remove_run_observer(observer)
        remove_run_observer(other)
    assert len(_warnings(caplog)) == 4


def test_a_failing_observer_is_warned_about_once_across_threads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(run_id: RunId, context: RunContext) -> None:
        raise RuntimeError("down")

    add_run_observer(broken)
    barrier = threading.Barrier(16)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:

        def worker() -> None:
            barrier.wait()
            for _ in range(20):
                with RunContext():
                    pass

        with ThreadPoolExecutor(16) as pool:
            for future in [pool.submit(worker) for _ in range(16)]:
                future.result()
    finally:
        sys.setswitchinterval(interval)
    assert len(_warnings(caplog)) == 1
