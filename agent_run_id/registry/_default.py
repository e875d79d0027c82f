"""The process-wide default registry, where runs that no enclosing run gave a registry go."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, cast

from agent_run_id._recording import default_registry, set_default_registry

from ._open import open_registry

if TYPE_CHECKING:
    from ._base import RunRegistry

__all__ = ["get_default", "set_default"]


def set_default(registry: RunRegistry | str | os.PathLike[str] | None) -> RunRegistry | None:
    """Record every run of this process in ``registry`` (None stops it); return it.

    ``registry`` is a registry object, or names one: a SQLite file's path, or a PostgreSQL
    URL (``postgresql://...``), opened with :func:`open_registry`.
    Runs entered with ``RunContext(registry=...)``, and the runs nested in them, go to that
    registry instead, never to both.
    This is how runs that middleware or ``@new_run`` start get recorded.

    Example::

        registry.set_default("runs.db")  # or "postgresql://agent@db.internal/agents"
    """
    if isinstance(registry, (str, os.PathLike)):
        registry = open_registry(registry)
    set_default_registry(registry)  # the same rule as RunContext(registry=...)
    return registry


def get_default() -> RunRegistry | None:
    """Return the process-wide default registry, or None when none is set."""
    return cast("RunRegistry | None", default_registry())
