"""agent_run_id.mcp's ``_meta``: what the client writes, what the server reads, hostile input.

On mcp 2.x, with the real client and server in process; the options and their errors.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests._mcp_helpers import (
    MCP_MAJOR,
    Observed,
    build_server,
    observed,
    text_of,
    uvicorn_app,
)

if MCP_MAJOR < 2:
    pytest.skip("mcp 2.x tests: mcp 1.x runs tests/test_mcp1.py", allow_module_level=True)

from mcp import Client
from mcp.shared.exceptions import MCPError
from opentelemetry import baggage, propagate
from opentelemetry import context as otel_context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import agent_run_id.mcp
import agent_run_id.otel
from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id._notes import noted_run_id
from agent_run_id.mcp import PARENT_RUN_KEY, PREFIX, ROOT_RUN_KEY, RUN_KEY, SESSION_KEY, meta
from agent_run_id.otel import RunIdPropagator
from agent_run_id.registry import SQLiteRunRegistry

A = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"
B = "5f0c1a2b-3d4e-4f60-8a7b-9c8d7e6f5a4b"


@pytest.fixture
def otel_baggage() -> None:
    """``agent_run_id.otel.install()`` with baggage (its default): meta() writes baggage then."""
    agent_run_id.otel.install(span_processor=False)  # the autouse fixture uninstalls it


@pytest.fixture
def seen(tmp_path: Path) -> Iterator[Observed]:
    with observed(tmp_path) as found:
        yield found


async def call_with(meta_sent: Any, tool: str = "echo") -> Any:
    """Call a tool of an instrumented in-process server with ``meta_sent``; return what it saw."""
    server = agent_run_id.mcp.instrument_server(build_server())
    async with Client(server) as client:
        result = await client.call_tool(tool, {"n": 0}, meta=meta_sent)
    return json.loads(text_of(result))


# --- the client side: meta() ------------------------------------------------------------------


def test_meta_outside_a_run_is_empty_and_keeps_what_it_was_given() -> None:
    assert meta() == {}
    assert meta({"progressToken": 3}) == {"progressToken": 3}


def test_meta_names_the_run_its_lineage_and_session_under_our_prefix() -> None:
    assert PREFIX == "io.github.mukundakatta.agent-run-id/"
    with RunContext(run_id=RunId.from_string(A), session_id="chat-1"), RunContext() as child:
        entries = meta()
    assert entries[RUN_KEY] == child.run_id.value
    assert entries[PARENT_RUN_KEY] == entries[ROOT_RUN_KEY] == A
    assert entries[SESSION_KEY] == "chat-1"
    assert not any(key.startswith("io.modelcontextprotocol/") for key in entries)
    assert "baggage" not in entries  # agent_run_id.otel is not installed: no baggage of ours


def test_meta_writes_baggage_while_otel_install_with_baggage_is_in_effect() -> None:
    """The rule of agent_run_id.otel: the run goes in baggage once install(baggage=True) is on."""
    with RunContext(session_id="chat-1") as run:
        assert "baggage" not in meta()
        agent_run_id.otel.install(span_processor=False, baggage=False)
        assert "baggage" not in meta()
        assert meta({"baggage": "tenant=acme"})["baggage"] == "tenant=acme"  # left as it came
        agent_run_id.otel.install(span_processor=False)
        entries = meta()
        agent_run_id.otel.uninstall()
        assert "baggage" not in meta()
    assert f"agent_run.id={run.run_id.value}" in entries["baggage"].split(",")
    assert "agent_run.session_id=chat-1" in entries["baggage"].split(",")
    assert entries[RUN_KEY] == run.run_id.value


def test_meta_follows_the_session_annotate_sets_and_each_run_of_its_own() -> None:
    """Our keys are kept per run and session: a new session or another run is never stale."""
    with RunContext() as first:
        before = meta()
        agent_run_id.annotate(session_id="chat-2")
        after = meta()
        with RunContext() as second:
            inner = meta()
        again = meta()
        after["mine"] = 1  # each call gets a dict of its own, never the one kept
        assert "mine" not in meta()
    assert SESSION_KEY not in before
    assert after[SESSION_KEY] == again[SESSION_KEY] == inner[SESSION_KEY] == "chat-2"
    assert after[RUN_KEY] == again[RUN_KEY] == first.run_id.value
    assert (inner[RUN_KEY], inner[PARENT_RUN_KEY]) == (second.run_id.value, first.run_id.value)


def test_meta_merges_the_run_into_baggage_and_keeps_every_other_entry(otel_baggage: None) -> None:
    with RunContext(run_id=RunId.from_string(A)):
        entries = meta({"baggage": "tenant=acme,agent_run.id=" + B, "traceparent": "x"})
        assert meta({"baggage": 5})["baggage"] == 5  # not ours to rewrite
    assert entries["traceparent"] == "x"
    assert sorted(entries["baggage"].split(",")) == [
        "agent_run.id=" + A,
        "agent_run.root_id=" + A,
        "tenant=acme",
    ]


@pytest.mark.parametrize("session", [None, "chat-1", "a;b=c/d%e"])
def test_a_baggage_of_ours_alone_is_what_opentelemetry_would_write(session: str | None) -> None:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.context import Context

    from agent_run_id._mcp_baggage import baggage_with_run
    from agent_run_id._otel_runs import with_run_baggage

    run = RunId.generate(RunId.generate())
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, with_run_baggage(Context(), run, session))
    assert baggage_with_run(None, run, session) == carrier["baggage"]


@pytest.mark.parametrize("session", [None, "team@acme/chat-7"], ids=["no session", "to quote"])
def test_a_baggage_of_an_enclosing_runs_members_gives_ours_as_opentelemetry_would(
    session: str | None,
) -> None:
    """What install() leaves in baggage (the enclosing run's members) is replaced, exactly."""
    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    from agent_run_id._mcp_baggage import baggage_with_run
    from agent_run_id._otel_runs import with_run_baggage

    enclosing = RunId.generate(RunId.generate())
    run = enclosing.child()
    context = with_run_baggage(otel_context.Context(), enclosing, "chat-0")
    carrier: dict[str, str] = {}
    W3CBaggagePropagator().inject(carrier, with_run_baggage(context, run, session))
    token = otel_context.attach(context)
    try:
        assert baggage_with_run(None, run, session) == carrier["baggage"]
    finally:
        otel_context.detach(token)


def test_meta_merges_into_the_current_opentelemetry_baggage(otel_baggage: None) -> None:
    token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with RunContext(run_id=RunId.from_string(A)):
            entries = meta()
    finally:
        otel_context.detach(token)
    assert "tenant=acme" in entries["baggage"].split(",")
    assert f"agent_run.id={A}" in entries["baggage"].split(",")


def test_meta_leaves_ours_out_of_a_baggage_at_the_w3c_limits(otel_baggage: None) -> None:
    full = ",".join(f"k{i}=v" for i in range(180))  # the W3C limit of pairs
    with RunContext(run_id=RunId.from_string(A)):
        entries = meta({"baggage": full})
    assert entries[RUN_KEY] == A  # our own keys carry the run all the same
    assert sorted(entries["baggage"].split(",")) == sorted(full.split(","))


@pytest.mark.parametrize(
    "theirs",
    [
        "b=%ZZ;bad",  # a value no decoder takes: kept to the byte, not re-quoted
        " tenant = acme ; prop ,, x=1",  # spaces, properties and an empty member, as they came
        "big=" + "v" * 4100,  # one member past OpenTelemetry's 4,096 bytes: still theirs
    ],
    ids=["undecodable", "spacing", "long-member"],
)
def test_meta_keeps_each_member_of_the_callers_baggage_as_it_came(
    otel_baggage: None, theirs: str
) -> None:
    with RunContext(run_id=RunId.from_string(A)):
        entries = meta({"baggage": theirs + ",agent_run.id=" + B})
    kept = [member for member in theirs.split(",") if member.strip()]
    assert entries["baggage"] == ",".join([*kept, f"agent_run.id={A}", f"agent_run.root_id={A}"])


def test_meta_leaves_a_baggage_past_the_w3c_bytes_as_it_came(otel_baggage: None) -> None:
    theirs = ",".join(f"k{i}=" + "v" * 80 for i in range(160))  # 13,450 bytes: theirs, whole
    with RunContext(run_id=RunId.from_string(A)):
        entries = meta({"baggage": theirs})
    assert entries["baggage"] == theirs
    assert entries[RUN_KEY] == A


def test_meta_leaves_a_run_the_caller_named_as_it_is() -> None:
    with RunContext(run_id=RunId.from_string(A)):
        assert meta({RUN_KEY: B}) == {RUN_KEY: B}
        assert meta({"x-run-id": B}) == {"x-run-id": B}


def test_meta_refuses_what_is_not_a_mapping() -> None:
    with pytest.raises(TypeError, match="meta must be a mapping"):
        meta([("a", 1)])  # type: ignore[arg-type]


def test_meta_in_many_threads_and_tasks_is_each_ones_own_run() -> None:
    found: dict[str, str] = {}
    barrier = threading.Barrier(16)

    def worker(index: int) -> None:
        with RunContext() as run:
            barrier.wait()
            for _ in range(200):
                assert meta()[RUN_KEY] == run.run_id.value
            found[run.run_id.value] = meta()[RUN_KEY]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 16
    assert all(key == value for key, value in found.items())

    async def task() -> None:
        with RunContext() as run:
            for _ in range(20):
                await asyncio.sleep(0)
                assert meta()[RUN_KEY] == run.run_id.value

    async def main() -> None:
        await asyncio.gather(*(task() for _ in range(100)))

    asyncio.run(main())


def test_meta_resolver_is_meta_for_the_agents_sdk() -> None:
    assert agent_run_id.mcp.meta_resolver(object()) == {}
    with RunContext() as run:
        assert agent_run_id.mcp.meta_resolver(object())[RUN_KEY] == run.run_id.value


async def test_an_instrumented_call_given_meta_adds_the_run_only_inside_one(seen: Observed) -> None:
    server = agent_run_id.mcp.instrument_server(build_server())
    async with Client(server) as client:
        agent_run_id.mcp.instrument_client(client)
        outside = json.loads(text_of(await client.call_tool("echo", {"n": 0}, meta={"t": "x"})))
        with RunContext() as run:
            inside = json.loads(text_of(await client.call_tool("echo", {"n": 1}, meta={"t": "x"})))
    assert outside["parent"] is None  # a new root run on the server: nothing was added
    assert inside["parent"] == run.run_id.value


# --- the server side: what it reads, in order -------------------------------------------------


async def test_our_keys_come_first_then_the_propagators_then_baggage(seen: Observed) -> None:
    both = await call_with({RUN_KEY: A, "x-run-id": B, "baggage": f"agent_run.id={B}"})
    assert both["parent"] == A
    wire = await call_with({"x-run-id": A, "x-parent-run-id": B, "baggage": f"agent_run.id={B}"})
    assert wire["parent"] == A
    assert wire["root"] == B  # a child of A, whose own parent (and so root) came with it
    in_baggage = await call_with({"baggage": f"tenant=x,agent_run.id={A},agent_run.session_id=s1"})
    assert in_baggage["parent"] == A
    assert in_baggage["session"] == "s1"
    session = await call_with({RUN_KEY: A, SESSION_KEY: "s2", "x-session-id": "s3"})
    assert session["session"] == "s2"


async def test_an_invalid_first_source_falls_through_to_a_valid_next_one(seen: Observed) -> None:
    run = await call_with({RUN_KEY: "not-a-run", "x-run-id": A})
    assert run["parent"] == A


async def test_the_opentelemetry_propagator_in_mcp_carries_the_run(seen: Observed) -> None:
    """mcp 2.x injects the global propagator into _meta (over JSON-RPC: not in process).

    The server answers with no RunIdMiddleware in front: x-run-id in _meta alone carries the run.
    """
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(
        CompositePropagator([TraceContextTextMapPropagator(), RunIdPropagator()])
    )
    try:
        server = agent_run_id.mcp.instrument_server(build_server())
        with uvicorn_app(server.streamable_http_app()) as url:
            async with Client(url) as client:  # not instrumented: no meta of ours
                with RunContext(run_id=RunId.from_string(A)):
                    run = json.loads(text_of(await client.call_tool("echo", {"n": 0})))
    finally:
        propagate.set_global_textmap(previous)
    assert run["parent"] == A


HOSTILE: list[Any] = [
    {RUN_KEY: 5, PARENT_RUN_KEY: [A], "x-run-id": {"id": A}, "baggage": [A], SESSION_KEY: 3},
    {RUN_KEY: "00000000-0000-0000-0000-000000000000", "x-run-id": "ffffffff-" * 4},
    {RUN_KEY: f"{A},{B}", "x-run-id": A + "\n", SESSION_KEY: "bad session"},
    {RUN_KEY: "x" * 1_000_000, PARENT_RUN_KEY: "y" * 1_000_000},
    {"baggage": "agent_run.id=" + A + ",pad=" + "z" * 1_000_000},  # past the W3C limits
    {"baggage": "agent_run.id=not-a-run;agent_run.id=%ZZ,=,,,;"},
    {f"key{i}": i for i in range(10_000)},
    {SESSION_KEY: "s" * 129},
]


@pytest.mark.parametrize("hostile", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_meta_never_crashes_and_is_never_adopted(
    hostile: Any, seen: Observed
) -> None:
    run = await call_with(hostile)
    assert run["parent"] is None
    assert run["root"] == run["run"]
    assert run["run"] not in (A, B)
    assert run["session"] is None


async def test_a_baggage_of_another_type_fails_in_the_sdk_and_the_server_serves_on(
    seen: Observed,
) -> None:
    """mcp 2.3's own OpenTelemetry middleware (outside ours) fails on a baggage not a string."""
    server = agent_run_id.mcp.instrument_server(build_server())
    async with Client(server) as client:
        with pytest.raises(MCPError, match="Internal server error"):
            await client.call_tool("echo", {"n": 0}, meta={RUN_KEY: A, "baggage": 7})
        with RunContext(run_id=RunId.from_string(B)):
            meta_sent = meta({"baggage": 7})  # the client side leaves it as it is
        assert meta_sent["baggage"] == 7
        run = json.loads(text_of(await client.call_tool("echo", {"n": 1}, meta={RUN_KEY: A})))
    assert run["parent"] == A


def test_reading_hostile_meta_costs_no_more_for_more_entries() -> None:
    """Each key is looked up once: a _meta of 1,000 or 100,000 entries costs the same."""
    from agent_run_id._mcp_meta import incoming_run

    class Counting(dict[str, Any]):
        lookups = 0

        def get(self, key: str, default: Any = None) -> Any:
            Counting.lookups += 1
            return super().get(key, default)

    for size in (1_000, 100_000):
        Counting.lookups = 0
        assert incoming_run(Counting({f"k{i}": "v" for i in range(size)})) == (None, None)
        assert Counting.lookups <= 6
    big = {"baggage": "agent_run.id=" + A + "," + "p=q," * 250_000}  # 1 MB
    started = time.thread_time()  # CPU time: a busy machine's preemptions never count
    for _ in range(10):
        assert incoming_run(big) == (None, None)
    assert time.thread_time() - started < 1.0  # refused by length, not parsed


async def test_meta_that_is_no_object_is_left_to_the_sdk_to_refuse(seen: Observed) -> None:
    middleware = agent_run_id.mcp.RunIdServerMiddleware()
    inside: list[RunId | None] = []

    async def call_next(ctx: Any) -> dict[str, Any]:
        inside.append(current_run_id())
        return {"content": []}

    for params in ({"name": "t", "_meta": "x" * 10_000}, {"name": 5, "_meta": [1]}, None, 7):
        ctx = SimpleNamespace(method="tools/call", params=params, request_id=1, request=None)
        assert await middleware(ctx, call_next) == {"content": []}  # type: ignore[arg-type]
    assert all(run is not None and run.parent is None for run in inside)


async def test_other_messages_pass_through_untouched() -> None:
    middleware = agent_run_id.mcp.RunIdServerMiddleware()
    inside: list[RunId | None] = []

    async def call_next(ctx: Any) -> str:
        inside.append(current_run_id())
        return "result"

    for method, request_id in (
        ("initialize", 1),
        ("tools/list", 2),
        ("notifications/initialized", None),
        ("tools/call", None),  # a notification named as a request: not a request
    ):
        ctx = SimpleNamespace(method=method, params={"_meta": {RUN_KEY: A}}, request_id=request_id)
        with RunContext(run_id=RunId.from_string(B)):
            assert await middleware(ctx, call_next) == "result"  # type: ignore[arg-type]
    assert [run and run.value for run in inside] == [B] * 4


# --- outcomes ---------------------------------------------------------------------------------


async def test_a_failing_request_fails_its_run_and_still_reaches_the_client(
    seen: Observed,
) -> None:
    server = agent_run_id.mcp.instrument_server(build_server())
    async with Client(server) as client:
        agent_run_id.mcp.instrument_client(client)
        with RunContext() as caller, pytest.raises(MCPError):
            await client.read_resource("res://missing")
    seen.registry.flush()
    children = seen.registry.children(caller.run_id)
    assert [(row.status, row.metadata["name"]) for row in children] == [
        ("error", "resources/read res://missing")
    ]


async def test_an_unrecorded_failing_request_names_its_run_and_restores_the_context() -> None:
    """With nothing recording runs the server enters none: the failure still names the run."""
    caught: list[tuple[str | None, RunId | None, RunId | None]] = []

    async def outer(ctx: Any, call_next: Any) -> Any:  # outside ours: sees what it raised
        before = current_run_id()  # in process, the SDK serves in the caller's context
        try:
            return await call_next(ctx)
        except MCPError as exc:
            caught.append((noted_run_id(exc), before, current_run_id()))
            raise

    server = build_server()
    server.middleware.append(outer)
    agent_run_id.mcp.instrument_server(server)  # appended after it: inside it
    async with Client(server) as client:
        agent_run_id.mcp.instrument_client(client)
        with RunContext() as caller, pytest.raises(MCPError):
            await client.read_resource("res://missing")
    [(noted, before, after)] = caught
    assert noted not in (None, caller.run_id.value)  # the request's own run
    assert after is before


def test_reported_errors_are_read_from_dicts_and_models() -> None:
    from agent_run_id._mcp_server import reported_error

    text = SimpleNamespace(text="x" * 1000)
    model = SimpleNamespace(root=SimpleNamespace(isError=True, content=[text]))
    error = reported_error("tools/call", "t", model)
    assert error is not None
    assert str(error) == "tool t reported an error: " + "x" * 500
    assert reported_error("tools/call", "t", SimpleNamespace(is_error=True, content=None))
    assert reported_error("tools/call", "t", {"isError": "true"}) is None  # only a real true
    assert reported_error("prompts/get", "t", {"isError": True}) is None
    assert str(reported_error("tools/call", "t", {"isError": True, "content": [{}]})) == (
        "tool t reported an error"
    )


async def test_an_explicit_registry_records_the_tool_calls(tmp_path: Path) -> None:
    registry = SQLiteRunRegistry(tmp_path / "mcp.db")
    try:
        server = build_server()
        server.middleware.append(agent_run_id.mcp.RunIdServerMiddleware(registry=registry))
        async with Client(server) as client:
            agent_run_id.mcp.instrument_client(client)
            with RunContext() as caller:
                await client.call_tool("echo", {"n": 0})
            outside = json.loads(text_of(await client.call_tool("echo", {"n": 1})))
        registry.flush()
        [row] = registry.children(caller.run_id)
        assert row.metadata == {"name": "tools/call echo"}
        assert outside["parent"] is None  # no run: the call goes as it was, a new root run
        assert registry.get(outside["run"]).parent_id is None
    finally:
        registry.close()


def test_the_http_run_is_taken_only_from_what_the_middleware_set() -> None:
    from agent_run_id._mcp_server import ServerRuns

    runs = ServerRuns(incoming="child", registry=None, owner="test")
    for request in (
        None,
        SimpleNamespace(scope=None),
        SimpleNamespace(scope={}),
        SimpleNamespace(scope={"state": {"run_id": A}}),  # a string, not a RunId
    ):
        run, session = runs.run_of(None, None, request)
        assert run.parent is None
        assert session is None
    given = RunId.from_string(A)
    request = SimpleNamespace(scope={"state": {"run_id": given}})
    with RunContext(run_id=given, session_id="web-1"):
        run, session = runs.run_of(None, {}, request)
    assert run.parent == given
    assert session == "web-1"
    chosen = ServerRuns(incoming=lambda ctx: "continue", registry=None, owner="test")
    assert chosen.run_of(None, None, request)[0] == given


def test_many_callers_runs_are_each_their_own_and_the_parsed_ones_bounded() -> None:
    from agent_run_id._mcp_server import ServerRuns

    runs = ServerRuns(incoming="child", registry=None, owner="test")
    callers = [RunId.generate(RunId.generate()) for _ in range(2_500)]
    for caller in callers * 2:
        with RunContext(run_id=caller):
            sent = meta()
        run, _ = runs.run_of(None, sent, None)
        assert run.parent == caller
        assert run.parent.parent == caller.parent
        assert run.root == caller.root
    assert len(runs._parsed) <= 1024
    assert len(runs._seen) <= 1024


def test_a_kept_caller_gives_a_new_child_each_call_with_its_session() -> None:
    from agent_run_id._mcp_server import ServerRuns

    runs = ServerRuns(incoming="child", registry=None, owner="test")
    with RunContext(run_id=RunId.from_string(A), session_id="s1"), RunContext() as caller:
        sent = meta()
    made = [runs.run_of(None, dict(sent), None) for _ in range(3)]
    assert len(runs._seen) == 1
    assert len({run.value for run, _ in made}) == 3  # a new run for each call
    for run, session in made:
        assert (run.parent, run.parent.parent, run.root, session) == (
            caller.run_id,
            RunId.from_string(A),
            RunId.from_string(A),
            "s1",
        )
    other = runs.run_of(None, {**sent, SESSION_KEY: "s2"}, None)
    assert (other[0].parent, other[1]) == (caller.run_id, "s2")  # the session is part of it


@pytest.mark.parametrize(
    "sent",
    [
        {RUN_KEY: A.upper()},  # valid, not as we write it
        {RUN_KEY: A, PARENT_RUN_KEY: "not-a-run"},  # an invalid parent, dropped
        {RUN_KEY: A, SESSION_KEY: "bad session"},  # an invalid session, dropped
        {"x-run-id": A},  # another source
        {RUN_KEY: A, PARENT_RUN_KEY: ["unhashable"]},
    ],
)
def test_only_our_keys_as_we_write_them_are_kept(sent: dict[str, Any]) -> None:
    from agent_run_id._mcp_server import ServerRuns

    runs = ServerRuns(incoming="child", registry=None, owner="test")
    for _ in range(2):
        run, session = runs.run_of(None, sent, None)
        assert (run.parent, run.parent.parent if run.parent else None, session) == (
            RunId.from_string(A),
            None,
            None,
        )
    assert runs._seen == {}


# --- options ----------------------------------------------------------------------------------


def test_bad_options_say_which_and_how_to_fix() -> None:
    with pytest.raises(ValueError, match=r"RunIdServerMiddleware: incoming='sometimes'"):
        agent_run_id.mcp.RunIdServerMiddleware(incoming="sometimes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="registry must be a RunRegistry"):
        agent_run_id.mcp.RunIdServerMiddleware(registry=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="instrument_server takes an mcp Server"):
        agent_run_id.mcp.instrument_server(object())
    with pytest.raises(TypeError, match="instrument_client takes an mcp ClientSession"):
        agent_run_id.mcp.instrument_client(object())


def test_instrumenting_twice_changes_nothing() -> None:
    server = build_server()
    assert agent_run_id.mcp.instrument_server(server) is server
    agent_run_id.mcp.instrument_server(server)
    ours = [m for m in server.middleware if isinstance(m, agent_run_id.mcp.RunIdServerMiddleware)]
    assert len(ours) == 1
    assert repr(ours[0]) == "RunIdServerMiddleware(incoming='child', registry=None)"
    client = Client(server)
    agent_run_id.mcp.instrument_client(client)
    wrapped = client.call_tool
    assert agent_run_id.mcp.instrument_client(client) is client
    assert client.call_tool is wrapped


def test_a_client_with_no_meta_anywhere_is_told_what_to_do() -> None:
    class Old:
        async def call_tool(self, name: str) -> None: ...
        async def read_resource(self, uri: str) -> None: ...
        async def get_prompt(self, name: str) -> None: ...

    with pytest.raises(TypeError, match=r"pass meta=agent_run_id.mcp.meta\(\) on each call"):
        agent_run_id.mcp.instrument_client(Old())

    class Opaque(Old):
        read_resource = 42  # type: ignore[assignment]

    with pytest.raises(TypeError, match="pass meta="):  # no signature to read: no meta= assumed
        agent_run_id.mcp.instrument_client(Opaque())


def test_without_the_mcp_package_the_import_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "mcp" or m.startswith("mcp.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "agent_run_id.mcp", raising=False)
    with pytest.raises(
        ImportError,
        match=r'agent_run_id.mcp needs the mcp package: pip install "agent-run-id\[mcp\] @',
    ):
        importlib.import_module("agent_run_id.mcp")


def test_every_public_name_of_the_module_is_documented() -> None:
    import inspect

    for name in agent_run_id.mcp.__all__:
        value = getattr(agent_run_id.mcp, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), name
        else:
            assert isinstance(value, str), name


@pytest.mark.parametrize(
    "case",
    [
        "bare tools/call",
        "meta() + RunIdServerMiddleware",
        "bare, otel.install()",
        "ours, otel.install()",
    ],
)
def test_the_benchmarks_cases_run(case: str) -> None:
    from benchmarks.bench_mcp import _serve

    _serve(case, 3)  # what each callgrind process of `make bench` runs
