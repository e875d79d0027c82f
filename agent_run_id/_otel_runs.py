"""What ``agent_run_id.otel.install()`` does at each run: baggage, the run span, log fields.

And at each ``annotate()``: the session (and the user, when asked) on the run's spans.

Imported only by ``agent_run_id.otel``, which checks first that OpenTelemetry is installed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from ._context import RunContext, current_run, current_session_id, is_outermost
from ._hooks import RunFinisher
from ._propagation import run_from_wire
from ._run_id import RunId, lineage_fields
from ._session import parse_session_id

if TYPE_CHECKING:
    from ._facts import Facts, RunView

__all__ = [
    "BAGGAGE_CONTEXT_KEY",
    "CONVERSATION_KEY",
    "KEYS",
    "RUN_MEMBERS",
    "SESSION_KEY",
    "USER_KEY",
    "OtelAnnotator",
    "OtelObserver",
    "attributes",
    "fact_attributes",
    "run_in_baggage",
    "session_in_baggage",
    "stamp_entry_span",
    "trace_fields",
    "with_run_baggage",
]

#: Our names, as span attributes and as baggage keys: the run, its parent, its root.
KEYS = ("agent_run.id", "agent_run.parent_id", "agent_run.root_id")
#: The baggage key of the run's session (baggage only: on spans it is ``gen_ai.conversation.id``).
SESSION_KEY = "agent_run.session_id"
_BAGGAGE_KEYS = (*KEYS, SESSION_KEY)
#: The baggage members of a run (its ids and session), which a run's own replace.
RUN_MEMBERS = frozenset(_BAGGAGE_KEYS)
#: The span attribute of the run's session: the OpenTelemetry GenAI conventions' conversation.
CONVERSATION_KEY = "gen_ai.conversation.id"
#: The span attribute of the run's user (OpenTelemetry's ``user.id``), set only when asked for.
USER_KEY = "user.id"
# Where the context a run attaches keeps its spans, for annotate(): (run, entry span, run span).
_SPANS = otel_context.create_key("agent_run_id.spans")

# The W3C Baggage limits (https://www.w3.org/TR/baggage/#limits), which OpenTelemetry's
# propagator enforces by dropping whatever entries come last.
_MAX_BYTES = 8192
_MAX_PAIRS = 180
# A longer pair is dropped by the injector on its own, so it takes no room.
_MAX_PAIR_BYTES = 4096

# Endings that are not failures: a cancelled task, a generator closed early.
_NOT_FAILURES = (asyncio.CancelledError, GeneratorExit)

_log = logging.getLogger("agent_run_id.otel")

_OPERATION = "gen_ai.operation.name"
_AGENT_NAME = "gen_ai.agent.name"


def run_in_baggage(entries: Mapping[str, object]) -> RunId | None:
    """Return the run written in baggage ``entries`` (with its valid lineage), or None."""
    run, parent, root = (entries.get(key) for key in KEYS)
    if not isinstance(run, str):
        return None
    return run_from_wire(
        run,
        parent if isinstance(parent, str) else None,
        root if isinstance(root, str) else None,
    )


def session_in_baggage(entries: Mapping[str, object]) -> str | None:
    """Return the session written in baggage ``entries`` if it is a valid session id, or None."""
    session = entries.get(SESSION_KEY)
    return parse_session_id(session) if isinstance(session, str) else None


def _baggage_context_key() -> str | None:
    """Return the key under which OpenTelemetry's context holds the baggage, or None.

    Found through the public API (the one key ``set_baggage`` writes into an empty context),
    and used only if a plain dict set under it reads back as that baggage: otherwise None, and
    members are set one at a time, each ``set_baggage`` copying the baggage and the context.
    """
    probe = baggage.set_baggage("probe", "1", Context())
    keys = list(probe)
    if len(keys) != 1 or probe[keys[0]] != {"probe": "1"}:
        return None
    written = otel_context.set_value(keys[0], {"probe": "2"}, Context())
    return keys[0] if baggage.get_all(written) == {"probe": "2"} else None


#: The context key of OpenTelemetry's baggage (None: not found, members set one at a time).
BAGGAGE_CONTEXT_KEY = _baggage_context_key()


def with_run_baggage(context: Context, run: RunId, session_id: str | None = None) -> Context:
    """Return ``context`` with the run's entries in its baggage and every other entry kept.

    The run, its lineage and ``session_id`` (``agent_run.session_id``) when given. Entries of an
    enclosing run are replaced. When ours would take the baggage past the W3C limits, ours are
    left out: the entries of other tools are never the ones dropped. (The limits are counted as
    OpenTelemetry's injector applies them: a pair it drops for its length takes no room.)
    """
    entries = baggage.get_all(context)
    ours = attributes(run)
    if session_id is not None:
        ours[SESSION_KEY] = session_id
    if RUN_MEMBERS.issuperset(entries):
        # A run's members alone (an enclosing run's, or none), the common case: ours replace
        # them, in the same order as below, and ours alone are far within the limits.
        if BAGGAGE_CONTEXT_KEY is not None:  # ours as the whole baggage, in one step
            return otel_context.set_value(BAGGAGE_CONTEXT_KEY, ours, context)
        if entries:
            context = baggage.clear(context)
        for key, value in ours.items():
            context = baggage.set_baggage(key, value, context)
        return context
    for key in _BAGGAGE_KEYS:
        if key in entries:
            context = baggage.remove_baggage(key, context)
    pairs = [_pair(k, v) for k, v in entries.items() if k not in _BAGGAGE_KEYS]
    pairs = [pair for pair in pairs if len(pair) <= _MAX_PAIR_BYTES]
    pairs += [_pair(k, v) for k, v in ours.items()]
    if len(pairs) > _MAX_PAIRS or sum(map(len, pairs)) + len(pairs) - 1 > _MAX_BYTES:
        _log.debug("run %s left out of baggage: it would pass the W3C limits", run.value)
        return context
    for key, value in ours.items():
        context = baggage.set_baggage(key, value, context)
    return context


def _pair(key: str, value: object) -> str:
    # As OpenTelemetry's W3C propagator writes it.
    return f"{quote_plus(str(key))}={quote_plus(str(value))}"


def attributes(run: RunId) -> dict[str, str]:
    """Return the span attributes of ``run``."""
    return lineage_fields(run, KEYS, own_root=True)


def fact_attributes(facts: Facts | RunView | None, user: bool) -> dict[str, str]:
    """Return the span attributes of what is known of a run: its session, its user if ``user``."""
    fields: dict[str, str] = {}
    if facts is not None:
        if facts.session_id is not None:
            fields[CONVERSATION_KEY] = facts.session_id
        if user and facts.user_id is not None:
            fields[USER_KEY] = facts.user_id
    return fields


# The spans that start before the run of the request or message they handle is entered.
_ENTRY_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER)


def stamp_entry_span(run: RunId, user: bool) -> trace.Span | None:
    """Stamp the current server or consumer span with ``run``, entered inside it first.

    OpenTelemetry's ASGI middleware, placed outside ours, starts the server span before our
    middleware picks the request's run: at start, the span got at most the run that arrived in
    the request. The run the request actually runs as (that one, a child of it, or a new one)
    is this span's run. Only a run entered with no run current does so: a child run started by
    the handler leaves its request's span alone, and so does any span of another kind.

    A span attribute cannot be removed: when the arrived run had a parent and the request runs
    as a new root run (``incoming="ignore"``), ``agent_run.parent_id`` becomes ``""``.

    The run's session is set too, and its user when ``user``. Returns the span stamped, or
    None.
    """
    if not is_outermost():
        return None
    span = trace.get_current_span()
    if getattr(span, "kind", None) not in _ENTRY_KINDS or not span.is_recording():
        return None
    fields = attributes(run)
    if run.parent is None and KEYS[1] in (getattr(span, "attributes", None) or {}):
        fields[KEYS[1]] = ""
    span.set_attributes({**fields, **fact_attributes(current_run(), user)})
    return span


class OtelObserver:
    """A run observer: at each run's start, stamp the entry span and attach baggage and span.

    ``user``: whether the spans it stamps or starts carry the run's user (``user.id``).
    """

    def __init__(
        self, *, baggage: bool, tracer: trace.Tracer | None, stamp: bool, user: bool = False
    ) -> None:
        self.baggage = baggage
        self.tracer = tracer
        self.stamp = stamp
        self.user = user

    def __call__(self, run_id: RunId, run: RunContext) -> RunFinisher | None:
        """Attach the run's OpenTelemetry context; return what detaches it."""
        entry = stamp_entry_span(run_id, self.user) if self.stamp else None
        if not self.baggage and self.tracer is None:
            return None
        context = otel_context.get_current()
        span = None
        if self.tracer is not None:
            # The run's own attributes too: without the span processor nothing else adds them.
            fields = {
                _OPERATION: "invoke_agent",
                **attributes(run_id),
                **fact_attributes(current_run(), self.user),
            }
            if run.name:
                fields[_AGENT_NAME] = run.name
            span = self.tracer.start_span(
                f"invoke_agent {run.name}" if run.name else "invoke_agent",
                context=context,
                kind=SpanKind.INTERNAL,
                attributes=fields,
            )
            context = trace.set_span_in_context(span, context)
        if self.baggage:
            context = with_run_baggage(context, run_id, current_session_id())
        if entry is not None or span is not None:
            context = otel_context.set_value(_SPANS, (run_id, entry, span), context)
        token = otel_context.attach(context)

        def finish(exc: BaseException | None) -> None:
            # Left in another context (an async generator closed by another task): that one
            # never saw our attach, and detaching there would log an error.
            if otel_context.get_current() is context:
                otel_context.detach(token)
            if span is not None:
                if exc is not None and not isinstance(exc, _NOT_FAILURES):
                    span.record_exception(exc)
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                span.end()

        return finish


class OtelAnnotator:
    """An annotation hook: put the run's new session (and user) on its spans still open.

    The current span, and the run's own: the server or consumer span it stamped when it started
    and its run span. Spans started later get them from the span processor.
    """

    def __init__(self, *, user: bool) -> None:
        self.user = user

    def __call__(self, run_id: RunId, facts: Facts) -> None:
        """Set the attributes of ``facts`` on the run's open spans."""
        fields = fact_attributes(facts, self.user)
        if not fields:
            return
        spans = []
        current_span = trace.get_current_span()
        # The current span only when it was started in this run: in a run nested in another, it
        # may be the enclosing run's, whose session and user are not this one's.
        if (getattr(current_span, "attributes", None) or {}).get(KEYS[0]) == run_id.value:
            spans.append(current_span)
        kept = otel_context.get_value(_SPANS)
        if isinstance(kept, tuple) and kept[0] is run_id:  # the run's, not an enclosing run's
            spans += [span for span in kept[1:] if span is not None]
        done: list[trace.Span] = []
        for span in spans:
            if span.is_recording() and not any(span is seen for seen in done):
                span.set_attributes(fields)
                done.append(span)


_NO_TRACE: Mapping[str, object] = {"otelTraceID": "0", "otelSpanID": "0", "otelTraceSampled": False}


def trace_fields() -> Mapping[str, object]:
    """Return the current trace and span ids in the fields OpenTelemetry's logging uses."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return _NO_TRACE
    return {
        "otelTraceID": format(span_context.trace_id, "032x"),
        "otelSpanID": format(span_context.span_id, "016x"),
        "otelTraceSampled": span_context.trace_flags.sampled,
    }
