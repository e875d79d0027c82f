"""The process-wide default registry, where runs that no enclosing run gave a registry go."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from agent_run_id._recording import default_registry, set_default_registry

if TYPE_CHECKING:
    from ._base import RunRegistry

__all__ = ["get_default", "set_default"]


def set_default(registry: RunRegistry | None) -> None:
    """Record every run of this process in ``registry`` (None stops it).

    Runs entered with ``RunContext(registry=...)``, and the runs nested in them, go to that
    registry instead, never to both.
    This is how runs that middleware or ``@new_run`` start get recorded.

    Example::

        registry.set_default(registry.SQLiteRunRegistry("runs.db"))
    """
    set_default_registry(registry)  # the same rule as RunContext(registry=...)


def get_default() -> RunRegistry | None:
    """Return the process-wide default registry, or None when none is set."""
    return cast("RunRegistry | None", default_registry())
