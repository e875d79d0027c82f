"""Recording runs in a registry: the check of a registry, the default one, the calls made to it.

``RunContext`` records each run in the registry in effect for it: the one given to the run or to
the nearest enclosing run, else the process-wide default (``agent_run_id.registry.set_default``).
The core knows a registry only by the :class:`~agent_run_id._types.Registry` protocol and never
imports the registry package.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._facts import NO_METADATA, Facts
from ._hooks import RunFinisher, report
from ._types import Registry

if TYPE_CHECKING:
    from ._run_id import RunId

__all__ = [
    "as_registry",
    "check_registry",
    "default",
    "default_registry",
    "record_annotation",
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
            f"registry must be a RunRegistry, a SQLite file's path, a postgresql:// URL or None, "
            f"got {type(registry).__name__}: pass agent_run_id.registry.SQLiteRunRegistry(path), "
            "for example"
        )


def as_registry(registry: object) -> Registry | None:
    """Return the registry an option gives: a registry, None, or a name that opens one.

    A name is a SQLite file's path or a PostgreSQL URL (``agent_run_id.registry.open_registry``:
    the registry package is imported only then). Anything else raises TypeError.
    """
    if isinstance(registry, (str, os.PathLike)):
        from agent_run_id.registry import open_registry  # only for a name: the core never needs it

        return open_registry(registry)
    check_registry(registry)
    return registry  # type: ignore[return-value]


def set_default_registry(registry: Registry | None) -> None:
    """Record every run of the process that no enclosing run gave a registry in ``registry``."""
    check_registry(registry)
    global default
    with _lock:
        default = registry


def default_registry() -> Registry | None:
    """Return the process-wide default registry, or None when none is set."""
    return default


def record_start(registry: Registry, run_id: RunId, facts: Facts | None) -> RunFinisher | None:
    """Record the start of ``run_id`` in ``registry``; return what records its end.

    A registry that raises is reported once and skipped, as a run observer is: recording never
    breaks the run.
    """
    try:
        _start(registry, run_id, facts)
    except Exception:
        report(registry, "run registry %r failed when the run started")
        return None

    def finish(exc: BaseException | None) -> None:
        registry.finish(run_id, error=exc)

    return finish


def record_annotation(registry: Registry, run_id: RunId, facts: Facts) -> None:
    """Give ``registry`` what ``annotate()`` added, if it takes annotations (``annotate``).

    ``RunRegistry`` does, filling in only what its row lacks; a registry of the user's own that
    has only ``start`` and ``finish`` keeps what it got at the start.
    """
    annotate = getattr(registry, "annotate", None)
    if annotate is None:
        return
    known: dict[str, Any] = {
        "user_id": facts.user_id,
        "task": facts.task,
        "metadata": _metadata(facts),
        "session_id": facts.session_id,
    }
    if facts.external_ids:  # only then: a registry of the user's own may not know them
        known["external_ids"] = facts.external_ids
    try:
        annotate(run_id, **known)
    except Exception:
        report(registry, "run registry %r failed when the run was annotated")


def _start(registry: Registry, run_id: RunId, facts: Facts | None) -> None:
    if facts is None:
        registry.start(run_id, user_id=None, task=None, metadata=NO_METADATA)
    elif facts.session_id is None:  # a registry of the user's own may not know sessions
        registry.start(run_id, user_id=facts.user_id, task=facts.task, metadata=_metadata(facts))
    else:
        registry.start(
            run_id,
            user_id=facts.user_id,
            task=facts.task,
            metadata=_metadata(facts),
            session_id=facts.session_id,
        )


def _metadata(facts: Facts) -> Mapping[str, Any]:
    """Return the run's metadata, with its name under ``"name"`` unless the metadata has one."""
    if facts.name is None or "name" in facts.metadata:
        return facts.metadata
    return {"name": facts.name, **facts.metadata}
