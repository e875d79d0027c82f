"""agent_run_id.otel: the session as gen_ai.conversation.id on spans, the user only when asked."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import Depends, FastAPI
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agent_run_id import RunContext, annotate, current_run_id
from agent_run_id import otel as run_otel
from agent_run_id._hooks import annotators
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.otel import SESSION_ATTRIBUTE, USER_ATTRIBUTE, RunIdSpanProcessor

ID = "agent_run.id"
SESSION, USER = "gen_ai.conversation.id", "user.id"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    run_otel.uninstall()
    provider.shutdown()


def spans(exporter: InMemorySpanExporter) -> dict[str, dict[str, object]]:
    return {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}


def test_the_attribute_names_are_the_conventions() -> None:
    assert (SESSION_ATTRIBUTE, USER_ATTRIBUTE) == (SESSION, USER)


def test_spans_carry_the_session_and_the_user_only_when_asked(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider)
    tracer = provider.get_tracer("test")
    with RunContext(session_id="chat-42", user_id="u-7"), tracer.start_as_current_span("in"):
        pass
    with RunContext(user_id="u-7"), tracer.start_as_current_span("no session"):
        pass
    run_otel.install(tracer_provider=provider, user=True)  # the processor added once, now asked
    with RunContext(session_id="chat-42", user_id="u-7"), tracer.start_as_current_span("asked"):
        pass
    found = spans(exporter)
    assert found["in"][SESSION] == "chat-42"
    assert USER not in found["in"]
    assert SESSION not in found["no session"]
    assert USER not in found["no session"]
    assert (found["asked"][SESSION], found["asked"][USER]) == ("chat-42", "u-7")


def test_children_spans_carry_the_session_they_inherit(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider)
    tracer = provider.get_tracer("test")
    with (
        RunContext(session_id="chat-1"),
        RunContext() as child,
        tracer.start_as_current_span("step"),
    ):
        pass
    step = spans(exporter)["step"]
    assert (step[ID], step[SESSION]) == (child.run_id.value, "chat-1")


def test_annotate_reaches_later_spans_the_run_span_and_the_server_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider, run_spans=True, user=True)
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("server", kind=SpanKind.SERVER),
        RunContext(name="agent"),
    ):
        with tracer.start_as_current_span("before"):
            pass
        with tracer.start_as_current_span("auth"):
            assert annotate(session_id="chat-9", user_id="u-9")
        with tracer.start_as_current_span("after"):
            pass
    found = spans(exporter)
    for name in ("server", "invoke_agent agent", "auth", "after"):
        assert (found[name][SESSION], found[name][USER]) == ("chat-9", "u-9"), name
    assert SESSION not in found["before"]  # ended before the run had a session


def test_the_run_span_is_started_with_the_session(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider, run_spans=True, span_processor=False)
    with RunContext(name="agent", session_id="chat-3", user_id="u-3"):
        pass
    agent = spans(exporter)["invoke_agent agent"]
    assert agent[SESSION] == "chat-3"
    assert USER not in agent


def test_annotate_in_a_child_run_leaves_the_parents_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider)  # baggage: each run attaches its own context
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("server", kind=SpanKind.SERVER), RunContext():
        run_otel.install(tracer_provider=provider, baggage=False)  # the child attaches nothing
        with RunContext(), trace.use_span(trace.INVALID_SPAN):
            annotate(session_id="child-only")
    assert SESSION not in spans(exporter)["server"]


def test_annotate_without_a_session_or_asked_user_sets_nothing(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider)
    tracer = provider.get_tracer("test")
    with RunContext(), tracer.start_as_current_span("work"):
        annotate(user_id="u-1", task="plan")
    work = spans(exporter)["work"]
    assert SESSION not in work
    assert USER not in work  # the user is on spans only when asked


def test_uninstall_removes_the_annotation_hook(provider: TracerProvider) -> None:
    run_otel.install(tracer_provider=provider)
    assert len(annotators.items) == 1
    run_otel.install(tracer_provider=provider)  # replaced, not added twice
    assert len(annotators.items) == 1
    run_otel.uninstall()
    assert annotators.items == ()
    run_otel.install(tracer_provider=provider, baggage=True, span_processor=False)
    assert annotators.items == ()  # no spans of ours to annotate


def test_user_option_must_be_a_bool(provider: TracerProvider) -> None:
    with pytest.raises(TypeError, match="user must be True or False, got 'yes'"):
        run_otel.install(tracer_provider=provider, user="yes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="user must be True or False, got 1"):
        RunIdSpanProcessor(user=1)  # type: ignore[arg-type]
    assert RunIdSpanProcessor(user=True).user is True


# --- annotate() in a FastAPI dependency, behind OpenTelemetry's ASGI middleware ---------------


def traced_app(provider: TracerProvider) -> OpenTelemetryMiddleware:
    app = FastAPI()
    tracer = provider.get_tracer("handler")

    def current_user() -> str:  # sync: FastAPI runs it in a worker thread
        annotate(user_id="u-42", session_id="chat-42")
        return "u-42"

    @app.get("/chat")
    async def chat(user: str = Depends(current_user)) -> str:
        with tracer.start_as_current_span("llm call"):
            await asyncio.sleep(0)
        return user

    return OpenTelemetryMiddleware(RunIdMiddleware(app), tracer_provider=provider)


async def test_annotate_in_a_fastapi_dependency_reaches_the_spans(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider, user=True)
    transport = httpx.ASGITransport(app=traced_app(provider))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/chat")
    assert response.status_code == 200
    finished: list[ReadableSpan] = list(exporter.get_finished_spans())
    server = next(span for span in finished if span.kind == SpanKind.SERVER)
    llm = next(span for span in finished if span.name == "llm call")
    for span in (server, llm):
        attributes = dict(span.attributes or {})
        assert attributes[ID] == response.headers["x-run-id"]
        assert (attributes[SESSION], attributes[USER]) == ("chat-42", "u-42"), span.name


# --- zero cross-talk ---------------------------------------------------------------------------


def check_no_cross_talk(exporter: InMemorySpanExporter, expected: int) -> None:
    finished = exporter.get_finished_spans()
    assert len(finished) == expected
    for span in finished:
        attributes = dict(span.attributes or {})
        user, session, run = span.name.split(" ")
        assert (attributes[USER], attributes[SESSION], attributes[ID]) == (user, session, run)


async def test_concurrent_tasks_stamp_their_own_user_and_session(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider, user=True)
    tracer = provider.get_tracer("test")

    async def agent(number: int) -> None:
        async with RunContext(session_id=f"chat-{number}") as run:
            await asyncio.sleep(0)
            annotate(user_id=f"user-{number}")
            for _ in range(3):
                await asyncio.sleep(0)
                name = f"user-{number} chat-{number} {run.run_id.value}"
                with tracer.start_as_current_span(name):
                    await asyncio.sleep(0)

    await asyncio.gather(*(agent(number) for number in range(200)))
    check_no_cross_talk(exporter, 600)


def test_concurrent_threads_stamp_their_own_user_and_session(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider, user=True)
    tracer = provider.get_tracer("test")
    barrier = threading.Barrier(50)

    def agent(number: int) -> None:
        barrier.wait(timeout=30)
        for turn in range(10):
            session = f"chat-{number}-{turn}"
            with RunContext(session_id=session, user_id=f"user-{number}"):
                run = current_run_id()
                assert run is not None
                with tracer.start_as_current_span(f"user-{number} {session} {run.value}"):
                    pass

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(agent, range(50)))
    check_no_cross_talk(exporter, 500)


def test_annotate_in_a_nested_run_leaves_the_enclosing_runs_current_span_alone(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    """The span current when a nested run annotates may be the enclosing run's: not stamped."""
    run_otel.install(tracer_provider=provider, baggage=False, user=True)
    tracer = provider.get_tracer("test")
    with (
        RunContext(session_id="outer"),
        tracer.start_as_current_span("outer work"),
        RunContext(),
    ):
        annotate(user_id="inner-user", session_id="inner")
        with tracer.start_as_current_span("inner work"):
            pass
    outer, inner = spans(exporter)["outer work"], spans(exporter)["inner work"]
    assert outer[SESSION] == "outer"
    assert USER not in outer
    assert (inner[SESSION], inner[USER]) == ("inner", "inner-user")
