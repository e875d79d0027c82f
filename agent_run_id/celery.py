"""Carry the run through Celery: a task sent inside a run runs inside it on the worker.

:func:`install` connects four Celery signals for one app:

- ``before_task_publish`` adds ``X-Run-Id`` and the lineage headers to each message sent inside a
  run (a retry carries the run its first attempt came with);
- ``task_prerun`` enters the run in the message, or a child of it (``mode="child"``), or a new
  run when the task was sent outside any run (by beat, say);
- ``task_failure`` notes the run on the task's exception, so the worker's error log shows it;
- ``task_postrun`` leaves the run, restoring the worker's context after success, failure or retry.

The result backend stores a failed task's exception before Celery's failure signal, so the copy
that ``AsyncResult.get()`` raises in the caller has no run note: look the run up by the task id.
"""

from __future__ import annotations

import threading
from typing import Any

try:
    from celery import Celery, signals  # type: ignore[import-untyped]
except ImportError as error:
    from ._optional import missing_extra

    raise missing_extra("celery", "celery", "celery") from error

from ._context import RunContext, _add_note, _current
from ._propagation import HEADER, PARENT_HEADER, ROOT_HEADER, _fields, run_from_wire
from ._run_id import RunId, show_value

__all__ = ["install", "uninstall"]

_MODES = ("continue", "child")


class _Execution:
    """One task execution inside its run: the context to leave, and what a retry carries."""

    __slots__ = ("context", "origin")

    def __init__(self, context: RunContext, origin: RunId) -> None:
        self.context = context
        self.origin = origin


class _Installation:
    """The signal receivers for one app."""

    def __init__(self, app: Celery, mode: str) -> None:
        self.app = app
        self.mode = mode
        # Keyed by task id; each id runs once at a time on a worker, and a dict's single-key
        # operations are atomic, so thread pools need no lock here.
        self.running: dict[str, _Execution] = {}

    def publish(self, sender: Any = None, headers: Any = None, **_: Any) -> None:
        if not isinstance(headers, dict):
            return
        retried = self.running.get(headers.get("id", ""))
        if retried is not None:
            run: RunId | None = retried.origin
        else:
            frame = _current.get()
            run = None if frame is None else frame.run_id
        if run is not None:
            for name in (HEADER, PARENT_HEADER, ROOT_HEADER):
                headers.pop(name, None)
            headers.update(_fields(run, HEADER, PARENT_HEADER, ROOT_HEADER))

    def prerun(self, sender: Any = None, task_id: Any = None, task: Any = None, **_: Any) -> None:
        if task is None or getattr(task, "app", None) is not self.app:
            return
        request = task.request
        incoming = run_from_wire(
            request.get(HEADER), request.get(PARENT_HEADER), request.get(ROOT_HEADER)
        )
        if incoming is None:
            # Run eagerly (task.apply) inside a run: that run came with no message.
            frame = _current.get()
            incoming = None if frame is None else frame.run_id
        if incoming is None:
            run = origin = RunId.generate()
        else:
            origin = incoming
            run = incoming.child() if self.mode == "child" else incoming
        context = RunContext(run_id=run, name=task.name)
        context.__enter__()
        self.running[task_id] = _Execution(context, origin)

    def failure(
        self, sender: Any = None, task_id: Any = None, exception: Any = None, **_: Any
    ) -> None:
        execution = self.running.get(task_id)
        if execution is not None and isinstance(exception, BaseException):
            # The task's context stays entered from prerun to postrun: its one open frame.
            _add_note(exception, execution.context.run_id)

    def postrun(self, sender: Any = None, task_id: Any = None, **_: Any) -> None:
        execution = self.running.pop(task_id, None)
        if execution is not None:
            execution.context.__exit__(None, None, None)


_lock = threading.Lock()
_installed: dict[int, _Installation] = {}
_SIGNALS = (
    (signals.before_task_publish, "publish"),
    (signals.task_prerun, "prerun"),
    (signals.task_failure, "failure"),
    (signals.task_postrun, "postrun"),
)


def install(app: Celery, *, mode: str = "continue") -> None:
    """Make ``app``'s tasks carry the run from the caller to the worker.

    Args:
        app: the Celery app, in the process that sends tasks and in the worker.
        mode: ``"continue"`` runs the task in the caller's run itself; ``"child"`` runs it in a
            new child run of it (lineage kept), one per execution.

    Calling it again for the same app changes the mode. Tasks sent outside any run run in a
    new run of their own. Celery's publish signal does not say which app sends, so once one app
    is installed, messages of any app sent inside a run carry the run headers; only the
    installed app's tasks enter runs on the worker. Call it where the app is made (the module
    the worker imports), so that every worker process has it.

    Example::

        app = Celery("agents", broker=...)
        agent_run_id.celery.install(app, mode="child")

    Security: the run in a message is taken only if it is a well-formed UUID.
    """
    if not isinstance(app, Celery):
        raise TypeError(f"app must be a Celery app, got {type(app).__name__}")
    if mode not in _MODES:
        raise ValueError(f"mode must be 'continue' or 'child', got {show_value(mode)}")
    with _lock:
        _disconnect(app)
        installation = _Installation(app, mode)
        for signal, name in _SIGNALS:
            signal.connect(getattr(installation, name), weak=False)
        _installed[id(app)] = installation


def uninstall(app: Celery) -> None:
    """Stop carrying runs for ``app``; a no-op when :func:`install` was not called for it."""
    with _lock:
        _disconnect(app)


def _disconnect(app: Celery) -> None:
    installation = _installed.pop(id(app), None)
    if installation is not None:
        for signal, name in _SIGNALS:
            signal.disconnect(getattr(installation, name))
