"""Tag every Sentry event captured inside a run with the run id and its lineage.

Pass :class:`RunIdIntegration` to ``sentry_sdk.init``; nothing else changes in how Sentry is set
up. Each error event then carries the tag ``run_id`` (searchable: ``run_id:<id>``) and an
``agent_run`` context with ``id``, ``parent_id`` and ``root_id``.

Why an event processor and not a tag on a scope: the run is read when the event is captured, in
the thread or task that captures it. sentry-sdk 2.x keeps tags on the isolation scope, which all
the asyncio tasks of one request share unless someone forks it, so a tag set there at each run's
start would be overwritten by the next concurrent run and leak into its neighbours' events. A
processor that reads ``current_run_id()`` at capture time cannot mix runs up, and needs no scope.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.scope import add_global_event_processor
except ImportError as error:
    from ._optional import missing_extra

    raise missing_extra("sentry", "sentry-sdk", "sentry") from error

if TYPE_CHECKING:
    from sentry_sdk._types import Event

from ._context import _NOTE_PREFIX, current_run_id
from ._propagation import parse_wire_id
from ._run_id import RunId

__all__ = ["RunIdIntegration"]

#: The event tag holding the run id.
TAG = "run_id"
#: The event context holding the run and its lineage.
CONTEXT = "agent_run"


class RunIdIntegration(Integration):
    """Add the current run to each Sentry event: tag ``run_id``, context ``agent_run``.

    An exception that escaped its run and is captured outside it (by a web framework's Sentry
    integration, say) is tagged with the run noted on it (``run_id=<id>``, Python 3.11+).
    A ``run_id`` tag the application sets itself is left as it is.

    Example::

        sentry_sdk.init(dsn=..., integrations=[RunIdIntegration()])
    """

    identifier = "agent_run_id"

    @staticmethod
    def setup_once() -> None:
        """Register the event processor, once per process."""
        add_global_event_processor(_add_run)


def _add_run(event: Event, hint: dict[str, Any]) -> Event:
    if sentry_sdk.get_client().get_integration(RunIdIntegration) is None:
        return event
    run = current_run_id()
    if run is None:
        run = _noted_run(hint.get("exc_info"))
        if run is None:
            return event
    event.setdefault("tags", {}).setdefault(TAG, run.value)
    lineage: dict[str, object] = {"id": run.value, "root_id": run.root.value}
    if run.parent is not None:
        lineage["parent_id"] = run.parent.value
    event.setdefault("contexts", {})[CONTEXT] = lineage
    return event


def _noted_run(exc_info: object) -> RunId | None:
    """Return the run noted on a captured exception, or on one in its chain."""
    if not isinstance(exc_info, tuple) or len(exc_info) != 3:
        return None
    exc = exc_info[1]
    seen: set[int] = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        for note in getattr(exc, "__notes__", ()):
            if isinstance(note, str) and note.startswith(_NOTE_PREFIX):
                value = parse_wire_id(note[len(_NOTE_PREFIX) :])
                if value is not None:
                    return RunId(value)
        exc = exc.__cause__ or exc.__context__
    return None
