"""The current run: a ContextVar holding the run's frame, and the RunContext that sets it.

This module owns the frame. Only it and the measured hot paths (``asgi``, ``wsgi``, ``logging``)
read or build frames; everything else reads the run with :func:`current_run_id` or one of the
named helpers below (``tests/test_structure.py`` holds that list).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Final, TypeAlias, cast

from . import _recording
from ._external import check_external_ids
from ._facts import NO_METADATA, Facts, RunView
from ._hooks import RunFinisher, annotators, finish_run, observers, report
from ._notes import note_run
from ._recording import check_registry, record_annotation, record_start
from ._run_id import RunId
from ._session import check_session_id
from ._types import Registry

__all__ = [
    "FACTS",
    "FINISHERS",
    "LOG_FIELDS",
    "OWNER",
    "PREVIOUS",
    "RUN",
    "TOKEN",
    "Captured",
    "Frame",
    "RunContext",
    "activate",
    "annotate",
    "capture",
    "current",
    "current_run",
    "current_run_id",
    "current_session_id",
    "deactivate",
    "enter_unwatched",
    "is_outermost",
    "new_frame",
    "take_finishers",
]

#: One entry into a RunContext: what the ContextVar holds while the run is current. A list, not
#: an object with slots: CPython takes a short list off a free list, several times quicker than
#: making an object and setting its slots, and the ASGI middleware makes one per request. Read at
#: the positions below, and told apart by identity alone (``is``): lists compare by value.
Frame: TypeAlias = list[Any]
RUN: Final = 0  # the RunId
OWNER: Final = 1  # the RunContext entered (a middleware's own, never entered, for its frames)
PREVIOUS: Final = 2  # the frame current before this one, or None
FINISHERS: Final = 3  # list[tuple[culprit, RunFinisher]]: what ends the run for its observers
TOKEN: Final = 4  # the ContextVar token of the entry (None when its setter resets it itself)
LOG_FIELDS: Final = 5  # the log record fields of the run, worked out once by agent_run_id.logging
FACTS: Final = 6  # the run's Facts (session, user, task, ...), or None when it has none

#: What :func:`capture` returns: the run current at that moment (its frame), or None.
Captured: TypeAlias = "Frame | None"


def new_frame(
    run_id: RunId, owner: RunContext, previous: Frame | None, facts: Facts | None = None
) -> Frame:
    """Return a frame of ``run_id`` with no finishers, token or log fields yet."""
    return [run_id, owner, previous, None, None, None, facts]


current: ContextVar[Frame | None] = ContextVar("agent_run_id.current", default=None)


def current_run_id() -> RunId | None:
    """Return the run current in this thread or task, or None outside any run."""
    frame = current.get()
    if frame is None:
        return None
    run: RunId = frame[RUN]
    return run


def current_session_id() -> str | None:
    """Return the session of the current run, or None (outside any run, or a run without one)."""
    frame = current.get()
    if frame is None:
        return None
    facts: Facts | None = frame[FACTS]
    return None if facts is None else facts.session_id


def is_outermost() -> bool:
    """Return whether the current run was entered with no run current (a request's, a task's).

    For run observers, which run as the run is entered: False for a run nested in another, and
    outside any run.
    """
    frame = current.get()
    return frame is not None and frame[PREVIOUS] is None


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
        session_id: the conversation or thread the run belongs to (the caller's own id: 1 to
            128 printable ASCII characters, no spaces or commas); None inherits the session of
            the run it is entered in.
        registry: where to record the run (a ``agent_run_id.registry.RunRegistry``); None
            records it where its enclosing run is recorded, else in the process-wide default
            registry, if one is set.

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
        registry: Registry | None = None,
        session_id: str | None = None,
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
        if session_id is not None:
            check_session_id(session_id)
        # Whether entering makes Facts even in a run that inherits none: middleware's runs don't.
        self._facts = not (
            name is None and user_id is None and task is None and metadata is None
        ) or (session_id is not None)
        self._run_id = run_id
        self._last: RunId | None = run_id
        # Its entries not left yet, in the order entered, by id(): one step to add or drop.
        self._open: dict[int, Frame] = {}
        self.name = name
        self.user_id = user_id
        self.task = task
        self.metadata: Mapping[str, Any] = NO_METADATA if metadata is None else dict(metadata)
        self.registry: Registry | None = registry
        self.session_id = session_id

    @property
    def run_id(self) -> RunId:
        """The run of this context: inside the block the one entered, after it the last one."""
        if self._run_id is not None:
            return self._run_id
        frame = self._own_frame()
        if frame is not None:
            run: RunId = frame[RUN]
            return run
        if self._last is None:
            raise RuntimeError(
                "RunContext() mints its run id when entered: read .run_id inside or after "
                "the with block, or pass run_id=RunId.generate()"
            )
        return self._last

    def __enter__(self) -> RunContext:
        previous = current.get()
        run_id = self._run_id
        if run_id is None:
            run_id = RunId.generate(None if previous is None else previous[RUN])
            self._last = run_id
        # The session of the run this one is entered in, which it inherits unless given its own.
        inherited = None
        if previous is not None and previous[FACTS] is not None:
            inherited = previous[FACTS].session_id
        facts = None
        if self._facts or inherited is not None:
            session_id = inherited if self.session_id is None else self.session_id
            facts = Facts(session_id, self.user_id, self.task, self.name, self.metadata)
        frame = new_frame(run_id, self, previous, facts)
        frame[TOKEN] = current.set(frame)
        self._open[id(frame)] = frame
        registry = _registry_in_effect(frame)
        if registry is not None or observers.items:
            try:
                _start(frame, registry)
            except BaseException as exc:
                # An observer raised KeyboardInterrupt or SystemExit: __exit__ will never run, so
                # undo the entry here and end the run for the observers that saw it start.
                current.reset(frame[TOKEN])
                _drop(self._open, frame)
                if frame[FINISHERS] is not None:
                    finish_run(frame[FINISHERS], exc)
                raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        frame = current.get()
        if frame is None or frame[OWNER] is not self:  # not left in the order entered: look
            frame = self._own_frame()
        if frame is None:
            if not self._open:
                raise RuntimeError("RunContext exited without being entered")
            # Left in a context that never saw this run (an async generator closed from a fresh
            # context): the context that holds the run keeps it, nothing is current here to undo.
            frame = next(reversed(self._open.values()))
        else:
            try:
                current.reset(frame[TOKEN])
            except ValueError:
                # Left in a copy of the context it was entered in (an async generator closed by
                # another task): the token belongs to the original, so restore the value instead.
                current.set(frame[PREVIOUS])
        _drop(self._open, frame)
        if exc is not None:
            note_run(exc, frame[RUN])
        if frame[FINISHERS] is not None:
            finish_run(frame[FINISHERS], exc)

    async def __aenter__(self) -> RunContext:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _own_frame(self) -> Frame | None:
        frame = current.get()
        while frame is not None and frame[OWNER] is not self:
            frame = frame[PREVIOUS]
        return frame

    def __repr__(self) -> str:
        run = self._run_id if self._run_id is not None else self._last
        return f"RunContext(run_id={run!r})"


def _drop(frames: dict[int, Frame], frame: Frame) -> None:
    """Remove the entry ``frame`` from a RunContext's open ones; leaving it twice is an error."""
    if frames.pop(id(frame), None) is not frame:
        raise RuntimeError("RunContext left twice: this entry of it was left already")


def _registry_in_effect(frame: Frame | None) -> Registry | None:
    """Return the registry given to the frame's run or the nearest enclosing one, or the default."""
    while frame is not None:
        registry: Registry | None = frame[OWNER].registry
        if registry is not None:
            return registry
        frame = frame[PREVIOUS]
    return _recording.default


def _start(frame: Frame, registry: Registry | None) -> None:
    """Record the run's start in ``registry`` and tell the observers; keep what ends it."""
    run_id, context = frame[RUN], frame[OWNER]
    # Kept in the frame as they come: an observer that raises KeyboardInterrupt leaves those
    # before it to be finished by RunContext.__enter__.
    finishers: list[tuple[object, RunFinisher]] = []
    frame[FINISHERS] = finishers
    if registry is not None:
        finish = record_start(registry, run_id, frame[FACTS])
        if finish is not None:
            finishers.append((registry, finish))
    for observer in observers.items:
        try:
            finish = observer(run_id, context)
        except Exception:
            report(observer, "run observer %r failed when the run started")
        else:
            if finish is not None:
                finishers.append((observer, finish))


def take_finishers(context: RunContext) -> Callable[[BaseException | None], None]:
    """Take the end of ``context``'s run away from its block, to end the run elsewhere.

    Called inside the block: leaving it then only restores the previous run, and the returned
    function ends the run for its observers, with the exception that ended it (or None). The
    first call ends it; later calls do nothing.
    """
    frame = cast(Frame, context._own_frame())  # called inside the block: there is one
    taken: list[list[tuple[object, RunFinisher]] | None] = [frame[FINISHERS]]
    frame[FINISHERS] = None

    def end(exc: BaseException | None) -> None:
        finishers, taken[0] = taken[0], None
        if finishers is not None:
            finish_run(finishers, exc)

    return end


def capture() -> Captured:
    """Return the run current now, to make current again elsewhere with :func:`activate`."""
    return current.get()


def activate(captured: Captured) -> Token[Frame | None]:
    """Make the run of :func:`capture` current here; undo it with :func:`deactivate`."""
    return current.set(captured)


def deactivate(token: Token[Frame | None]) -> None:
    """Make current again what was current before :func:`activate` gave ``token``."""
    current.reset(token)


def enter_unwatched(
    run_id: RunId, owner: RunContext, name: str | None, session_id: str | None
) -> Token[Frame | None] | None:
    """Make ``run_id`` current, from no run, if nothing would see it start; else return None.

    The work of entering ``RunContext(run_id=run_id, name=name, session_id=session_id)`` where
    nothing current came before, without building one per call, for integrations that start a
    run per request (``owner``, their own RunContext never entered, holds their registry). It
    applies when no registry (``owner``'s or the default) and no observer would record the run;
    otherwise None, and the caller enters a RunContext. Leave with :func:`deactivate`.
    ``session_id`` must be valid (checked by the caller).
    """
    if observers.items or owner.registry is not None or _recording.default is not None:
        return None
    facts = None
    if name is not None or session_id is not None:
        facts = Facts(session_id, None, None, name, NO_METADATA)
    return current.set(new_frame(run_id, owner, None, facts))


def current_run() -> RunView | None:
    """Return a read-only view of the current run, or None outside any run.

    Its id, parent and root, and what is known of it: ``session_id``, ``user_id``, ``task``,
    ``name`` and ``metadata``, as entered and as :func:`annotate` changed them since.
    """
    frame = current.get()
    if frame is None:
        return None
    return RunView(frame[RUN], frame[FACTS])


def annotate(
    *,
    user_id: str | None = None,
    session_id: str | None = None,
    task: str | None = None,
    external_ids: Mapping[str, str] | None = None,
    **metadata: Any,
) -> bool:
    """Set what became known of the current run, from anywhere inside it; return whether it ran.

    For what is learned after the run started: the user once authentication has run (a FastAPI
    dependency, a Django view), the session, the task, the ids other systems gave the run
    (``external_ids={"langfuse_trace": trace_id}``, merged into those it has: the registry then
    finds the run by them), any other facts as keyword metadata (merged into the run's). From
    then on log records, spans, error reports and the run's registry row carry them (the
    registry fills in what it lacks). Options left None are left as they are. Outside any run
    it does nothing and returns False: it never breaks its caller.

    Example::

        async def current_user(request: Request) -> User:
            user = authenticate(request)
            agent_run_id.annotate(user_id=user.id, session_id=request.headers.get("x-chat-id"))
            return user
    """
    for what, value in (("user_id", user_id), ("task", task)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{what} must be a str or None, got {type(value).__name__}")
    if session_id is not None:
        check_session_id(session_id)
    if external_ids is not None:
        external_ids = check_external_ids(external_ids)
    if metadata:
        _check_metadata_keys(metadata)
    frame = current.get()
    if frame is None:
        return False
    # Threads of one run (in_current_run) may annotate at once: each change is kept.
    with _annotating:
        facts: Facts | None = frame[FACTS]
        if facts is None:
            owner: RunContext = frame[OWNER]
            facts = frame[FACTS] = Facts(None, None, None, owner.name, owner.metadata)
        if user_id is not None:
            facts.user_id = user_id
        if session_id is not None:
            facts.session_id = session_id
        if task is not None:
            facts.task = task
        if metadata:
            facts.metadata = {**facts.metadata, **metadata}  # replaced, never changed: views
        if external_ids:
            facts.external_ids = {**facts.external_ids, **external_ids}
        frame[LOG_FIELDS] = None  # worked out again, with the new facts, at the next record
    run_id: RunId = frame[RUN]
    registry = _registry_in_effect(frame)
    if registry is not None:
        record_annotation(registry, run_id, facts)
    for hook in annotators.items:
        try:
            hook(run_id, facts)
        except Exception:
            report(hook, "annotation hook %r failed")
    return True


_annotating = threading.Lock()
# Keyword names that look like annotate()'s own options or a RunContext's: a typo or a mistake,
# not metadata.
_NOT_METADATA = {
    "name": "name is given when the run is entered: RunContext(name=...)",
    "metadata": "pass the metadata's items as keywords: annotate(**metadata)",
    "run_id": "a run's id cannot change: enter a RunContext(run_id=...) instead",
    "user": "the user is user_id=...",
    "session": "the session is session_id=...",
}


def _check_metadata_keys(metadata: Mapping[str, Any]) -> None:
    for key, fix in _NOT_METADATA.items():
        if key in metadata:
            raise TypeError(f"annotate() got {key}=, which is not metadata: {fix}")
