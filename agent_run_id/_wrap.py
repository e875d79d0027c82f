"""Function wrappers: run each call as a new run, or carry the current run to another thread."""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, ParamSpec, TypeVar, cast, overload

from ._context import (
    Captured,
    RunContext,
    activate,
    capture,
    current_run_id,
    deactivate,
    take_finishers,
)
from ._notes import note_run

__all__ = ["in_current_run", "new_run"]

P = ParamSpec("P")
R = TypeVar("R")


@overload
def new_run(fn: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def new_run(
    *,
    name: str | None = None,
    user_id: str | None = None,
    task: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def new_run(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    user_id: str | None = None,
    task: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Callable[P, R] | Callable[[Callable[P, R]], Callable[P, R]]:
    """Run every call of the decorated function as its own new run.

    Each call enters a fresh ``RunContext()``: a child of the caller's run, or a new root run.
    Works on plain and ``async def`` functions (and objects with an ``async def __call__``),
    called concurrently from any number of threads and tasks. A plain function that returns an
    awaitable keeps its run until that awaitable is awaited to the end: the await runs in the
    same run, and observers see the run end when it does. Use it bare (``@new_run``) or with the
    RunContext options (``@new_run(user_id=..., task=...)``); ``name`` defaults to the
    function's qualified name.
    Generator functions are refused: a generator runs in its consumer's context, so start the run
    in the consumer around the iteration (``with RunContext(): for x in gen(): ...``, or
    ``async with RunContext(): async for x in agen(): ...``).

    Example::

        @new_run
        async def handle(task: str) -> str: ...
    """

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if not callable(cast(object, func)):
            raise TypeError(f"new_run decorates a function, got {type(func).__name__}")
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            # A generator runs in its consumer's context: a run entered in its body would be the
            # consumer's current run between iterations. Only the consumer can scope it.
            loop = (
                "async with RunContext(): async for"
                if inspect.isasyncgenfunction(func)
                else "with RunContext(): for"
            )
            raise TypeError(
                f"new_run cannot decorate the generator function {func.__qualname__}: a "
                "generator runs in its consumer's context, so a run cannot stay its own across "
                "yields; start the run in the consumer around the iteration instead "
                f"({loop} item in {func.__name__}(): ...)"
            )
        make_context = functools.partial(
            RunContext,
            name=name or getattr(func, "__qualname__", None) or type(func).__qualname__,
            user_id=user_id,
            task=task,
            metadata=metadata,
        )
        make_context()  # checks the options once, at decoration time

        if _is_async(func):
            call = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with make_context():
                    return await call(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run_sync(*args: P.args, **kwargs: P.kwargs) -> R:
            with make_context() as context:
                result = func(*args, **kwargs)
                if inspect.isawaitable(result):
                    # Its body runs when awaited, after this block: the run goes along with it.
                    return cast(R, _carry_over(context, result))
                return result

        return run_sync

    if fn is None:
        return decorate
    return decorate(fn)


def in_current_run(fn: Callable[P, R]) -> Callable[P, R]:
    """Return a callable that runs ``fn`` inside the run current now, wherever it is called.

    For code that does not carry the context along: ``ThreadPoolExecutor.submit``,
    ``loop.run_in_executor``, callbacks of other libraries. The whole context of this moment is
    captured (so OpenTelemetry spans come along too) and each call runs in a fresh copy of it,
    so the callable may be called many times, from many threads at once.

    For an ``async def`` function (or a function that returns an awaitable), the returned
    callable makes the captured run current around each await and restores the previous run
    after it; there the run alone is carried, not the rest of the context.

    Example::

        loop.run_in_executor(None, in_current_run(call_tool), "search_web")
    """
    if not callable(cast(object, fn)):
        raise TypeError(f"in_current_run takes a callable, got {type(fn).__name__}")
    captured = contextvars.copy_context()
    run = capture()

    if _is_async(fn):
        call = cast(Callable[..., Awaitable[Any]], fn)

        @functools.wraps(fn)
        async def run_async_in_captured(*args: Any, **kwargs: Any) -> Any:
            return await _await_in(run, call(*args, **kwargs))

        return run_async_in_captured  # type: ignore[return-value]

    @functools.wraps(fn)
    def run_in_captured(*args: P.args, **kwargs: P.kwargs) -> R:
        result = captured.copy().run(fn, *args, **kwargs)
        if inspect.isawaitable(result):
            return cast(R, _await_in(run, result))
        return result

    return run_in_captured


def _is_async(func: object) -> bool:
    """Whether calling ``func`` makes a coroutine: an ``async def``, or an async ``__call__``."""
    # type(func).__call__, not func.__call__: calling an object looks the method up on its type.
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__)


T = TypeVar("T")


def _carry_over(context: RunContext, awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """Return a coroutine that awaits ``awaitable`` in ``context``'s run, which ends with it.

    For a sync function that returns an awaitable inside its run: called inside the block,
    before it is left. The run's end moves to the coroutine, so leaving the block only restores
    the previous run, and observers see the run end when the await ends, with the exception
    that escaped it. The run's id is noted on that exception as on leaving a block.
    """
    return _await_to_the_end(capture(), take_finishers(context), awaitable)


async def _await_to_the_end(
    run: Captured, end: Callable[[BaseException | None], None], awaitable: Awaitable[T]
) -> T:
    escaped: BaseException | None = None
    token = activate(run)
    try:
        return await awaitable
    except BaseException as exc:
        escaped = exc
        run_id = current_run_id()
        if run_id is not None:
            note_run(exc, run_id)
        raise
    finally:
        deactivate(token)
        end(escaped)


async def _await_in(run: Captured, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` with the captured run current, restoring the previous run after."""
    token = activate(run)
    try:
        return await awaitable
    finally:
        deactivate(token)
