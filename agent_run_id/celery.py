"""Carry the run through Celery: a task sent inside a run runs inside it on the worker.

:func:`install` does this for one app:

- ``before_task_publish`` adds ``X-Run-Id`` and the lineage headers to each message sent inside a
  run, with ``X-Session-Id`` when the run has a session and, only with ``send_user=True``,
  ``X-User-Id`` (a retry carries the run its first attempt came with; the next task of a chain,
  which Celery sends after the body returned, carries the run of the task before it);
- the app's task classes get a ``__call__`` that runs each execution's body inside
  ``RunContext``: the run in the message, or a child of it (``mode="child"``), or a new run when
  the task was sent outside any run (by beat, say), with the message's session (and user). The
  worker's context is restored after success, failure or retry.

The body runs inside the run, not between the ``task_prerun`` and ``task_postrun`` signals, so
that the run nests inside what signal-based instrumentations do around a task (OpenTelemetry's
Celery instrumentation attaches its context in ``task_prerun`` and detaches it in
``task_postrun``) and each context is restored in order; so that the run's observers see the
exception (a failed task's run span is an error, the run registry records ``error``); and so
that the exception carries its run note before Celery formats the traceback it logs and stores
(``AsyncResult.traceback``). Celery's ``Retry``, ``Ignore`` and ``Reject`` are not failures: the
run ends without an error.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

try:
    from celery import Celery, signals  # type: ignore[import-untyped]
    from celery.app.task import Task as _BaseTask  # type: ignore[import-untyped]
    from celery.exceptions import Ignore, Reject, Retry  # type: ignore[import-untyped]
except ImportError as error:
    from ._optional import missing_extra

    raise missing_extra("celery", "celery", "celery") from error

from ._context import RunContext, current_run_id, current_session_id
from ._hooks import add_reset
from ._outbound import USER_HEADER, check_send_user, current_user_id
from ._propagation import NAMES, SESSION_HEADER, run_from_wire
from ._run_id import RunId, lineage_fields
from ._session import parse_session_id
from ._show import show_value

__all__ = ["install", "uninstall"]

_MODES = ("continue", "child")
# What Celery itself does not count as a task failure (no task_failure signal).
_NOT_FAILURES = (Retry, Ignore, Reject)
_BASE_CALL = _BaseTask.__call__


class _Execution:
    """One execution of a task in this context: what the messages it leads to carry."""

    __slots__ = ("origin", "previous", "run", "session_id", "task_id", "user_id")

    def __init__(
        self,
        task_id: str,
        origin: RunId,
        run: RunId,
        previous: _Execution | None,
        session_id: str | None = None,
        user_id: str | None = None,
    ) -> None:
        self.task_id = task_id
        self.origin = origin
        self.run = run
        self.previous = previous
        self.session_id = session_id
        self.user_id = user_id


# Set when a task's body starts and kept until its task_postrun: Celery sends a chain's next
# task and the error callbacks after the body returned, outside the run, as children of the task.
_executing: ContextVar[_Execution | None] = ContextVar(
    "agent_run_id.celery.executing", default=None
)


class _Installation:
    """The publish receiver and the task runner for one app."""

    def __init__(self, app: Celery, mode: str, send_user: bool = False) -> None:
        self.app = app
        self.mode = mode
        self.send_user = send_user

    def publish(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        if not isinstance(headers, dict):
            return
        executing = _executing.get()
        run = current_run_id()
        session_id = current_session_id()
        user_id = current_user_id() if self.send_user else None
        if executing is not None:
            if executing.task_id == headers.get("id"):
                run = executing.origin  # a retry: from the run its first attempt came with
                session_id, user_id = executing.session_id, executing.user_id
            elif run is None and executing.task_id == headers.get("parent_id"):
                run = executing.run  # the next task of a chain, an error callback
                session_id, user_id = executing.session_id, executing.user_id
        if run is not None:
            for name in (*NAMES, SESSION_HEADER):
                headers.pop(name, None)
            headers.update(lineage_fields(run, NAMES))
            if session_id is not None:
                headers[SESSION_HEADER] = session_id
            # Another app's installation may send the user: only one that sends it touches it.
            if self.send_user:
                headers.pop(USER_HEADER, None)
                if user_id is not None:
                    headers[USER_HEADER] = user_id

    def wrap_tasks(self, sender: Any = None, **_: Any) -> None:
        # Tasks with a base class of their own (not the app's Task), made when the app finalized.
        for task in list(self.app._tasks.values()):
            _wrap(type(task))

    def run(self, task: Any, body: Callable[[], Any]) -> Any:
        request = task.request
        incoming = run_from_wire(*(request.get(name) for name in NAMES))
        if incoming is None:
            # Run eagerly (task.apply) inside a run: that run came with no message.
            incoming = current_run_id()
        if incoming is None:
            run = origin = RunId.generate()
        else:
            origin = incoming
            run = incoming.child() if self.mode == "child" else incoming
        # None when absent or invalid: then an eager task inherits the session of its caller.
        session_id = parse_session_id(request.get(SESSION_HEADER))
        user_id = parse_session_id(request.get(USER_HEADER))
        _executing.set(_Execution(request.id, origin, run, _executing.get(), session_id, user_id))
        context = RunContext(run_id=run, name=task.name, session_id=session_id, user_id=user_id)
        context.__enter__()
        try:
            result = body()
        except _NOT_FAILURES:
            context.__exit__(None, None, None)
            raise
        except BaseException as exc:
            context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        context.__exit__(None, None, None)
        return result

    def postrun(self, sender: Any = None, task_id: Any = None, **_: Any) -> None:
        executing = _executing.get()
        if executing is not None and executing.task_id == task_id:
            _executing.set(executing.previous)


_lock = threading.Lock()
_installed: dict[int, _Installation] = {}
_wrapped: weakref.WeakSet[type] = weakref.WeakSet()


def _wrap(cls: type) -> None:
    """Give ``cls`` a ``__call__`` that runs the body inside the run of its app's installation.

    It stays after :func:`uninstall` (the worker chose how to call each task when it started)
    and then runs the body as Celery would.
    """
    if any(base in _wrapped for base in cls.__mro__):
        return
    inner = cls.__call__
    plain = inner is _BASE_CALL

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self.request.called_directly:  # task(...) in code, not an execution by a worker
            return inner(self, *args, **kwargs)
        if plain:
            # What the worker calls when a task has no __call__ of its own: Celery's __call__
            # would push a request without the message's headers and id.
            def body() -> Any:
                return self.run(*args, **kwargs)
        else:

            def body() -> Any:
                return inner(self, *args, **kwargs)

        installation = _installed.get(id(self.app))
        if installation is None:
            return body()
        return installation.run(self, body)

    cls.__call__ = __call__  # type: ignore[method-assign]
    _wrapped.add(cls)


def install(app: Celery, *, mode: str = "continue", send_user: bool = False) -> None:
    """Make ``app``'s tasks carry the run from the caller to the worker.

    Args:
        app: the Celery app, in the process that sends tasks and in the worker.
        mode: ``"continue"`` runs the task in the caller's run itself; ``"child"`` runs it in a
            new child run of it (lineage kept), one per execution.
        send_user: also put the run's user in the message (``X-User-Id``); off by default, as
            it is personal data. The session always goes (``X-Session-Id``). On the worker, the
            task's run gets the session and user the message carries, if valid.

    Call it where the app is made (the module the worker imports), before the worker starts:
    a worker decides how to call each task once, when it starts. Tasks defined before and after
    it run in runs alike. Calling it again for the same app changes the mode. Tasks sent
    outside any run run in a new run of their own. Celery's publish signal does not say which
    app sends, so once one app is installed, messages of any app sent inside a run carry the
    run headers; only the installed app's tasks enter runs on the worker.

    Example::

        app = Celery("agents", broker=...)
        agent_run_id.celery.install(app, mode="child")

    Security: the run in a message is taken only if it is a well-formed UUID, the session and
    user only if they are 1 to 128 printable ASCII characters without spaces or commas.
    """
    if not isinstance(app, Celery):
        raise TypeError(f"app must be a Celery app, got {type(app).__name__}")
    if mode not in _MODES:
        raise ValueError(f"mode must be 'continue' or 'child', got {show_value(mode)}")
    check_send_user(send_user, "agent_run_id.celery.install")
    with _lock:
        _disconnect(app)
        installation = _Installation(app, mode, send_user)
        signals.before_task_publish.connect(installation.publish, weak=False)
        signals.task_postrun.connect(installation.postrun, weak=False)
        app.on_after_finalize.connect(installation.wrap_tasks, weak=False)
        _installed[id(app)] = installation
        _wrap(app.Task)  # every task made with @app.task, now or later
        installation.wrap_tasks()


def uninstall(app: Celery) -> None:
    """Stop carrying runs for ``app``; a no-op when :func:`install` was not called for it."""
    with _lock:
        _disconnect(app)


def _disconnect(app: Celery) -> None:
    installation = _installed.pop(id(app), None)
    if installation is not None:
        signals.before_task_publish.disconnect(installation.publish)
        signals.task_postrun.disconnect(installation.postrun)
        app.on_after_finalize.disconnect(installation.wrap_tasks)


def _uninstall_all() -> None:
    """Stop carrying runs for every app (for ``agent_run_id.testing.reset()``)."""
    with _lock:
        for installation in list(_installed.values()):
            _disconnect(installation.app)


add_reset(_uninstall_all)
