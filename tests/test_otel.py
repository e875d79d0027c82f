"""agent_run_id.otel: span attributes, the propagator, baggage, run spans and log correlation."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id import otel as run_otel
from agent_run_id._hooks import observers, run_from_fallbacks
from agent_run_id.otel import RunIdPropagator, RunIdSpanProcessor, run_from_context

ID, PARENT, ROOT = "agent_run.id", "agent_run.parent_id", "agent_run.root_id"


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


@pytest.fixture
def tracer(provider: TracerProvider) -> trace.Tracer:
    run_otel.install(tracer_provider=provider)
    return provider.get_tracer("test")


def _attrs(span: ReadableSpan) -> dict[str, object]:
    return dict(span.attributes or {})


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


# RunIdSpanProcessor


def test_spans_inside_a_run_carry_its_id_and_root(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    run_id = RunId.generate()
    with RunContext(run_id=run_id), tracer.start_as_current_span("inside"):
        pass
    with tracer.start_as_current_span("outside"):
        pass
    spans = _by_name(exporter)
    assert _attrs(spans["inside"]) == {ID: run_id.value, ROOT: run_id.value}
    assert _attrs(spans["outside"]) == {}


def test_spans_of_a_child_run_carry_its_lineage(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    with RunContext() as outer, RunContext() as inner, tracer.start_as_current_span("step"):
        pass
    attrs = _attrs(_by_name(exporter)["step"])
    assert attrs == {ID: inner.run_id.value, PARENT: outer.run_id.value, ROOT: outer.run_id.value}


async def test_concurrent_tasks_stamp_only_their_own_run(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    async def agent(n: int) -> str:
        async with RunContext() as run:
            for step in range(3):
                with tracer.start_as_current_span(f"task{n}.step{step}"):
                    await asyncio.sleep(0)
            return run.run_id.value

    runs = await asyncio.gather(*(agent(n) for n in range(40)))
    spans = exporter.get_finished_spans()
    assert len(spans) == 120
    for span in spans:
        n = int(span.name.split(".")[0][4:])
        assert _attrs(span)[ID] == runs[n]


def test_concurrent_threads_stamp_only_their_own_run(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    barrier = threading.Barrier(16)

    def agent(n: int) -> str:
        with RunContext() as run:
            barrier.wait(timeout=10)
            for step in range(3):
                with tracer.start_as_current_span(f"thread{n}.step{step}"):
                    pass
            return run.run_id.value

    with ThreadPoolExecutor(16) as pool:
        runs = list(pool.map(agent, range(16)))
    spans = exporter.get_finished_spans()
    assert len(spans) == 48
    for span in spans:
        n = int(span.name.split(".")[0][6:])
        assert _attrs(span)[ID] == runs[n]


def test_span_outside_any_run_takes_the_run_that_arrived_in_its_context(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    parent = RunId.generate()
    run_id = parent.child()
    carrier = {"X-Run-Id": run_id.value, "X-Parent-Run-Id": parent.value}
    extracted = RunIdPropagator().extract(carrier)
    with tracer.start_as_current_span("server", context=extracted):
        pass
    in_baggage = baggage.set_baggage(ID, run_id.value, Context())
    with tracer.start_as_current_span("consumer", context=in_baggage):
        pass
    spans = _by_name(exporter)
    assert _attrs(spans["server"]) == {ID: run_id.value, PARENT: parent.value, ROOT: parent.value}
    assert _attrs(spans["consumer"]) == {ID: run_id.value, ROOT: run_id.value}


def test_server_span_takes_the_run_its_request_runs_as(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    arrived = RunId.generate()
    extracted = RunIdPropagator().extract({"X-Run-Id": arrived.value})
    with (
        tracer.start_as_current_span("server", context=extracted, kind=SpanKind.SERVER),
        RunContext(run_id=arrived.child()) as request_run,
        RunContext(),
    ):
        pass
    with (
        tracer.start_as_current_span("consumer", kind=SpanKind.CONSUMER),
        RunContext() as message_run,
    ):
        pass
    with tracer.start_as_current_span("batch"), RunContext():
        pass
    spans = _by_name(exporter)
    assert _attrs(spans["server"]) == {
        ID: request_run.run_id.value,
        PARENT: arrived.value,
        ROOT: arrived.value,
    }
    assert _attrs(spans["consumer"])[ID] == message_run.run_id.value
    assert _attrs(spans["batch"]) == {}


def test_server_span_of_a_request_run_as_a_new_root_loses_the_arrived_parent(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    arrived = RunId.generate().child()
    carrier = {"X-Run-Id": arrived.value, "X-Parent-Run-Id": str(arrived.parent)}
    for name, came in (("child came", carrier), ("root came", {"X-Run-Id": arrived.value})):
        extracted = RunIdPropagator().extract(came)
        with (
            tracer.start_as_current_span(name, context=extracted, kind=SpanKind.SERVER),
            RunContext(run_id=RunId.generate()) as request_run,
        ):
            pass
        fresh = request_run.run_id.value
        expected = (
            {ID: fresh, ROOT: fresh, PARENT: ""}
            if name == "child came"
            else {ID: fresh, ROOT: fresh}
        )
        assert _attrs(_by_name(exporter)[name]) == expected


def test_server_span_started_inside_a_run_keeps_it_when_the_handler_starts_a_child(
    tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    with (
        RunContext() as run,
        tracer.start_as_current_span("server", kind=SpanKind.SERVER),
        RunContext(),
    ):
        pass
    assert _attrs(_by_name(exporter)["server"])[ID] == run.run_id.value


# RunIdPropagator


def test_inject_writes_the_current_run_and_its_lineage() -> None:
    carrier: dict[str, str] = {}
    with RunContext(session_id="chat-42") as outer, RunContext() as inner:
        RunIdPropagator().inject(carrier)
    assert carrier == {
        "x-run-id": inner.run_id.value,
        "x-parent-run-id": outer.run_id.value,
        "x-root-run-id": outer.run_id.value,
        "x-session-id": "chat-42",
    }
    assert set(carrier) == RunIdPropagator().fields


def test_inject_into_grpc_metadata_writes_only_lower_case_keys() -> None:
    """gRPC refuses metadata keys with capitals; OpenTelemetry's interceptor passes them on."""
    metadata: dict[str, str] = {"authorization": "Bearer t"}
    with RunContext(), RunContext():
        RunIdPropagator().inject(metadata)
    assert len(metadata) == 4
    assert all(re.fullmatch(r"[0-9a-z_.-]+", key) for key in metadata)
    assert all(re.fullmatch(r"[0-9a-z_.-]+", key) for key in RunIdPropagator().fields)


@pytest.mark.parametrize("name", ["X-Run-Id", "x-run-id", "X-ROOT-RUN-ID", "x-parent-run-id"])
def test_inject_leaves_a_carrier_holding_a_run_header_of_the_caller_alone(name: str) -> None:
    carrier = {name: "mine"}
    with RunContext(), RunContext():
        RunIdPropagator().inject(carrier)
    assert carrier == {name: "mine"}


def test_inject_outside_any_run_writes_nothing_or_forwards_the_run_that_arrived() -> None:
    carrier: dict[str, str] = {}
    RunIdPropagator().inject(carrier)
    assert carrier == {}
    run_id = RunId.generate()
    extracted = RunIdPropagator().extract({"x-run-id": run_id.value})
    RunIdPropagator().inject(carrier, context=extracted)
    assert carrier == {"x-run-id": run_id.value}


def test_extract_round_trips_the_run_with_its_lineage() -> None:
    carrier: dict[str, str] = {}
    with RunContext(), RunContext() as inner:
        RunIdPropagator().inject(carrier)
    run = run_from_context(RunIdPropagator().extract(carrier))
    assert run == inner.run_id
    assert run is not None
    assert run.parent == inner.run_id.parent
    assert run.root == inner.run_id.root


@pytest.mark.parametrize(
    "carrier",
    [
        {},
        {"X-Run-Id": "not-a-uuid"},
        {"X-Run-Id": "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908\r\nX-Evil: 1"},
        {"X-Run-Id": [RunId.generate().value, RunId.generate().value]},
    ],
)
def test_extract_leaves_the_context_unchanged_without_one_valid_run(
    carrier: dict[str, object],
) -> None:
    context = Context()
    assert RunIdPropagator().extract(carrier, context=context) is context
    assert run_from_context(context) is None


@pytest.mark.parametrize("case", [str.upper, str.lower, str.title])
def test_extract_reads_a_dict_carrier_in_any_case(case: Callable[[str], str]) -> None:
    run_id = RunId.generate().child()
    carrier = {
        case("X-Run-Id"): run_id.value,
        case("X-Parent-Run-Id"): str(run_id.parent),
        case("X-Root-Run-Id"): run_id.root.value,
    }
    run = run_from_context(RunIdPropagator().extract(carrier, context=Context()))
    assert run == run_id
    assert run is not None
    assert run.parent == run_id.parent


def test_extract_takes_a_repeated_header_only_when_every_copy_holds_the_same_id() -> None:
    run_id = RunId.generate()
    extracted = RunIdPropagator().extract({"X-Run-Id": [run_id.value, run_id.value.upper()]})
    assert run_from_context(extracted) == run_id


def test_extract_drops_invalid_lineage_and_keeps_the_run() -> None:
    run_id = RunId.generate()
    extracted = RunIdPropagator().extract({"X-Run-Id": run_id.value, "X-Parent-Run-Id": "junk"})
    run = run_from_context(extracted)
    assert run == run_id
    assert run is not None
    assert run.parent is None


def test_environment_carriers_take_the_run_to_a_subprocess() -> None:
    envcarrier = pytest.importorskip("opentelemetry.propagators._envcarrier")
    env: dict[str, str] = {}
    with RunContext(), RunContext() as run:
        RunIdPropagator().inject(env, setter=envcarrier.EnvironmentSetter())
    assert set(env) == {"X_RUN_ID", "X_PARENT_RUN_ID", "X_ROOT_RUN_ID"}
    script = (
        "import os\n"
        "from opentelemetry.propagators._envcarrier import EnvironmentGetter\n"
        "from agent_run_id.otel import RunIdPropagator, run_from_context\n"
        "ctx = RunIdPropagator().extract(os.environ, getter=EnvironmentGetter())\n"
        "run = run_from_context(ctx)\n"
        "print(run, run.parent)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [run.run_id.value, str(run.run_id.parent)]


def test_propagator_is_registered_under_its_entry_point() -> None:
    (entry,) = entry_points(group="opentelemetry_propagator", name="agent_run_id")
    assert entry.load() is RunIdPropagator


def test_otel_propagators_variable_turns_it_on_for_every_instrumentation() -> None:
    script = (
        "from opentelemetry import propagate\n"
        "from agent_run_id import RunContext, RunId\n"
        "carrier = {}\n"
        "with RunContext(run_id=RunId('0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908')):\n"
        "    propagate.inject(carrier)\n"
        "print(sorted(carrier.items()))\n"
        "ctx = propagate.extract({'x-run-id': '1b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908'})\n"
        "from agent_run_id.otel import run_from_context\n"
        "print(run_from_context(ctx))\n"
    )
    env = {**os.environ, "OTEL_PROPAGATORS": "tracecontext,baggage,agent_run_id"}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    injected, extracted = out.stdout.splitlines()
    assert "('x-run-id', '0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908')" in injected
    assert extracted == "1b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"


# Baggage


def test_run_is_in_baggage_while_current_next_to_other_entries(tracer: trace.Tracer) -> None:
    token = otel_context.attach(baggage.set_baggage("langsmith-trace", "abc"))
    try:
        with RunContext() as outer:
            with RunContext() as inner:
                assert baggage.get_all() == {
                    "langsmith-trace": "abc",
                    ID: inner.run_id.value,
                    ROOT: outer.run_id.value,
                    PARENT: outer.run_id.value,
                }
            assert baggage.get_all() == {
                "langsmith-trace": "abc",
                ID: outer.run_id.value,
                ROOT: outer.run_id.value,
            }
        assert baggage.get_all() == {"langsmith-trace": "abc"}
    finally:
        otel_context.detach(token)


def test_root_run_entered_inside_another_drops_the_outer_lineage(tracer: trace.Tracer) -> None:
    with RunContext(), RunContext(), RunContext(run_id=RunId.generate()) as fresh:
        assert baggage.get_all() == {ID: fresh.run_id.value, ROOT: fresh.run_id.value}


def test_baggage_header_carries_the_run_through_w3c_propagation(tracer: trace.Tracer) -> None:
    carrier: dict[str, str] = {}
    with RunContext() as run:
        W3CBaggagePropagator().inject(carrier)
    assert run_from_context(W3CBaggagePropagator().extract(carrier, context=Context())) == (
        run.run_id
    )


def test_full_baggage_keeps_theirs_and_leaves_ours_out(tracer: trace.Tracer) -> None:
    theirs = Context()
    for n in range(2):
        theirs = baggage.set_baggage(f"big{n}", "x" * 4050, theirs)
    token = otel_context.attach(theirs)
    try:
        with RunContext():
            assert set(baggage.get_all()) == {"big0", "big1"}
            carrier: dict[str, str] = {}
            W3CBaggagePropagator().inject(carrier)
            assert len(carrier["baggage"]) <= 8192
            assert carrier["baggage"].count("x" * 4050) == 2
    finally:
        otel_context.detach(token)


def test_ours_left_out_of_full_baggage_says_so_at_debug_level(
    tracer: trace.Tracer, caplog: pytest.LogCaptureFixture
) -> None:
    theirs = Context()
    for n in range(2):
        theirs = baggage.set_baggage(f"big{n}", "x" * 4050, theirs)
    token = otel_context.attach(theirs)
    try:
        with caplog.at_level(logging.DEBUG, logger="agent_run_id.otel"), RunContext() as run:
            pass
    finally:
        otel_context.detach(token)
    (record,) = caplog.records
    assert record.levelno == logging.DEBUG
    assert (
        record.getMessage()
        == f"run {run.run_id.value} left out of baggage: it would pass the W3C limits"
    )


def test_an_entry_the_injector_drops_for_its_length_takes_no_room(tracer: trace.Tracer) -> None:
    theirs = Context()
    for n in range(2):
        theirs = baggage.set_baggage(f"huge{n}", "x" * 5000, theirs)
    token = otel_context.attach(theirs)
    try:
        with RunContext() as run:
            carrier: dict[str, str] = {}
            W3CBaggagePropagator().inject(carrier)
    finally:
        otel_context.detach(token)
    assert run_from_context(W3CBaggagePropagator().extract(carrier, Context())) == run.run_id


def test_too_many_entries_keeps_theirs_and_leaves_ours_out(tracer: trace.Tracer) -> None:
    theirs = Context()
    for n in range(179):
        theirs = baggage.set_baggage(f"k{n}", "v", theirs)
    token = otel_context.attach(theirs)
    try:
        with RunContext():
            assert len(baggage.get_all()) == 179
            assert ID not in baggage.get_all()
    finally:
        otel_context.detach(token)


async def test_concurrent_tasks_each_carry_their_own_run_in_baggage(tracer: trace.Tracer) -> None:
    async def agent() -> bool:
        async with RunContext() as run:
            await asyncio.sleep(0)
            ok = baggage.get_baggage(ID) == run.run_id.value
            await asyncio.sleep(0)
            return ok and run_from_context() == run.run_id

    assert all(await asyncio.gather(*(agent() for _ in range(50))))
    assert baggage.get_all() == {}


def test_concurrent_threads_each_carry_their_own_run_in_baggage(tracer: trace.Tracer) -> None:
    barrier = threading.Barrier(16)

    def agent(_: int) -> bool:
        with RunContext() as run:
            barrier.wait(timeout=10)
            carrier: dict[str, str] = {}
            W3CBaggagePropagator().inject(carrier)
            return run_from_context(W3CBaggagePropagator().extract(carrier, Context())) == (
                run.run_id
            )

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(agent, range(16)))


def test_incoming_baggage_header_is_a_fallback_for_the_inbound_middleware(
    tracer: trace.Tracer,
) -> None:
    run_id = RunId.generate().child()
    headers = {"baggage": f"other=1,{ID}={run_id.value},{PARENT}={run_id.parent},{ROOT}=junk"}
    run = run_from_fallbacks(headers.get)
    assert run == run_id
    assert run is not None
    assert run.parent == run_id.parent
    assert run_from_fallbacks({}.get) is None
    assert run_from_fallbacks({"baggage": "other=1"}.get) is None
    assert run_from_fallbacks({"baggage": f"{ID}=nope"}.get) is None
    run_otel.uninstall()
    assert run_from_fallbacks(headers.get) is None


def test_run_left_in_another_context_does_not_detach_there(
    tracer: trace.Tracer, caplog: pytest.LogCaptureFixture
) -> None:
    run = RunContext()
    entered_in = contextvars.copy_context()
    entered_in.run(run.__enter__)
    with caplog.at_level(logging.ERROR):
        run.__exit__(None, None, None)
    assert not caplog.records
    assert baggage.get_all() == {}


# Run spans


@pytest.fixture
def run_tracer(provider: TracerProvider) -> trace.Tracer:
    run_otel.install(tracer_provider=provider, run_spans=True)
    return provider.get_tracer("test")


def test_each_run_is_a_span_with_its_work_under_it(
    run_tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    with RunContext(name="planner") as run, run_tracer.start_as_current_span("chat"):
        pass
    with RunContext():
        pass
    spans = _by_name(exporter)
    agent = spans["invoke_agent planner"]
    assert _attrs(agent) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "planner",
        ID: run.run_id.value,
        ROOT: run.run_id.value,
    }
    assert spans["chat"].parent is not None
    assert spans["chat"].parent.span_id == agent.context.span_id
    assert _attrs(spans["invoke_agent"])["gen_ai.operation.name"] == "invoke_agent"


def test_a_failed_run_marks_its_span_as_an_error(
    run_tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    with pytest.raises(ValueError, match="tool broke"), RunContext(name="agent"):
        raise ValueError("tool broke")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: tool broke"
    assert [event.name for event in span.events] == ["exception"]


@pytest.mark.parametrize("ending", [asyncio.CancelledError, GeneratorExit])
def test_a_cancelled_run_ends_its_span_without_an_error(
    run_tracer: trace.Tracer, exporter: InMemorySpanExporter, ending: type[BaseException]
) -> None:
    with pytest.raises(ending), RunContext(name="agent"):
        raise ending()
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET
    assert span.events == ()


async def test_a_cancelled_asyncio_task_ends_its_run_span_without_an_error(
    run_tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    async def agent() -> None:
        async with RunContext(name="agent"):
            await asyncio.sleep(10)

    task = asyncio.ensure_future(agent())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.UNSET


def test_run_spans_without_the_processor_still_carry_the_run(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider, run_spans=True, span_processor=False)
    with RunContext() as outer, RunContext(name="tool") as inner:
        pass
    spans = _by_name(exporter)
    assert _attrs(spans["invoke_agent tool"]) == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "tool",
        ID: inner.run_id.value,
        PARENT: outer.run_id.value,
        ROOT: outer.run_id.value,
    }
    assert _attrs(spans["invoke_agent"])[ID] == outer.run_id.value


async def test_concurrent_runs_are_sibling_spans_with_their_own_children(
    run_tracer: trace.Tracer, exporter: InMemorySpanExporter
) -> None:
    async def agent(n: int) -> None:
        async with RunContext(name=f"a{n}"):
            await asyncio.sleep(0)
            with run_tracer.start_as_current_span(f"tool{n}"):
                await asyncio.sleep(0)

    with run_tracer.start_as_current_span("request"):
        await asyncio.gather(*(agent(n) for n in range(30)))
    spans = _by_name(exporter)
    request = spans["request"].context.span_id
    for n in range(30):
        agent_span = spans[f"invoke_agent a{n}"]
        tool = spans[f"tool{n}"]
        assert agent_span.parent is not None
        assert agent_span.parent.span_id == request
        assert tool.parent is not None
        assert tool.parent.span_id == agent_span.context.span_id
        assert _attrs(tool)[ID] == _attrs(agent_span)[ID]
    assert trace.get_current_span() is trace.INVALID_SPAN


def test_run_spans_alone_leave_baggage_alone(provider: TracerProvider) -> None:
    run_otel.install(tracer_provider=provider, run_spans=True, baggage=False)
    with RunContext():
        assert baggage.get_all() == {}
        assert trace.get_current_span().is_recording()


# Log correlation


def test_log_records_carry_the_trace_and_span_ids(provider: TracerProvider) -> None:
    run_otel.install(tracer_provider=provider, log_correlation=True)
    run_logging.install()
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("test_otel.correlation")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    logger.info("before")
    with RunContext() as run, provider.get_tracer("t").start_as_current_span("s") as span:
        logger.info("inside")
    run_otel.uninstall()
    logger.info("after")
    before, inside, after = (r.__dict__ for r in records)
    assert before["otelTraceID"] == "0"
    assert before["otelSpanID"] == "0"
    assert inside["run_id"] == run.run_id.value
    assert inside["otelTraceID"] == format(span.get_span_context().trace_id, "032x")
    assert inside["otelSpanID"] == format(span.get_span_context().span_id, "016x")
    assert inside["otelTraceSampled"] is True
    assert "otelTraceID" not in after


# install


@pytest.mark.parametrize("option", ["baggage", "run_spans", "span_processor", "log_correlation"])
def test_install_rejects_options_that_are_not_booleans(option: str) -> None:
    with pytest.raises(TypeError, match=f"{option} must be True or False, got 'yes'"):
        run_otel.install(**{option: "yes"})  # type: ignore[arg-type]


def test_install_needs_an_sdk_provider_for_the_processor() -> None:
    with pytest.raises(TypeError, match="span_processor=True needs an SDK TracerProvider"):
        run_otel.install(tracer_provider=trace.NoOpTracerProvider())
    run_otel.install(tracer_provider=trace.NoOpTracerProvider(), span_processor=False)
    try:
        with RunContext() as run:
            assert baggage.get_baggage(ID) == run.run_id.value
    finally:
        run_otel.uninstall()


def test_installing_again_adds_the_processor_once_and_replaces_the_options(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    run_otel.install(tracer_provider=provider, run_spans=True)
    run_otel.install(tracer_provider=provider)
    processors = provider._active_span_processor._span_processors
    assert all(isinstance(p, SpanProcessor) for p in processors)
    assert sum(isinstance(p, RunIdSpanProcessor) for p in processors) == 1
    with RunContext():
        assert current_run_id() is not None
    assert exporter.get_finished_spans() == ()


def test_processor_alone_registers_no_observer_and_no_fallback(provider: TracerProvider) -> None:
    run_otel.install(tracer_provider=provider, baggage=False)
    with RunContext():
        assert baggage.get_all() == {}
    assert run_from_fallbacks({"baggage": f"{ID}={RunId.generate()}"}.get) is None


def test_log_correlation_alone_observes_no_run(provider: TracerProvider) -> None:
    run_otel.install(baggage=False, span_processor=False, log_correlation=True)
    assert observers.items == ()


def test_public_surface_is_all() -> None:
    assert sorted(run_otel.__all__) == [
        "RUN_ID_ATTRIBUTE",
        "RUN_PARENT_ID_ATTRIBUTE",
        "RUN_ROOT_ID_ATTRIBUTE",
        "RunIdPropagator",
        "RunIdSpanProcessor",
        "SESSION_ATTRIBUTE",
        "USER_ATTRIBUTE",
        "install",
        "run_from_context",
        "session_from_context",
        "uninstall",
    ]
    public = [getattr(run_otel, name) for name in run_otel.__all__]
    assert all(obj.__doc__ for obj in public if callable(obj))
    assert (run_otel.RUN_ID_ATTRIBUTE, run_otel.RUN_PARENT_ID_ATTRIBUTE) == (ID, PARENT)
    assert run_otel.RUN_ROOT_ID_ATTRIBUTE == ROOT
