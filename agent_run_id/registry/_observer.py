"""The one run observer that records runs, and the process-wide default registry."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from agent_run_id._context import (
    _OWNER,
    _PREVIOUS,
    RunContext,
    RunFinisher,
    _current,
    add_run_observer,
    check_registry,
)
from agent_run_id._run_id import RunId

if TYPE_CHECKING:
    from ._base import RunRegistry

__all__ = ["get_default", "install", "set_default"]

_default: RunRegistry | None = None
_lock = threading.Lock()


def set_default(registry: RunRegistry | None) -> None:
    """Record every run of this process in ``registry`` (None stops it).

    Runs entered with ``RunContext(registry=...)``, and the runs nested in them, go to that
    registry instead, never to both.
    This is how runs that middleware or ``@new_run`` start get recorded.

    Example::

        registry.set_default(registry.SQLiteRunRegistry("runs.db"))
    """
    check_registry(registry)  # the same rule as RunContext(registry=...)
    global _default
    with _lock:
        _default = registry
    install()


def get_default() -> RunRegistry | None:
    """Return the process-wide default registry, or None when none is set."""
    return _default


def install() -> None:
    """Add the recording observer to the core's run observers (adding it twice adds it once)."""
    add_run_observer(_record)


def _registry_for(context: RunContext) -> Any:
    """Return the registry given to the run or to the nearest enclosing run, else the default."""
    if context.registry is not None:
        return context.registry
    frame = _current.get()  # the frame of the run being entered
    while frame is not None:
        registry = frame[_OWNER].registry
        if registry is not None:
            return registry
        frame = frame[_PREVIOUS]
    return _default


def _record(run_id: RunId, context: RunContext) -> RunFinisher | None:
    registry = _registry_for(context)
    if registry is None:
        return None
    registry.start(run_id, user_id=context.user_id, task=context.task, metadata=_meta(context))

    def finish(exc: BaseException | None) -> None:
        registry.finish(run_id, error=exc)

    return finish


def _meta(context: RunContext) -> Any:
    if context.name is None or "name" in context.metadata:
        return context.metadata
    return {"name": context.name, **context.metadata}
