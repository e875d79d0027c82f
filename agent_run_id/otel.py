"""Carry the run on OpenTelemetry: span attributes, a propagator, baggage and run spans.

- :class:`RunIdSpanProcessor` stamps every span started inside a run with ``agent_run.id``,
  ``agent_run.parent_id`` and ``agent_run.root_id``, and with the run's session as
  ``gen_ai.conversation.id`` (the user as ``user.id`` only when asked): the spans of every
  instrumentation (OpenAI, Anthropic, httpx, ASGI, databases) with no change to the code that
  starts them. ``annotate()`` puts a session learned later on the run's spans still open.
- :class:`RunIdPropagator` writes the run to ``X-Run-Id`` and the lineage headers and reads it
  back; ``OTEL_PROPAGATORS=tracecontext,baggage,agent_run_id`` turns it on for every
  instrumentation that propagates context.
- :func:`install` puts the run in OpenTelemetry baggage while it is current (so the W3C
  ``baggage`` header carries it to the next service), lets the inbound middleware read it back
  from there, and optionally makes each run a span and adds the trace ids to log records.

On the receiving side, :func:`run_from_context` returns the run that arrived (extracted by the
propagator, or in baggage) so any consumer can enter it: ``with RunContext(run_id=...)``, and
:func:`session_from_context` the session that came with it (``x-session-id``, or the baggage key
``agent_run.session_id``), for ``session_id=``.

Run ids never become trace or span ids: a UUID version 4 has fixed version and variant bits in
the middle of its 128 bits, where ratio samplers read the trace id's randomness, so traces made
from run ids would be sampled wrongly. The two ids live side by side and join on the attributes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

try:
    from opentelemetry import trace
    from opentelemetry.context import Context
except ImportError as error:
    from ._optional import missing_extra

    raise missing_extra("otel", "opentelemetry-api", "otel") from error

from ._context import current_run
from ._hooks import (
    add_annotator,
    add_field_provider,
    add_incoming_fallback,
    add_reset,
    add_run_observer,
    remove_annotator,
    remove_field_provider,
    remove_incoming_fallback,
    remove_run_observer,
)
from ._otel_propagation import (
    RunIdPropagator,
    run_from_baggage_header,
    run_from_context,
    session_from_context,
)
from ._otel_runs import (
    CONVERSATION_KEY,
    KEYS,
    USER_KEY,
    OtelAnnotator,
    OtelObserver,
    attributes,
    fact_attributes,
    trace_fields,
)
from ._run_id import RunId

# The processor is for the SDK's TracerProvider; the rest needs only the API, which is all the
# extra installs. Without the SDK there is no provider to add the processor to.
if TYPE_CHECKING:
    from opentelemetry.sdk.trace import SpanProcessor as _SpanProcessor
else:
    try:
        from opentelemetry.sdk.trace import SpanProcessor as _SpanProcessor
    except ImportError:  # pragma: no cover - exercised only without the SDK
        _SpanProcessor = object

__all__ = [
    "RUN_ID_ATTRIBUTE",
    "RUN_PARENT_ID_ATTRIBUTE",
    "RUN_ROOT_ID_ATTRIBUTE",
    "SESSION_ATTRIBUTE",
    "USER_ATTRIBUTE",
    "RunIdPropagator",
    "RunIdSpanProcessor",
    "install",
    "run_from_context",
    "session_from_context",
    "uninstall",
]

#: The span attribute (and baggage key) holding the run id.
RUN_ID_ATTRIBUTE = KEYS[0]
#: The span attribute (and baggage key) holding the parent run's id, when the run has one.
RUN_PARENT_ID_ATTRIBUTE = KEYS[1]
#: The span attribute (and baggage key) holding the root run's id (the run's own for a root).
RUN_ROOT_ID_ATTRIBUTE = KEYS[2]
#: The span attribute holding the run's session: ``gen_ai.conversation.id``, as the
#: OpenTelemetry GenAI semantic conventions name a conversation.
SESSION_ATTRIBUTE = CONVERSATION_KEY
#: The span attribute holding the run's user (``user.id``): set only with ``user=True``.
USER_ATTRIBUTE = USER_KEY


class RunIdSpanProcessor(_SpanProcessor):
    """Stamp each span, when it starts, with the run current then (``agent_run.*`` attributes).

    And with the run's session as ``gen_ai.conversation.id`` when it has one, and its user as
    ``user.id`` when ``user=True`` (personal data: off by default). Outside any run, a span is
    stamped with the run that arrived in its parent context (see :func:`run_from_context`), so a
    server span started before the run is entered carries it too. Add it to an SDK
    ``TracerProvider`` (or let :func:`install` do it).

    Example::

        provider.add_span_processor(RunIdSpanProcessor())
    """

    def __init__(self, *, user: bool = False) -> None:
        if not isinstance(user, bool):
            raise TypeError(f"user must be True or False, got {user!r}")
        self._user = user
        # The attributes of the last run seen, with the session and user they were made with,
        # replaced as one tuple so threads never see a mix.
        self._last: tuple[RunId | None, str | None, str | None, Mapping[str, str]] = (
            None,
            None,
            None,
            {},
        )

    @property
    def user(self) -> bool:
        """Whether spans carry the run's user as ``user.id`` (``install(user=...)`` sets it)."""
        return self._user

    def on_start(self, span: trace.Span, parent_context: Context | None = None) -> None:
        """Set the run's attributes on ``span``."""
        current = current_run()
        if current is None:
            run = run_from_context(parent_context)
            if run is not None:
                span.set_attributes(attributes(run))
            return
        run, session, user = current.run_id, current.session_id, current.user_id
        if not self._user:
            user = None
        last = self._last
        if last[0] is not run or last[1] != session or last[2] != user:
            last = (run, session, user, {**attributes(run), **fact_attributes(current, self._user)})
            self._last = last
        span.set_attributes(last[3])


_lock = threading.Lock()
_installed: list[OtelObserver | OtelAnnotator] = []
_processed: list[tuple[object, RunIdSpanProcessor]] = []  # each provider and the processor added


def install(
    *,
    baggage: bool = True,
    run_spans: bool = False,
    span_processor: bool = True,
    log_correlation: bool = False,
    tracer_provider: trace.TracerProvider | None = None,
    user: bool = False,
) -> None:
    """Make the runs of this process visible to OpenTelemetry; call once at start-up.

    Args:
        baggage: while a run is current, put it (with its lineage) in OpenTelemetry baggage,
            merged with the entries already there, so instrumented transports carry it in the
            W3C ``baggage`` header; and let the inbound middleware take the run from an incoming
            ``baggage`` header when no ``X-Run-Id`` header came.
        run_spans: make each run a span too (``invoke_agent {name}``), current while the run is.
        span_processor: add a :class:`RunIdSpanProcessor` to the tracer provider, and stamp
            the server or consumer span current when a run starts, if it has no run of its own
            (OpenTelemetry's middleware starts it before ours picks the request's run).
        log_correlation: add ``otelTraceID``, ``otelSpanID`` and ``otelTraceSampled`` to the
            records stamped by ``agent_run_id.logging.install()``.
        tracer_provider: the provider for the processor and run spans; the global one if None.
        user: also put the run's user on its spans as ``user.id`` (a user id is personal data,
            and spans often go to a third party: off by default). The session goes on them as
            ``gen_ai.conversation.id`` either way.

    Spans started inside a run carry its session; when ``agent_run_id.annotate()`` sets the
    session (or user) later, the spans of the run still open get it too: the current span, the
    server span stamped when the run started and the run span.

    Calling it again replaces the previous settings. The processor stays on its provider (the
    SDK cannot remove one) and is added to each provider once.
    """
    for what, value in (
        ("baggage", baggage),
        ("run_spans", run_spans),
        ("span_processor", span_processor),
        ("log_correlation", log_correlation),
        ("user", user),
    ):
        if not isinstance(value, bool):
            raise TypeError(f"{what} must be True or False, got {value!r}")
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    add_processor = getattr(provider, "add_span_processor", None)
    if span_processor and add_processor is None:
        raise TypeError(
            f"span_processor=True needs an SDK TracerProvider, got {type(provider).__name__}: "
            "set one with trace.set_tracer_provider() first, pass tracer_provider=, "
            "or pass span_processor=False"
        )
    with _lock:
        _uninstall()
        if span_processor and not any(added is provider for added, _ in _processed):
            processor = RunIdSpanProcessor(user=user)
            add_processor(processor)  # type: ignore[misc]
            _processed.append((provider, processor))
        for _, processor in _processed:  # the option holds for every provider given so far
            processor._user = user
        tracer = provider.get_tracer("agent_run_id") if run_spans else None
        if baggage or tracer is not None or span_processor:
            observer = OtelObserver(baggage=baggage, tracer=tracer, stamp=span_processor, user=user)
            add_run_observer(observer)
            _installed.append(observer)
        if tracer is not None or span_processor:
            annotator = OtelAnnotator(user=user)
            add_annotator(annotator)
            _installed.append(annotator)
        if baggage:
            add_incoming_fallback(run_from_baggage_header)
        if log_correlation:
            add_field_provider(trace_fields)


def uninstall() -> None:
    """Undo :func:`install` (but the span processor, which stays on its provider)."""
    with _lock:
        _uninstall()


def _uninstall() -> None:
    for hook in _installed:
        if isinstance(hook, OtelAnnotator):
            remove_annotator(hook)
        else:
            remove_run_observer(hook)
    _installed.clear()
    remove_incoming_fallback(run_from_baggage_header)
    remove_field_provider(trace_fields)


add_reset(uninstall)
