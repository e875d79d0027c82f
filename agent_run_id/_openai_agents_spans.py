"""The OpenAI Agents SDK's traces and spans as our runs: a tracing processor.

The SDK tells every registered ``TracingProcessor`` when a trace or span starts and ends, in the
task where it does. A trace belongs to the run current where it starts (an agent run started
outside any run becomes a root run of its own); each span becomes a :class:`Step` under its
parent span's step, or under the trace's run for a top-level span. The ``task`` span, the
workflow itself, is the trace's run and no step of its own.

A function span starts and ends in the tool call's own task, around the tool's body (which the
SDK runs in a task or thread made from there): its step is entered at the start and left at the
end, so the body's log lines and outbound calls carry the tool's run.
"""

from __future__ import annotations

import threading
import weakref
from contextvars import Token
from typing import Any

from agents.tracing import Span, Trace, TracingProcessor, get_current_span

from ._context import Captured, annotate, current_run
from ._hooks import report
from ._run_id import RunId
from ._steps import Step

__all__ = [
    "RESPONSE_SYSTEM",
    "SPAN_SYSTEM",
    "TRACE_SYSTEM",
    "RunIdTracingProcessor",
    "note_tool_error",
]

#: The external id system of a trace's id (``trace_<32 hex>``), on the run the trace belongs to.
TRACE_SYSTEM = "openai_trace"
#: The external id system of a span's id (``span_<24 hex>``), on the span's step.
SPAN_SYSTEM = "openai_span"
#: The external id system of a Responses API response's id (``resp_...``), on its model step.
RESPONSE_SYSTEM = "openai_response"

Anchor = Step | RunId | None  # where children go: a step, a run, or the run current then


# Held while a trace is tied to the run current where it starts.
_tying = threading.Lock()


class _Trace:
    """A trace seen starting: the run it belongs to, and how many of it are open."""

    __slots__ = ("anchor", "count", "own")

    def __init__(self, anchor: Anchor, own: Step | None) -> None:
        self.anchor = anchor
        self.own = own  # the step made for a trace that is not the run's own
        self.count = 1  # one trace id may start twice (two agent runs in one run of ours)


class _Open:
    """A span seen starting: its step (None for the task span), and what its end needs."""

    __slots__ = ("anchor", "error", "step", "token", "trace_id")

    def __init__(
        self, trace_id: str, step: Step | None, anchor: Anchor, token: Token[Captured] | None
    ) -> None:
        self.trace_id = trace_id
        self.step = step
        self.anchor = anchor
        self.token = token
        self.error: BaseException | None = None  # the tool's exception, when the SDK handled it


_live: weakref.WeakSet[RunIdTracingProcessor] = weakref.WeakSet()
_live_lock = threading.Lock()


class RunIdTracingProcessor(TracingProcessor):
    """Record the SDK's traces and spans as runs of ours: each span a child run in the registry.

    Agent, turn, model (generation and response), function tool, handoff, guardrail, MCP and
    custom spans each become a child run (a step) of their parent span's, named after what they
    are (``agent planner``, ``tool search``, ``model gpt-5``), with the span's id as the
    ``openai_span`` external id and its error, if any, as the run's error. The trace's id is
    recorded as the ``openai_trace`` external id of the run the trace belongs to: the run
    current where the agent run starts (with :func:`agent_run_id.openai_agents.run_config`, the
    run whose hex the trace id holds). A function tool's body runs inside its step.

    A failure inside the processor is logged once as a warning on the ``agent_run_id`` logger and
    never reaches the agent. Register it with :func:`agent_run_id.openai_agents.install`, or
    ``agents.add_trace_processor(RunIdTracingProcessor())``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._traces: dict[str, _Trace] = {}
        self._spans: dict[str, _Open] = {}
        #: Whether it records: :func:`agent_run_id.openai_agents.uninstall` turns it off.
        self.enabled = True
        with _live_lock:
            _live.add(self)

    def on_trace_start(self, trace: Trace) -> None:
        """Tie the trace to the run current here (or a new root run) and record its id there."""
        if not self.enabled:
            return
        try:
            self._trace_started(trace)
        except Exception:
            report(self, "OpenAI Agents tracing processor %r failed when a trace started")

    def on_trace_end(self, trace: Trace) -> None:
        """Forget the trace; end the root run made for it, if any."""
        try:
            with self._lock:
                seen = self._traces.get(trace.trace_id)
                if seen is None:
                    return
                seen.count -= 1
                if seen.count:
                    return
                del self._traces[trace.trace_id]
                ids = [i for i, opened in self._spans.items() if opened.trace_id == trace.trace_id]
                left = [self._spans.pop(i) for i in ids]
            for opened in left:  # never ended: the SDK gave up on them
                if opened.step is not None:
                    opened.step.finish("the trace ended before the span")
            if seen.own is not None:
                seen.own.finish()
        except Exception:
            report(self, "OpenAI Agents tracing processor %r failed when a trace ended")

    def on_span_start(self, span: Span[Any]) -> None:
        """Start the span's step under its parent's; enter it when the span is a function tool."""
        if not self.enabled:
            return
        try:
            self._span_started(span)
        except Exception:
            report(self, "OpenAI Agents tracing processor %r failed when a span started")

    def on_span_end(self, span: Span[Any]) -> None:
        """Leave and end the span's step, failed when the span (or the tool) reported an error."""
        try:
            with self._lock:
                opened = self._spans.pop(span.span_id, None)
            if opened is None or opened.step is None:
                return
            step = opened.step
            if opened.token is not None:
                step.leave(opened.token)
            _annotate_end(step, span)
            step.finish(opened.error or _span_error(span))
        except Exception:
            report(self, "OpenAI Agents tracing processor %r failed when a span ended")

    def shutdown(self) -> None:
        """End every step still open, as failed: the SDK is shutting down."""
        self.close("the OpenAI Agents SDK shut its tracing down with the span open")

    def force_flush(self) -> None:
        """Do nothing: steps are recorded as they start and end."""

    def close(self, reason: str) -> None:
        """Forget every open trace and span, ending their steps as failed with ``reason``."""
        with self._lock:
            spans, self._spans = self._spans, {}
            traces, self._traces = self._traces, {}
        for opened in spans.values():
            if opened.step is not None:
                opened.step.finish(reason)
        for seen in traces.values():
            if seen.own is not None:
                seen.own.finish(reason)

    def tool_failed(self, span_id: str, error: BaseException) -> None:
        """Keep the exception a function tool raised, which the SDK turned into a message."""
        with self._lock:
            opened = self._spans.get(span_id)
            if opened is not None:
                opened.error = error

    def _trace_started(self, trace: Trace) -> None:
        trace_id = trace.trace_id
        with self._lock:
            seen = self._traces.get(trace_id)
            if seen is not None:  # the same trace id again: the same run
                seen.count += 1
                return
            # Held until the run is known, so that a start of the same id in another thread
            # counts on this one.
            placeholder = self._traces[trace_id] = _Trace(None, None)
        run = current_run()
        with _tying:  # two traces starting in one run at once: one of them is the run's
            if run is not None:
                run = current_run()  # read again under the lock: its trace may be set since
            mine = None if run is None else run.external_ids.get(TRACE_SYSTEM)
            if run is not None and mine in (None, trace_id):
                # The run's first trace (or its own id from run_config()): the run itself.
                with self._lock:
                    placeholder.anchor = run.run_id
                if mine is None:
                    annotate(external_ids={TRACE_SYSTEM: trace_id})
                return
        # Outside any run a root run of its own; in a run that has its trace already (a second
        # agent run in it), a child run, with the trace id of its own.
        own = Step(f"trace {trace.name}", metadata={"openai_span_type": "trace"})
        with self._lock:
            placeholder.anchor = placeholder.own = own
        own.annotate(external_ids={TRACE_SYSTEM: trace_id})

    def _span_started(self, span: Span[Any]) -> None:
        data = span.span_data
        kind = data.type
        with self._lock:
            parent = self._spans.get(span.parent_id) if span.parent_id else None
            seen = self._traces.get(span.trace_id)
        anchor: Anchor = parent.anchor if parent is not None else None
        if parent is None and seen is not None:
            anchor = seen.anchor
        if kind == "task":  # the workflow: the trace's run itself
            opened = _Open(span.trace_id, None, anchor, None)
        else:
            step = Step(_name(data), parent=anchor, metadata={"openai_span_type": kind})
            step.annotate(external_ids={SPAN_SYSTEM: span.span_id})
            token = step.enter() if kind == "function" else None
            opened = _Open(span.trace_id, step, step, token)
        with self._lock:
            self._spans[span.span_id] = opened


def note_tool_error(error: BaseException) -> None:
    """Give the function span current here the exception its tool raised (the SDK's formatter)."""
    span = get_current_span()
    if span is None:
        return
    with _live_lock:
        processors = list(_live)
    for processor in processors:
        processor.tool_failed(span.span_id, error)


def _name(data: Any) -> str:
    """Return what the span is, its step's name: ``agent planner``, ``tool search``, ``model x``."""
    kind: str = data.type
    if kind == "agent":
        return f"agent {data.name}"
    if kind == "turn":
        return f"turn {data.turn} {data.agent_name}"
    if kind == "function":
        return f"tool {data.name}"
    if kind == "generation":
        return "model" if data.model is None else f"model {data.model}"
    if kind == "response":
        return "model response"
    if kind == "handoff":  # the SDK names the agent handed to at the span's end
        return f"handoff {data.from_agent}"
    if kind == "guardrail":
        return f"guardrail {data.name}"
    if kind == "mcp_tools":
        return f"mcp list tools {data.server}"
    name = getattr(data, "name", None)  # custom spans
    return kind if name is None else str(name)


def _annotate_end(step: Step, span: Span[Any]) -> None:
    """Add what the span learned by its end: the response's id, the agent handed to, ..."""
    data = span.span_data
    kind = data.type
    if kind == "response":
        response_id = getattr(data.response, "id", None)
        if isinstance(response_id, str) and response_id:
            step.annotate(external_ids={RESPONSE_SYSTEM: response_id})
    elif kind == "handoff" and isinstance(data.to_agent, str):
        step.annotate(to_agent=data.to_agent)
    elif kind == "guardrail":
        step.annotate(triggered=bool(data.triggered))
    elif kind == "generation" and isinstance(data.model, str):
        step.annotate(model=data.model)


def _span_error(span: Span[Any]) -> str | None:
    """Return the span's error in one line: its message and the detail in its ``data``."""
    error = span.error
    if not error:
        return None
    message = str(error.get("message") or "error")
    data = error.get("data")
    detail = data.get("error") if isinstance(data, dict) else None
    if isinstance(detail, str) and detail:
        return f"{message}: {detail}"
    return message
