"""Two instrumented ASGI services calling each other carry one run through OpenTelemetry.

Service A calls service B through an httpx client instrumented by OpenTelemetry; both run our
RunIdMiddleware and OpenTelemetry's ASGI middleware. B is called in an empty context, as if it
were another process: nothing crosses but the HTTP headers.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent_run_id import RunId, current_run_id
from agent_run_id import otel as run_otel
from agent_run_id._types import ASGIApp, Receive, Scope, Send
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.otel import RunIdPropagator

ID, PARENT, ROOT = "agent_run.id", "agent_run.parent_id", "agent_run.root_id"
WITH_HEADERS = (TraceContextTextMapPropagator(), W3CBaggagePropagator(), RunIdPropagator())
BAGGAGE_ONLY = (TraceContextTextMapPropagator(), W3CBaggagePropagator())


@pytest.fixture
def provider() -> TracerProvider:
    return TracerProvider()


@pytest.fixture
def exporter(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run_otel.install(tracer_provider=provider)
    previous = propagate.get_global_textmap()
    try:
        yield exporter
    finally:
        propagate.set_global_textmap(previous)
        run_otel.uninstall()
        provider.shutdown()


def _use(propagators: tuple[TextMapPropagator, ...]) -> None:
    propagate.set_global_textmap(CompositePropagator(list(propagators)))


def _lineage() -> dict[str, str | None]:
    run = current_run_id()
    assert run is not None
    return {
        "run": run.value,
        "parent": None if run.parent is None else run.parent.value,
        "root": run.root.value,
    }


async def _json(send: Send, body: object) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": payload})


def _isolated(app: ASGIApp) -> ASGIApp:
    """Serve ``app`` from an empty context, as another process would."""

    async def serve(scope: Scope, receive: Receive, send: Send) -> None:
        await contextvars.Context().run(asyncio.ensure_future, app(scope, receive, send))

    return serve


def _service_b(provider: TracerProvider, incoming: str) -> ASGIApp:
    """Return service B: answers with the run it ran in, from a span of its own."""
    tracer = provider.get_tracer("service-b")

    async def service_b(scope: Scope, receive: Receive, send: Send) -> None:
        with tracer.start_as_current_span("b.work"):
            await _json(send, _lineage())

    # OpenTelemetry's middleware outermost, as FastAPIInstrumentor and opentelemetry-instrument
    # put it; ours inside it.
    return _isolated(
        OpenTelemetryMiddleware(
            RunIdMiddleware(service_b, incoming=incoming), tracer_provider=provider
        )
    )


def _services(provider: TracerProvider, incoming: str) -> ASGIApp:
    """Return service A, which calls service B; each instrumented and run-aware."""
    tracer = provider.get_tracer("service-a")
    b_app = _service_b(provider, incoming)

    async def service_a(scope: Scope, receive: Receive, send: Send) -> None:
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=b_app), base_url="http://b")
        HTTPXClientInstrumentor.instrument_client(client, tracer_provider=provider)
        async with client:
            with tracer.start_as_current_span("a.plan"):
                b = (await client.get("/work")).json()
        await _json(send, {"a": _lineage(), "b": b})

    return OpenTelemetryMiddleware(RunIdMiddleware(service_a), tracer_provider=provider)


async def _call(
    app: ASGIApp, requests: int = 1, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://a") as client:
        responses = await asyncio.gather(
            *(client.get("/plan", headers=headers) for _ in range(requests))
        )
    return [response.json() for response in responses]


def _traces(exporter: InMemorySpanExporter) -> dict[int, list[ReadableSpan]]:
    traces: dict[int, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        traces.setdefault(span.context.trace_id, []).append(span)
    return traces


async def test_every_span_of_both_services_carries_the_same_run(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    _use(WITH_HEADERS)
    (answer,) = await _call(_services(provider, "continue"))
    assert answer["b"] == answer["a"]
    (spans,) = _traces(exporter).values()
    names = {span.name for span in spans}
    assert {"a.plan", "b.work", "GET"} <= names
    assert len(spans) >= 8  # two server spans, their send/receive spans, the client span, ours
    assert {(span.attributes or {}).get(ID) for span in spans} == {answer["a"]["run"]}


@pytest.mark.parametrize("propagators", [WITH_HEADERS, BAGGAGE_ONLY], ids=["headers", "baggage"])
async def test_child_mode_keeps_the_lineage_across_the_hop(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    propagators: tuple[TextMapPropagator, ...],
) -> None:
    _use(propagators)
    (answer,) = await _call(_services(provider, "child"))
    a, b = answer["a"], answer["b"]
    assert b["parent"] == a["run"]
    assert b["root"] == a["root"] == a["run"]
    b_spans = [s for s in exporter.get_finished_spans() if (s.attributes or {}).get(ID) == b["run"]]
    assert "b.work" in {span.name for span in b_spans}
    assert all((span.attributes or {}).get(PARENT) == a["run"] for span in b_spans)


async def test_ignore_mode_starts_an_unrelated_run_in_the_same_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    _use(WITH_HEADERS)
    (answer,) = await _call(_services(provider, "ignore"))
    a, b = answer["a"], answer["b"]
    assert b["run"] != a["run"]
    assert b["parent"] is None
    assert b["root"] == b["run"]
    assert len(_traces(exporter)) == 1
    # B's server span, stamped at start with A's run, ends up with B's own root run.
    (b_server,) = [
        span
        for span in exporter.get_finished_spans()
        if span.kind is SpanKind.SERVER and (span.attributes or {}).get(ID) == b["run"]
    ]
    assert (b_server.attributes or {})[ROOT] == b["run"]
    assert (b_server.attributes or {}).get(PARENT, "") == ""


async def test_ignore_mode_server_span_drops_the_parent_of_an_arrived_child_run(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    _use(WITH_HEADERS)
    arrived = RunId.generate().child()
    headers = {"X-Run-Id": arrived.value, "X-Parent-Run-Id": str(arrived.parent)}
    (answer,) = await _call(_service_b(provider, "ignore"), headers=headers)
    assert answer["parent"] is None
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    attrs = server.attributes or {}
    assert (attrs[ID], attrs[PARENT], attrs[ROOT]) == (answer["run"], "", answer["run"])


@pytest.mark.parametrize("propagators", [WITH_HEADERS, BAGGAGE_ONLY], ids=["headers", "baggage"])
async def test_a_child_run_keeps_its_lineage_across_the_hop_in_continue_mode(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    propagators: tuple[TextMapPropagator, ...],
) -> None:
    _use(propagators)
    sent = RunId.generate().child().child()
    headers = {
        "X-Run-Id": sent.value,
        "X-Parent-Run-Id": str(sent.parent),
        "X-Root-Run-Id": sent.root.value,
    }
    (answer,) = await _call(_services(provider, "continue"), headers=headers)
    lineage = {"run": sent.value, "parent": str(sent.parent), "root": sent.root.value}
    assert answer["a"] == answer["b"] == lineage
    (spans,) = _traces(exporter).values()
    assert {span.name for span in spans} >= {"a.plan", "b.work"}
    for span in spans:
        attrs = span.attributes or {}
        assert (attrs.get(ID), attrs.get(PARENT), attrs.get(ROOT)) == (
            sent.value,
            str(sent.parent),
            sent.root.value,
        )


async def test_baggage_alone_carries_the_run_to_the_next_service(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    _use(BAGGAGE_ONLY)
    (answer,) = await _call(_services(provider, "continue"))
    assert answer["b"] == answer["a"]
    (spans,) = _traces(exporter).values()
    assert {(span.attributes or {}).get(ID) for span in spans} == {answer["a"]["run"]}


async def test_concurrent_requests_each_keep_their_own_run_in_both_services(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    _use(WITH_HEADERS)
    answers = await _call(_services(provider, "continue"), requests=20)
    runs = {answer["a"]["run"] for answer in answers}
    assert len(runs) == 20
    assert all(answer["b"] == answer["a"] for answer in answers)
    traces = _traces(exporter)
    assert len(traces) == 20
    for spans in traces.values():
        assert len({(span.attributes or {}).get(ID) for span in spans}) == 1
    assert {(spans[0].attributes or {}).get(ID) for spans in traces.values()} == runs


async def test_the_run_header_wins_over_baggage_when_both_came(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    _use(WITH_HEADERS)
    header, in_baggage = RunId.generate(), RunId.generate()
    headers = {"X-Run-Id": header.value, "baggage": f"{ID}={in_baggage.value},other=1"}
    (answer,) = await _call(_service_b(provider, "continue"), headers=headers)
    assert answer["run"] == header.value
    (server,) = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert (server.attributes or {})[ID] == header.value


async def test_an_invalid_run_header_falls_back_to_the_run_in_baggage(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    _use(WITH_HEADERS)
    in_baggage = RunId.generate()
    headers = {"X-Run-Id": "not-a-run", "baggage": f"{ID}={in_baggage.value}"}
    (answer,) = await _call(_service_b(provider, "continue"), headers=headers)
    assert answer["run"] == in_baggage.value
