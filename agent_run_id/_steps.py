"""Steps: a framework's tool call, model call or chain, recorded as a run of ours.

Agent frameworks tell of their steps through callbacks (LangChain's handlers, the OpenAI Agents
SDK's tracing processors, MCP's request handlers): a start here, an end there, often in another
task or thread than the start, and the step's body in between. A :class:`Step` is such a step as
a child run: recorded (registry, observers such as spans) from its start to its end wherever
those are called, and made current for the step's body with :meth:`Step.enter` where the
framework runs it in the caller's context, so the body's log lines and outbound calls carry it.

The step's run is entered in a context of its own, a copy of the context it was started in: its
registry, session and observers are those of the run it was started in, and ending it never
touches the caller's context.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Mapping
from contextvars import Token
from typing import Any

from ._context import (
    Captured,
    RunContext,
    activate,
    annotate,
    capture,
    current_run_id,
    deactivate,
)
from ._external import check_external_ids
from ._run_id import RunId

__all__ = ["ReportedError", "Step"]


class ReportedError(Exception):
    """An error a framework reported as a value, not raised: what a step's record shows.

    A tool result marked ``isError`` (MCP), a span that ended with an error (the OpenAI Agents
    SDK): the step's run is recorded as failed with this exception's message.
    """


class Step:
    """A framework's step as a child run of ours, from its start to its end.

    Started at once: a child of ``parent``, or of the current run when ``parent`` is None (a
    root run outside any run). Recorded in the registry and for the observers in effect where
    its parent step runs, when ``parent`` is a step, else where it is made.

    Args:
        name: what the step is (``"tool search"``, ``"tools/call search"``); the run's name.
        parent: the step or run the step belongs to; None: the current run.
        metadata: any other JSON-able facts of the step, recorded with it.
        external_ids: the ids the framework gave the step (``{"langchain_run": "..."}``); an
            invalid one raises ValueError (as ``annotate()`` does) before the step starts.
    """

    __slots__ = ("_context", "_ended", "_frame", "_lock", "_run", "run_id")

    #: The step's run: a child of the run it belongs to.
    run_id: RunId
    _context: contextvars.Context
    _lock: threading.Lock

    def __init__(
        self,
        name: str,
        *,
        parent: Step | RunId | None = None,
        metadata: Mapping[str, Any] | None = None,
        external_ids: Mapping[str, str] | None = None,
    ) -> None:
        if external_ids:  # checked before the run starts: a bad id never leaves it unended
            external_ids = check_external_ids(external_ids)
        of: RunId | None
        if isinstance(parent, Step):
            # Entered where the parent step's run is current: its registry and session hold.
            with parent._lock:
                self._context = parent._context.run(contextvars.copy_context)
            of = parent.run_id
        elif parent is None or isinstance(parent, RunId):
            self._context = contextvars.copy_context()
            of = current_run_id() if parent is None else parent
        else:
            raise TypeError(
                f"parent must be a Step, a RunId or None, got {type(parent).__name__}: give the "
                "step or run the step belongs to (None: the current run)"
            )
        self.run_id = RunId.generate() if of is None else of.child()
        self._run = RunContext(self.run_id, name=name, metadata=metadata)
        self._lock = threading.Lock()  # a context is entered by one thread at a time
        self._ended = False
        with self._lock:
            self._context.run(self._run.__enter__)
            if external_ids:
                self._context.run(annotate, external_ids=external_ids)
            self._frame: Captured = self._context.run(capture)

    def enter(self) -> Token[Captured]:
        """Make the step's run current here, for its body; give the token to :meth:`leave`."""
        return activate(self._frame)

    def leave(self, token: Token[Captured]) -> None:
        """Make current again what was current before :meth:`enter` gave ``token``.

        Called in another context than ``enter`` (a framework that ends a step in another task),
        it does nothing: the context that entered it keeps it until it ends.
        """
        with contextlib.suppress(ValueError):  # the token belongs to another context
            deactivate(token)

    def annotate(self, **facts: Any) -> None:
        """Add facts to the step's run, as ``agent_run_id.annotate()`` does to the current one."""
        with self._lock:
            if not self._ended:
                self._context.run(annotate, **facts)

    def finish(self, error: BaseException | str | None = None) -> None:
        """End the step: ``"ok"``, or failed with ``error`` (an exception, or a message).

        A message is recorded as a :class:`ReportedError`. The first call ends the step; later
        ones do nothing, so a framework that reports an end twice records it once.
        """
        if isinstance(error, str):
            error = ReportedError(error)
        with self._lock:
            if self._ended:
                return
            self._ended = True
            kind = None if error is None else type(error)
            self._context.run(self._run.__exit__, kind, error, None)

    @property
    def ended(self) -> bool:
        """Whether :meth:`finish` was called."""
        return self._ended

    def __repr__(self) -> str:
        return f"Step(run_id={self.run_id!r}, name={self._run.name!r})"
