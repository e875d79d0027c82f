"""The current run: a ContextVar, the RunContext that sets it, and the run observers."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from contextvars import ContextVar
from types import MappingProxyType, TracebackType
from typing import Any, Final, TypeAlias, TypeVar, cast

from ._hooks import Hooks
from ._run_id import RunId

__all__ = [
    "RunContext",
    "RunFinisher",
    "RunObserver",
    "add_run_observer",
    "current_run_id",
    "remove_run_observer",
]

_log = logging.getLogger("agent_run_id")

#: Called when a run ends, with the exception that escaped it (None when it ended normally).
RunFinisher = Callable[[BaseException | None], object]
#: Called when a run starts, with the run and its RunContext; may return a RunFinisher.
RunObserver = Callable[[RunId, "RunContext"], RunFinisher | None]

_NOTE_PREFIX = "run_id="
# Our note exactly: a user's own note that merely starts with "run_id=" is not ours.
_OUR_NOTE = re.compile(r"run_id=[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# The metadata of a run given none: one shared, read-only mapping.
_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


#: One entry into a RunContext: what the ContextVar holds while the run is current. A list, not
#: an object with slots: CPython takes a short list off a free list, several times quicker than
#: making an object and setting its slots, and the ASGI middleware makes one per request. Read at
#: the positions below, and told apart by identity alone (``is``): lists compare by value.
_Frame: TypeAlias = list[Any]
_RUN: Final = 0  # the RunId
_OWNER: Final = 1  # the RunContext entered (a middleware's own, never entered, for its frames)
_PREVIOUS: Final = 2  # the frame current before this one, or None
_FINISHERS: Final = 3  # list[tuple[RunObserver, RunFinisher]], once an observer returns one
_TOKEN: Final = 4  # the ContextVar token of the entry (None when its setter resets it itself)
_LOG_FIELDS: Final = 5  # the log record fields of the run, worked out once by agent_run_id.logging


def _new_frame(run_id: RunId, owner: RunContext, previous: _Frame | None) -> _Frame:
    """Return a frame of ``run_id`` with no finishers, token or log fields yet."""
    return [run_id, owner, previous, None, None, None]


_current: ContextVar[_Frame | None] = ContextVar("agent_run_id.current", default=None)


def current_run_id() -> RunId | None:
    """Return the run current in this thread or task, or None outside any run."""
    frame = _current.get()
    if frame is None:
        return None
    run: RunId = frame[_RUN]
    return run


def check_registry(registry: object) -> None:
    """Raise TypeError unless ``registry`` is None or a run registry.

    Checked by shape (a ``start`` method): the core never imports the registry module.
    """
    if registry is not None and not callable(getattr(registry, "start", None)):
        raise TypeError(
            f"registry must be a RunRegistry or None, got {type(registry).__name__}: "
            "pass agent_run_id.registry.SQLiteRunRegistry(path), for example"
        )


class RunContext:
    """Make a run the current one for a block of sync or async code.

    Inside ``with RunContext(run_id=run_id):`` (or ``async with``), :func:`current_run_id`
    returns ``run_id`` in this thread or task and in the tasks and threads it starts with a copy
    of its context; other tasks and threads are untouched. On exit the previous run comes back,
    also when an exception escapes, which then carries the note ``run_id=<id>`` (Python 3.11+).

    Args:
        run_id: the run to enter. When omitted, a new run is minted at each entry: a child of the
            run current then, or a new root run.
        name: what runs here (an agent's or function's name), for observers such as run spans.
        user_id: the user the run works for, for observers such as the run registry.
        task: a short summary of the task, for observers.
        metadata: any other JSON-able facts about the run, for observers.
        registry: where to record the run (a ``agent_run_id.registry.RunRegistry``); None
            records it in the process-wide default registry, if one is set.

    Example::

        with RunContext() as run:
            logger.info("agent started")  # stamped with run.run_id
    """

    def __init__(
        self,
        run_id: RunId | None = None,
        *,
        name: str | None = None,
        user_id: str | None = None,
        task: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        registry: Any = None,
    ) -> None:
        if run_id is not None and not isinstance(run_id, RunId):
            raise TypeError(
                f"run_id must be a RunId or None, got {type(run_id).__name__}: "
                "wrap a string with RunId.from_string(text)"
            )
        # Middleware makes one RunContext per request, mostly with run_id alone: skip the checks
        # of options that were not given.
        if name is not None or user_id is not None or task is not None:
            for what, value in (("name", name), ("user_id", user_id), ("task", task)):
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{what} must be a str or None, got {type(value).__name__}")
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a mapping or None, got {type(metadata).__name__}")
        if registry is not None:
            check_registry(registry)
        self._run_id = run_id
        self._last: RunId | None = run_id
        # Its entries not left yet, in the order entered, by id(): one step to add or drop.
        self._open: dict[int, _Frame] = {}
        self.name = name
        self.user_id = user_id
        self.task = task
        self.metadata: Mapping[str, Any] = _NO_METADATA if metadata is None else dict(metadata)
        self.registry: Any = registry

    @property
    def run_id(self) -> RunId:
        """The run of this context: inside the block the one entered, after it the last one."""
        if self._run_id is not None:
            return self._run_id
        frame = self._own_frame()
        if frame is not None:
            run: RunId = frame[_RUN]
            return run
        if self._last is None:
            raise RuntimeError(
                "RunContext() mints its run id when entered: read .run_id inside or after "
                "the with block, or pass run_id=RunId.generate()"
            )
        return self._last

    def __enter__(self) -> RunContext:
        previous = _current.get()
        run_id = self._run_id
        if run_id is None:
            run_id = RunId.generate(None if previous is None else previous[_RUN])
            self._last = run_id
        frame = _new_frame(run_id, self, previous)
        frame[_TOKEN] = _current.set(frame)
        self._open[id(frame)] = frame
        observers = _observers.items
        if observers:
            try:
                _start(frame, observers)
            except BaseException as exc:
                # An observer raised KeyboardInterrupt or SystemExit: __exit__ will never run, so
                # undo the entry here and end the run for the observers that saw it start.
                _current.reset(frame[_TOKEN])
                _drop(self._open, frame)
                if frame[_FINISHERS] is not None:
                    _finish(frame[_FINISHERS], exc)
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        frame = _current.get()
        if frame is None or frame[_OWNER] is not self:  # not left in the order entered: look
            frame = self._own_frame()
        if frame is None:
            if not self._open:
                raise RuntimeError("RunContext exited without being entered")
            # Left in a context that never saw this run (an async generator closed from a fresh
            # context): the context that holds the run keeps it, nothing is current here to undo.
            frame = next(reversed(self._open.values()))
        else:
            try:
                _current.reset(frame[_TOKEN])
            except ValueError:
                # Left in a copy of the context it was entered in (an async generator closed by
                # another task): the token belongs to the original, so restore the value instead.
                _current.set(frame[_PREVIOUS])
        _drop(self._open, frame)
        if exc is not None:
            _add_note(exc, frame[_RUN])
        if frame[_FINISHERS] is not None:
            _finish(frame[_FINISHERS], exc)

    async def __aenter__(self) -> RunContext:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _own_frame(self) -> _Frame | None:
        frame = _current.get()
        while frame is not None and frame[_OWNER] is not self:
            frame = frame[_PREVIOUS]
        return frame

    def __repr__(self) -> str:
        run = self._run_id if self._run_id is not None else self._last
        return f"RunContext(run_id={run!r})"


def _drop(frames: dict[int, _Frame], frame: _Frame) -> None:
    """Remove the entry ``frame`` from a RunContext's open ones; leaving it twice is an error."""
    if frames.pop(id(frame), None) is not frame:
        raise RuntimeError("RunContext left twice: this entry of it was left already")


def _still_open(frame: _Frame) -> bool:
    """Return whether the entry ``frame`` has not been left yet.

    A frame with no token was set by a middleware that resets it itself, without entering its
    RunContext: it is open for as long as anything holds it.
    """
    return frame[_TOKEN] is None or frame[_OWNER]._open.get(id(frame)) is frame


def _add_note(exc: BaseException, run_id: RunId) -> None:
    """Note the innermost run on an exception once, whatever runs it crosses on its way out.

    An exception that already carries a ``run_id=<id>`` note keeps it: the same raise crossing
    outer runs must keep naming the innermost. Only a note of exactly that shape counts: a note
    of the user's that starts with ``run_id=`` does not stop ours. (An exception instance cached
    and raised again in a later run therefore keeps naming the first run; telling the two apart
    needs the traceback, which this must not keep alive.)
    """
    add_note = getattr(exc, "add_note", None)  # PEP 678, Python 3.11+
    if add_note is None or not isinstance(exc, Exception):
        return
    notes = getattr(exc, "__notes__", ())
    if any(isinstance(note, str) and _OUR_NOTE.fullmatch(note) for note in notes):
        return
    try:
        add_note(f"{_NOTE_PREFIX}{run_id.value}")
    except Exception:
        # An exception class that refuses new attributes (a frozen dataclass) refuses the note
        # too; the user's exception must go on as it is, not be replaced by that error.
        return


# Observers are kept in a tuple replaced as a whole under a lock, so entering a run reads them
# without taking the lock.
_observers: Hooks[RunObserver] = Hooks()


class _Reported:
    """The observers whose first failure has been logged: one flag per registered observer.

    Held weakly where the observer allows it (a bound method is compared by its function and
    its instance, as registration compares it), by identity otherwise; an observer's flag goes
    when it is removed, so an observer registered later never inherits it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._weak: weakref.WeakSet[object] = weakref.WeakSet()
        self._strong: list[object] = []  # not weakly referable, or not hashable

    def first(self, culprit: object) -> bool:
        """Flag ``culprit`` and return whether this is its first failure."""
        with self._lock:
            try:
                if culprit in self._weak:
                    return False
                self._weak.add(culprit)
            except TypeError:
                if any(seen is culprit for seen in self._strong):
                    return False
                self._strong.append(culprit)
            return True

    def discard(self, culprit: object) -> None:
        """Forget ``culprit``'s flag; a no-op when it has none."""
        with self._lock:
            with contextlib.suppress(TypeError):  # not weakly referable, or not hashable
                self._weak.discard(culprit)
            self._strong = [seen for seen in self._strong if seen is not culprit]

    def clear(self) -> None:
        """Forget every flag."""
        with self._lock:
            self._weak.clear()
            self._strong.clear()


_reported = _Reported()


def add_run_observer(observer: RunObserver) -> None:
    """Call ``observer(run_id, context)`` each time a run is entered, in any thread or task.

    The observer may return a finisher, called with the exception that escaped the run (or None)
    when the run is left. This is how integrations (the run registry, OpenTelemetry, Sentry) hook
    into runs. Adding the same observer twice registers it once. An observer or finisher that
    raises never breaks the run: its first failure is logged as a warning on the
    ``agent_run_id`` logger with its traceback, later ones at debug level.
    """
    if not callable(cast(object, observer)):
        raise TypeError(f"observer must be callable, got {type(observer).__name__}")
    _observers.add(observer)


def remove_run_observer(observer: RunObserver) -> None:
    """Stop calling ``observer``; runs already entered still call their finishers.

    Its failures are forgotten: added again, its next failure is logged as a warning again.
    """
    _observers.remove(observer)
    _reported.discard(observer)


def _start(frame: _Frame, observers: tuple[RunObserver, ...]) -> None:
    run_id, context = frame[_RUN], frame[_OWNER]
    for observer in observers:
        try:
            finish = observer(run_id, context)
        except Exception:
            _report(observer, "when the run started")
        else:
            if finish is not None:
                if frame[_FINISHERS] is None:
                    frame[_FINISHERS] = []
                frame[_FINISHERS].append((observer, finish))


def _finish(finishers: list[tuple[RunObserver, RunFinisher]], exc: BaseException | None) -> None:
    for observer, finish in reversed(finishers):
        try:
            finish(exc)
        except Exception:
            _report(observer, "when the run ended")


def _report(culprit: object, when: str) -> None:
    first = _reported.first(culprit)
    _log.log(
        logging.WARNING if first else logging.DEBUG,
        "run observer %r failed %s; the run goes on%s",
        culprit,
        when,
        "" if first else " (repeated failure)",
        exc_info=True,
    )


T = TypeVar("T")


def take_finishers(context: RunContext) -> Callable[[BaseException | None], None]:
    """Take the end of ``context``'s run away from its block, to end the run elsewhere.

    Called inside the block: leaving it then only restores the previous run, and the returned
    function ends the run for its observers, with the exception that ended it (or None). The
    first call ends it; later calls do nothing.
    """
    frame = cast(_Frame, context._own_frame())  # called inside the block: there is one
    taken: list[list[tuple[RunObserver, RunFinisher]] | None] = [frame[_FINISHERS]]
    frame[_FINISHERS] = None

    def end(exc: BaseException | None) -> None:
        finishers, taken[0] = taken[0], None
        if finishers is not None:
            _finish(finishers, exc)

    return end


def _carry_over(context: RunContext, awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    """Return a coroutine that awaits ``awaitable`` in ``context``'s run, which ends with it.

    For a sync function that returns an awaitable inside its run: called inside the block,
    before it is left. The run's finishers move to the coroutine, so leaving the block only
    restores the previous run, and observers see the run end when the await ends, with the
    exception that escaped it. The run's id is noted on that exception as on leaving a block.
    """
    frame = cast(_Frame, context._own_frame())  # called inside the block: there is one
    return _await_to_the_end(frame, take_finishers(context), awaitable)


async def _await_to_the_end(
    frame: _Frame, end: Callable[[BaseException | None], None], awaitable: Awaitable[T]
) -> T:
    escaped: BaseException | None = None
    token = _current.set(frame)
    try:
        return await awaitable
    except BaseException as exc:
        escaped = exc
        _add_note(exc, frame[_RUN])
        raise
    finally:
        _current.reset(token)
        end(escaped)


def _captured_run() -> _Frame | None:
    """Return the run current now, to make current again later with :func:`_await_in`."""
    return _current.get()


async def _await_in(frame: _Frame | None, awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` with the run ``frame`` current, restoring the run after."""
    token = _current.set(frame)
    try:
        return await awaitable
    finally:
        _current.reset(token)
