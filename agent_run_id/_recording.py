"""Recording runs in a registry: the check of a registry, the default one, the calls made to it.

``RunContext`` records each run in the registry in effect for it: the one given to the run or to
the nearest enclosing run, else the process-wide default (``agent_run_id.registry.set_default``).
The core knows a registry only by the :class:`~agent_run_id._types.Registry` protocol and never
imports the registry package.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._hooks import RunFinisher, report
from ._types import Registry

if TYPE_CHECKING:
    from ._context import RunContext
    from ._run_id import RunId

__all__ = [
    "check_registry",
    "default",
    "default_registry",
    "record_start",
    "set_default_registry",
]

#: The process-wide default registry. Read as ``_recording.default`` on the hot paths (the
#: ASGI middleware, entering a run); set only through :func:`set_default_registry`.
default: Registry | None = None
_lock = threading.Lock()


def check_registry(registry: object) -> None:
    """Raise TypeError unless ``registry`` is None or a run registry (``start`` and ``finish``)."""
    if registry is not None and not (
        callable(getattr(registry, "start", None)) and callable(getattr(registry, "finish", None))
    ):
        raise TypeError(
            f"registry must be a RunRegistry or None, got {type(registry).__name__}: "
            "pass agent_run_id.registry.SQLiteRunRegistry(path), for example"
        )


def set_default_registry(registry: Registry | None) -> None:
    """Record every run of the process that no enclosing run gave a registry in ``registry``."""
    check_registry(registry)
    global default
    with _lock:
        default = registry


def default_registry() -> Registry | None:
    """Return the process-wide default registry, or None when none is set."""
    return default


def record_start(registry: Registry, run_id: RunId, context: RunContext) -> RunFinisher | None:
    """Record the start of ``run_id`` in ``registry``; return what records its end.

    A registry that raises is reported once and skipped, as a run observer is: recording never
    breaks the run.
    """
    try:
        registry.start(
            run_id, user_id=context.user_id, task=context.task, metadata=_metadata(context)
        )
    except Exception:
        report(registry, "run registry %r failed when the run started")
        return None

    def finish(exc: BaseException | None) -> None:
        registry.finish(run_id, error=exc)

    return finish


def _metadata(context: RunContext) -> Mapping[str, Any]:
    """Return the run's metadata, with its name under ``"name"`` unless the metadata has one."""
    if context.name is None or "name" in context.metadata:
        return context.metadata
    return {"name": context.name, **context.metadata}
