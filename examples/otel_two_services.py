"""Two services, one run: OpenTelemetry spans in both carry the run, across the HTTP hop.

The "planner" service calls the "search" service through an httpx client instrumented by
OpenTelemetry. Both run OpenTelemetry's ASGI middleware with our RunIdMiddleware inside it;
search takes each request as a child run of the caller's. The script prints the span tree of
the trace with each span's run:

    pip install "agent-run-id[otel,httpx] @ git+https://github.com/MukundaKatta/agent-run-id"
    pip install opentelemetry-sdk
    pip install opentelemetry-instrumentation-asgi opentelemetry-instrumentation-httpx
    python examples/otel_two_services.py

Here both services run in this process, through ``httpx.ASGITransport``, and search runs in an
empty context, as another process would: only the HTTP headers cross.
"""

from __future__ import annotations

import asyncio
import contextvars
import json

import httpx
from opentelemetry import propagate
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import agent_run_id.otel
from agent_run_id import current_run_id
from agent_run_id._types import ASGIApp, Receive, Scope, Send
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.otel import RunIdPropagator, RunIdSpanProcessor

exporter = InMemorySpanExporter()


def _provider(service: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


planner_provider, search_provider = _provider("planner"), _provider("search")
# install() adds the processor to one provider; a second one takes it by hand.
agent_run_id.otel.install(tracer_provider=planner_provider)
search_provider.add_span_processor(RunIdSpanProcessor())
# The same as OTEL_PROPAGATORS=tracecontext,baggage,agent_run_id in the environment.
propagate.set_global_textmap(
    CompositePropagator(
        [TraceContextTextMapPropagator(), W3CBaggagePropagator(), RunIdPropagator()]
    )
)


async def _answer(send: Send, body: object) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


async def search(scope: Scope, receive: Receive, send: Send) -> None:
    with search_provider.get_tracer("search").start_as_current_span("search_web"):
        await _answer(send, {"run": str(current_run_id())})


search_app = OpenTelemetryMiddleware(
    RunIdMiddleware(search, incoming="child"), tracer_provider=search_provider
)


async def search_service(scope: Scope, receive: Receive, send: Send) -> None:
    """Serve search from an empty context, as its own process would."""
    await contextvars.Context().run(asyncio.ensure_future, search_app(scope, receive, send))


async def planner(scope: Scope, receive: Receive, send: Send) -> None:
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=search_service), base_url="http://search"
    )
    HTTPXClientInstrumentor.instrument_client(client, tracer_provider=planner_provider)
    async with client:
        with planner_provider.get_tracer("planner").start_as_current_span("plan"):
            found = (await client.get("/search")).json()
    await _answer(send, {"run": str(current_run_id()), "search": found})


planner_app: ASGIApp = OpenTelemetryMiddleware(
    RunIdMiddleware(planner), tracer_provider=planner_provider
)


def _print_tree(spans: tuple[ReadableSpan, ...]) -> None:
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        parent = span.parent.span_id if span.parent is not None else None
        children.setdefault(parent, []).append(span)

    def show(span: ReadableSpan, depth: int) -> None:
        attributes = span.attributes or {}
        service = span.resource.attributes.get("service.name")
        run = str(attributes.get("agent_run.id", "-"))[:8]
        parent = str(attributes.get("agent_run.parent_id", "-"))[:8]
        label = f"{'  ' * depth}{span.name} [{service}]"
        print(f"{label:<48} run={run} parent_run={parent}")
        for child in children.get(span.context.span_id, []):
            show(child, depth + 1)

    for root in children.get(None, []):
        show(root, 0)


async def main() -> None:
    transport = httpx.ASGITransport(app=planner_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://planner") as client:
        answer = (await client.get("/plan")).json()
    print(f"planner ran as run {answer['run'][:8]}, search as run {answer['search']['run'][:8]}")
    _print_tree(exporter.get_finished_spans())


if __name__ == "__main__":
    asyncio.run(main())
