"""new_run and in_current_run: runs for function calls and for code that loses the context."""

from __future__ import annotations

import asyncio
import inspect
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent_run_id import (
    RunContext,
    RunFinisher,
    RunId,
    add_run_observer,
    current_run_id,
    in_current_run,
    new_run,
)


def test_each_call_of_a_decorated_function_is_a_new_run() -> None:
    @new_run
    def step() -> RunId | None:
        return current_run_id()

    first, second = step(), step()
    assert first is not None
    assert second is not None
    assert first != second
    assert first.parent is None
    assert current_run_id() is None


def test_a_decorated_call_is_a_child_of_the_callers_run() -> None:
    @new_run
    def step() -> RunId | None:
        return current_run_id()

    with RunContext() as outer:
        inner = step()
        assert current_run_id() is outer.run_id
    assert inner is not None
    assert inner.parent == outer.run_id


async def test_async_functions_run_as_new_runs() -> None:
    @new_run
    async def agent(i: int) -> tuple[int, RunId | None, RunId | None]:
        before = current_run_id()
        await asyncio.sleep(0)
        return i, before, current_run_id()

    results = await asyncio.gather(*(agent(i) for i in range(300)))
    assert [i for i, _, _ in results] == list(range(300))
    assert all(before is not None and before is after for _, before, after in results)
    assert len({before for _, before, _ in results}) == 300
    assert inspect.iscoroutinefunction(agent)


def test_concurrent_calls_from_many_threads_get_their_own_runs() -> None:
    @new_run
    def step() -> bool:
        mine = current_run_id()
        for _ in range(100):
            if current_run_id() is not mine:
                return False
        return mine is not None

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(lambda _: step(), range(400)))


def test_new_run_with_options_passes_them_to_observers() -> None:
    seen: list[tuple[str | None, str | None, str | None]] = []
    add_run_observer(lambda r, c: seen.append((c.name, c.user_id, c.task)))

    @new_run(user_id="u-7", task="summarize")
    def summarize() -> None:
        pass

    @new_run()
    def plain() -> None:
        pass

    summarize()
    plain()
    assert seen == [
        (summarize.__qualname__, "u-7", "summarize"),
        (plain.__qualname__, None, None),
    ]


def test_decorator_keeps_the_function_metadata() -> None:
    @new_run
    def documented() -> None:
        """Doc."""

    assert documented.__name__ == "documented"
    assert documented.__doc__ == "Doc."


def test_new_run_rejects_generators_with_the_fix() -> None:
    def gen() -> Iterator[int]:
        yield 1

    async def agen() -> AsyncIterator[int]:
        yield 1

    with pytest.raises(TypeError) as sync_info:
        new_run(gen)
    with pytest.raises(TypeError) as async_info:
        new_run(agen)
    assert "generator function" in str(sync_info.value)
    assert "consumer's context" in str(sync_info.value)
    assert str(sync_info.value).endswith("(with RunContext(): for item in gen(): ...)")
    assert str(async_info.value).endswith(
        "(async with RunContext(): async for item in agen(): ...)"
    )
    assert "inside its body" not in str(sync_info.value) + str(async_info.value)


def test_new_run_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="decorates a function, got int"):
        new_run(5)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="user_id must be a str or None"):
        new_run(user_id=5)(lambda: None)  # type: ignore[arg-type]


def test_in_current_run_carries_the_run_into_a_plain_thread() -> None:
    seen: list[RunId | None] = []
    with RunContext() as context:
        task = in_current_run(lambda: seen.append(current_run_id()))
        thread = threading.Thread(target=task)
        thread.start()
        thread.join()
    assert seen == [context.run_id]


async def test_in_current_run_with_run_in_executor() -> None:
    loop = asyncio.get_running_loop()

    async def agent() -> bool:
        async with RunContext() as context:
            got = await loop.run_in_executor(None, in_current_run(current_run_id))
            return got is context.run_id

    assert all(await asyncio.gather(*(agent() for _ in range(100))))


def test_one_wrapped_callable_called_from_many_threads_at_once() -> None:
    barrier = threading.Barrier(8)
    with RunContext() as context:

        def callback(i: int) -> tuple[int, RunId | None]:
            barrier.wait()
            # a run entered inside one call must not show up in the others
            with RunContext():
                pass
            return i, current_run_id()

        wrapped = in_current_run(callback)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(wrapped, range(8)))
    assert results == [(i, context.run_id) for i in range(8)]


def test_in_current_run_outside_a_run_runs_outside_any_run() -> None:
    wrapped = in_current_run(current_run_id)
    with RunContext():
        assert wrapped() is None


def test_in_current_run_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match="takes a callable, got str"):
        in_current_run("nope")  # type: ignore[arg-type]


class _Agent:
    """An async callable that inspect.iscoroutinefunction does not see as one."""

    async def __call__(self, seen: list[RunId | None]) -> RunId | None:
        seen.append(current_run_id())
        await asyncio.sleep(0)
        seen.append(current_run_id())
        return current_run_id()


def _record_runs(events: list[tuple[str, RunId, object]]) -> None:
    def observer(run_id: RunId, context: RunContext) -> RunFinisher:
        events.append(("start", run_id, context.name))
        return lambda exc: events.append(("end", run_id, exc))

    add_run_observer(observer)


async def test_an_object_with_an_async_call_runs_its_body_in_a_new_run() -> None:
    events: list[tuple[str, RunId, object]] = []
    _record_runs(events)
    agent = new_run(_Agent())
    seen: list[RunId | None] = []
    async with RunContext() as outer:
        got = await agent(seen)
    assert got is not None
    assert seen == [got, got]
    assert got.parent == outer.run_id
    assert events[1:3] == [("start", got, "_Agent"), ("end", got, None)]


async def test_a_sync_function_returning_a_coroutine_keeps_its_run_for_the_await() -> None:
    events: list[tuple[str, RunId, object]] = []
    _record_runs(events)
    seen: list[RunId | None] = []

    async def work() -> RunId | None:
        await asyncio.sleep(0)
        seen.append(current_run_id())
        return current_run_id()

    @new_run
    def handler() -> Coroutine[Any, Any, RunId | None]:
        seen.append(current_run_id())
        return work()

    awaitable = handler()
    assert current_run_id() is None  # the caller is back in its own run until it awaits
    (start,) = events
    assert events == [("start", start[1], handler.__qualname__)]
    got = await awaitable
    assert seen == [got, got]
    assert events == [start, ("end", got, None)]


async def test_the_awaited_run_ends_with_the_exception_and_names_it() -> None:
    events: list[tuple[str, RunId, object]] = []
    _record_runs(events)
    error = LookupError("tool failed")

    async def work() -> None:
        await asyncio.sleep(0)
        raise error

    @new_run
    def handler() -> Awaitable[None]:
        return work()

    with pytest.raises(LookupError):
        await handler()
    (_, run_id, _), end = events
    assert end == ("end", run_id, error)
    if sys.version_info >= (3, 11):
        assert error.__notes__ == [f"run_id={run_id.value}"]
    assert current_run_id() is None


async def test_in_current_run_keeps_the_run_across_the_awaits_of_an_async_function() -> None:
    seen: list[RunId | None] = []

    async def tool() -> RunId | None:
        seen.append(current_run_id())
        await asyncio.sleep(0)
        seen.append(current_run_id())
        return current_run_id()

    with RunContext() as context:
        wrapped = in_current_run(tool)
        wrapped_agent = in_current_run(_Agent())
    assert inspect.iscoroutinefunction(wrapped)
    async with RunContext() as other:
        assert await wrapped() is context.run_id
        assert current_run_id() is other.run_id  # restored after the await
        assert await wrapped_agent(seen) is context.run_id
    assert seen == [context.run_id] * 4


async def test_in_current_run_of_a_function_returning_an_awaitable_awaits_in_the_run() -> None:
    async def work() -> RunId | None:
        await asyncio.sleep(0)
        return current_run_id()

    def start() -> Coroutine[Any, Any, RunId | None]:
        return work()

    with RunContext() as context:
        wrapped = in_current_run(start)
        outside = in_current_run(work)  # made inside a run: that run is the one carried
    with RunContext():
        assert await wrapped() is context.run_id
    assert await outside() is context.run_id
    nowhere = in_current_run(work)
    with RunContext():
        assert await nowhere() is None
