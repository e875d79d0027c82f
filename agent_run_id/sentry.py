"""Tag every Sentry event captured inside a run with the run id and its lineage.

Pass :class:`RunIdIntegration` to ``sentry_sdk.init``; nothing else changes in how Sentry is set
up. Each error event then carries the tag ``run_id`` (searchable: ``run_id:<id>``) and an
``agent_run`` context with ``id``, ``parent_id`` and ``root_id``; in a run with a session, the tag
``session_id`` too (and the context's ``session_id``); with ``RunIdIntegration(user=True)``, the
run's user as the event's user (``{"id": ...}``), as ``scope.set_user`` would.

Two places, for two kinds of capture:

- When a run is entered with no run current and Sentry has forked an isolation scope for the
  request or task (its ASGI, WSGI or Celery integration does), the run is set on that scope: an
  error the framework's integration captures after the run was left (the usual path of an
  unhandled error) still carries it, lineage included. The isolation scope of the process is
  never written to: asyncio tasks that nobody forked a scope for all share it, and a tag there
  would leak from one run into its neighbours' events.
- An event processor reads the current run when the event is captured, in the thread or task
  that captures it, so nested and concurrent runs tag their own events whatever the scope says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    import sentry_sdk
    from sentry_sdk.integrations import Integration
    from sentry_sdk.scope import Scope, add_global_event_processor
except ImportError as error:
    from ._optional import missing_extra

    raise missing_extra("sentry", "sentry-sdk", "sentry") from error

if TYPE_CHECKING:
    from sentry_sdk._types import Event

from ._context import current_run, is_outermost
from ._facts import Facts, RunView
from ._hooks import add_annotator, add_run_observer
from ._notes import noted_run_id
from ._run_id import RunId, lineage_fields

__all__ = ["RunIdIntegration"]

#: The event tag holding the run id.
TAG = "run_id"
#: The event context holding the run and its lineage.
CONTEXT = "agent_run"
#: The event tag holding the run's session.
SESSION_TAG = "session_id"


class RunIdIntegration(Integration):
    """Add the current run to each Sentry event: tag ``run_id``, context ``agent_run``.

    An exception that escaped its run and is captured outside it (by a web framework's Sentry
    integration, say) is tagged with the run of the request's isolation scope when Sentry
    forked one for it, else with the run noted on it (``run_id=<id>``, Python 3.11+; then the
    context has the id alone). A ``run_id`` or ``session_id`` tag, or a user, the application
    sets itself is left as it is. ``agent_run_id.annotate()`` reaches the events captured after
    it, those of the request's scope included.

    Args:
        user: set the run's user on its events (``event["user"]["id"]``, when the event has no
            user id): a user id is personal data, sent to Sentry only when asked for.

    Example::

        sentry_sdk.init(dsn=..., integrations=[RunIdIntegration()])
    """

    identifier = "agent_run_id"

    def __init__(self, *, user: bool = False) -> None:
        if not isinstance(user, bool):
            raise TypeError(f"user must be True or False, got {user!r}")
        self.user = user
        # At each sentry_sdk.init, not once per process as setup_once: adding it is idempotent,
        # and whoever removed the run observers meanwhile gets it back with the next client.
        add_run_observer(_on_run)
        add_annotator(_on_annotate)

    @staticmethod
    def setup_once() -> None:
        """Register the event processor, once per process."""
        _base.append(Scope.get_isolation_scope())
        add_global_event_processor(_add_run)


# The isolation scope of the process (of the context Sentry was set up in): never written to.
_base: list[Scope] = []


_LINEAGE = ("id", "parent_id", "root_id")


def _lineage(run: RunId, facts: Facts | RunView | None = None) -> dict[str, object]:
    fields: dict[str, object] = {**lineage_fields(run, _LINEAGE, own_root=True)}
    if facts is not None and facts.session_id is not None:
        fields[SESSION_TAG] = facts.session_id
    return fields


def _on_run(run_id: RunId, context: object) -> None:
    """Set a run entered with no run current on the isolation scope Sentry forked for it."""
    _on_outermost(run_id, current_run())


def _on_annotate(run_id: RunId, facts: Facts) -> None:
    """Set what annotate() changed of a run entered with no run current on its forked scope."""
    _on_outermost(run_id, facts)


def _on_outermost(run_id: RunId, facts: Facts | RunView | None) -> None:
    if not is_outermost():
        return  # a nested run: the processor tags its events, the request keeps its own run
    integration = sentry_sdk.get_client().get_integration(RunIdIntegration)
    if integration is None:
        return
    scope = Scope.get_isolation_scope()
    if any(scope is base for base in _base):
        return
    # A run_id tag there that is not ours (with our context) is the application's: kept.
    tags = getattr(scope, "_tags", None) or {}
    contexts = getattr(scope, "_contexts", None) or {}
    tag = tags.get(TAG)
    if tag is not None and tag != _scoped(contexts, "id"):
        return
    # Likewise a session_id tag that is not the one in our context.
    session = tags.get(SESSION_TAG)
    if (
        facts is not None
        and facts.session_id is not None
        and (session is None or session == _scoped(contexts, SESSION_TAG))
    ):
        scope.set_tag(SESSION_TAG, facts.session_id)
    scope.set_tag(TAG, run_id.value)
    scope.set_context(CONTEXT, _lineage(run_id, facts))
    if (
        isinstance(integration, RunIdIntegration)
        and integration.user
        and facts is not None
        and facts.user_id is not None
    ):
        # The first user id set on the request's scope stays: the application's own included.
        user = getattr(scope, "_user", None) or {}
        if "id" not in user:
            scope.set_user({**user, "id": facts.user_id})


def _scoped(contexts: Any, key: str) -> object:
    scoped = contexts.get(CONTEXT)
    return scoped.get(key) if isinstance(scoped, dict) else None


def _add_run(event: Event, hint: dict[str, Any]) -> Event:
    integration = sentry_sdk.get_client().get_integration(RunIdIntegration)
    if integration is None:
        return event
    tags = event.setdefault("tags", {})
    contexts = event.setdefault("contexts", {})
    scoped_id = _scoped(contexts, "id")
    # The tag is ours to replace when a scope got it from us (with our context) or nobody set it.
    replaceable = TAG not in tags or tags[TAG] == scoped_id
    run = current_run()
    if run is not None:
        if replaceable:
            tags[TAG] = run.run_id.value
        session = tags.get(SESSION_TAG)
        if run.session_id is not None and (
            session is None or session == _scoped(contexts, SESSION_TAG)
        ):
            tags[SESSION_TAG] = run.session_id
        contexts[CONTEXT] = _lineage(run.run_id, run)
        if isinstance(integration, RunIdIntegration) and integration.user and run.user_id:
            user = event.get("user") or {}
            if "id" not in user:
                event["user"] = {**user, "id": run.user_id}
        return event
    noted = _noted_id(hint.get("exc_info"))
    if noted is None or noted == scoped_id:
        return event  # the scope's run, if any, is the event's
    if replaceable:
        tags[TAG] = noted
    # The note holds the id alone: the lineage is not made up.
    contexts[CONTEXT] = {"id": noted}
    return event


def _noted_id(exc_info: object) -> str | None:
    """Return the run noted on a captured exception, or on one in its chain."""
    if not isinstance(exc_info, tuple) or len(exc_info) != 3:
        return None
    exc = exc_info[1]
    seen: set[int] = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        value = noted_run_id(exc)
        if value is not None:
            return value
        exc = exc.__cause__ or exc.__context__
    return None
