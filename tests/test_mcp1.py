"""agent_run_id.mcp on mcp 1.x (1.27), in its own environment: ``.venv-mcp1``.

The main ``.venv`` has mcp 2.x, so these run there with
``.venv-mcp1/bin/pytest tests/test_mcp1.py`` (``make test`` does it, its coverage combined with
the main run's). In-process (memory streams), stdio (a real subprocess server) and streamable
HTTP (uvicorn on 127.0.0.1): a client inside run A calls tools concurrently; each tool's log
lines, registry row and run span carry a child of A, and two client runs never mix. And the
stale context of mcp 1.x's streamable HTTP sessions (python-sdk issue 1969), shown and fixed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests._mcp_helpers import (
    MCP_MAJOR,
    Observed,
    build_server,
    by_message,
    observed,
    read_jsonl,
    stdio_command,
    text_of,
    uvicorn_app,
)

if MCP_MAJOR >= 2:
    pytest.skip("mcp 1.x tests: run them in .venv-mcp1 (make test)", allow_module_level=True)

import httpx
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.memory import create_connected_server_and_client_session

import agent_run_id.mcp
from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.httpx import AsyncRunIdTransport

TRANSPORTS = ("memory", "stdio", "http")
pytestmark = [
    # mcp 1.27's FastMCP settings, read by the pydantic-settings of today, warn when made.
    pytest.mark.filterwarnings("ignore:Field 'lifespan' has an incomplete definition:UserWarning"),
    # And its sessions leave anyio memory streams unclosed when they end (none of them ours).
    pytest.mark.filterwarnings(
        "ignore:Exception ignored in. <function MemoryObject"
        ":pytest.PytestUnraisableExceptionWarning"
    ),
]


@pytest.fixture(autouse=True)
def _collect_what_mcp_left() -> Iterator[None]:
    """Collect the streams mcp 1.x leaves unclosed while this test's warning filters apply.

    Left to the collector, one may go at the end of the session, where no test's filter is in
    effect, and fail the run (filterwarnings = error).
    """
    yield
    gc.collect()


@pytest.fixture
def seen(tmp_path: Path) -> Iterator[Observed]:
    with observed(tmp_path) as found:
        yield found


@asynccontextmanager
async def serving(
    kind: str,
    folder: Path,
    *,
    client_side: bool = True,
    server_side: bool = True,
    http: httpx.AsyncClient | None = None,
) -> AsyncIterator[ClientSession]:
    """Yield an initialized client session of the tool server over transport ``kind``."""
    if kind == "stdio":
        params = StdioServerParameters(**stdio_command(folder))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield agent_run_id.mcp.instrument_client(session) if client_side else session
        return
    server = build_server()
    if server_side:
        agent_run_id.mcp.instrument_server(server)
    if kind == "memory":
        async with create_connected_server_and_client_session(server) as session:
            yield agent_run_id.mcp.instrument_client(session) if client_side else session
        return
    with uvicorn_app(RunIdMiddleware(server.streamable_http_app())) as url:
        async with (
            streamable_http_client(url, http_client=http) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield agent_run_id.mcp.instrument_client(session) if client_side else session


class Server:
    """What the tool server saw: in this process, or in the stdio server's files."""

    def __init__(self, kind: str, folder: Path, found: Observed) -> None:
        self.kind, self.folder, self.found = kind, folder, found

    def line(self, message: str) -> Any:
        if self.kind == "stdio":
            return by_message(read_jsonl(self.folder / "server.jsonl"), message)
        return self.found.records.run_of(message)

    def row(self, run: str) -> tuple[str, str, str]:
        """The run's parent, status and name in the registry."""
        if self.kind != "stdio":
            record = self.found.row(run)
            return record.parent_id, record.status, record.metadata["name"]
        with sqlite3.connect(self.folder / "server.db") as db:
            parent, status, metadata = db.execute(
                "SELECT parent_id, status, metadata FROM runs WHERE run_id = ?", (run,)
            ).fetchone()
        return parent, status, json.loads(metadata)["name"]

    def span(self, name: str, run: str) -> tuple[dict[str, Any], str]:
        if self.kind == "stdio":
            lines = read_jsonl(self.folder / "spans.jsonl")
            spans = [(line["attributes"], line["status"]) for line in lines if line["name"] == name]
        else:
            spans = [
                (dict(span.attributes or {}), span.status.status_code.name)
                for span in self.found.spans.named(name)
            ]
        found = [one for one in spans if one[0].get("agent_run.id") == run]
        assert len(found) == 1, (name, run, spans)
        return found[0]


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_three_concurrent_tool_calls_each_run_in_a_child_of_the_callers_run(
    kind: str, tmp_path: Path, seen: Observed
) -> None:
    caller = RunId.generate()
    async with serving(kind, tmp_path) as session:
        with RunContext(run_id=caller, session_id="chat-1"):
            results = await asyncio.gather(
                *(session.call_tool("echo", {"n": n}) for n in range(3)),
                session.get_prompt("greet", {"who": "x"}),
                session.read_resource("res://run"),  # type: ignore[arg-type]
            )
            failed = await session.call_tool("fail", {})
    runs = [json.loads(text_of(result)) for result in results]
    assert len({run["run"] for run in runs}) == 5
    for run in runs:
        assert run["parent"] == caller.value
        assert run["session"] == "chat-1"
    assert [run["name"] for run in runs[3:]] == ["prompts/get greet", "resources/read res://run"]
    server = Server(kind, tmp_path, seen)
    for n, run in enumerate(runs[:3]):
        line = server.line(f"tool echo {n}")
        assert (line["run_id"], line["parent_run_id"]) == (run["run"], caller.value)
        assert server.row(run["run"]) == (caller.value, "ok", "tools/call echo")
        attributes, status = server.span("invoke_agent tools/call echo", run["run"])
        assert (attributes["agent_run.parent_id"], status) == (caller.value, "UNSET")
    assert failed.isError is True
    fail_run = server.line("tool fail")["run_id"]
    assert server.row(fail_run) == (caller.value, "error", "tools/call fail")
    assert server.span("invoke_agent tools/call fail", fail_run)[1] == "ERROR"


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_calls_of_two_client_runs_interleaved_never_mix(
    kind: str, tmp_path: Path, seen: Observed
) -> None:
    async with serving(kind, tmp_path) as session:

        async def agent(turns: asyncio.Queue[int], other: asyncio.Queue[int]) -> list[Any]:
            results = []
            with RunContext() as run:
                for _ in range(4):
                    await turns.get()  # strictly alternating: A, B, A, B, ...
                    results.append((run.run_id.value, await session.call_tool("echo", {"n": 1})))
                    other.put_nowait(1)
            return results

        queue_a: asyncio.Queue[int] = asyncio.Queue()
        queue_b: asyncio.Queue[int] = asyncio.Queue()
        queue_a.put_nowait(1)
        done = await asyncio.gather(agent(queue_a, queue_b), agent(queue_b, queue_a))
    callers = set()
    for results in done:
        for caller, result in results:
            callers.add(caller)
            assert json.loads(text_of(result))["parent"] == caller
    assert len(callers) == 2


@pytest.mark.parametrize("server_side", [False, True], ids=["stale", "fixed"])
async def test_the_stale_context_of_http_sessions_is_corrected_on_the_server(
    server_side: bool, tmp_path: Path, seen: Observed
) -> None:
    """python-sdk issue 1969: mcp 1.x runs every handler of a session in the context of the
    HTTP request that opened it. Over the header-only recipe (X-Run-Id on each POST, from the
    client's writer task) every tool call then ran in one constant run. The client side's
    ``_meta`` alone does not help: the server side enters the run in the handler's own task.
    """
    async with httpx.AsyncClient(transport=AsyncRunIdTransport()) as http:
        with RunContext() as opener:  # the session is opened inside a run of its own
            ctx = serving("http", tmp_path, server_side=server_side, http=http)
            session = await ctx.__aenter__()
        try:
            callers, tools = [], []
            for _ in range(3):
                with RunContext() as caller:
                    result = await session.call_tool("echo", {"n": 0})
                callers.append(caller.run_id.value)
                tools.append(json.loads(text_of(result)))
        finally:
            await ctx.__aexit__(None, None, None)
    if not server_side:
        # The bug, as mcp 1.x has it: each tool call in the run of the session's first POST,
        # the same for all three, none of them the caller's run or a child of it.
        assert len({tool["run"] for tool in tools}) == 1
        assert tools[0]["run"] not in callers
        assert {tool["parent"] for tool in tools}.isdisjoint(callers)
        assert tools[0]["root"] not in callers
        assert opener.run_id.value in (tools[0]["run"], tools[0]["root"])
        return
    assert [tool["parent"] for tool in tools] == callers
    assert len({tool["run"] for tool in tools}) == 3


async def test_a_server_started_inside_a_run_never_nests_its_calls_in_it(
    tmp_path: Path, seen: Observed
) -> None:
    """In process the server's tasks start in the context of whoever connected: not its run."""
    with RunContext() as connecting:
        async with serving("memory", tmp_path, client_side=False) as session:
            stale = json.loads(text_of(await session.call_tool("echo", {"n": 0})))
            assert current_run_id() is connecting.run_id
    assert stale["parent"] is None
    assert stale["run"] != connecting.run_id.value


async def test_client_meta_given_with_the_call_is_kept_and_the_run_added(
    tmp_path: Path, seen: Observed
) -> None:
    async with serving("memory", tmp_path) as session:
        send = session.send_request
        assert agent_run_id.mcp.instrument_client(session) is session  # again: nothing changes
        assert session.send_request is send
        with RunContext() as caller:
            result = await session.call_tool("echo", {"n": 0}, meta={"progressToken": 5})
            prompt = await session.get_prompt("greet", {"who": "y"})
        outside = json.loads(text_of(await session.call_tool("echo", {"n": 1})))
    assert json.loads(text_of(result))["parent"] == caller.run_id.value
    assert json.loads(text_of(prompt))["parent"] == caller.run_id.value
    assert outside["parent"] is None


def test_instrumenting_twice_changes_nothing_and_a_handler_runs_outside_a_request() -> None:
    from mcp import types

    server = build_server()
    agent_run_id.mcp.instrument_server(server)
    handler = server._mcp_server.request_handlers[types.CallToolRequest]
    agent_run_id.mcp.instrument_server(server)
    assert server._mcp_server.request_handlers[types.CallToolRequest] is handler
    request = types.CallToolRequest(
        params=types.CallToolRequestParams(name="echo", arguments={"n": 4})
    )
    with RunContext() as outer:
        result = asyncio.run(handler(request))  # no request context: no HTTP request either
    run = json.loads(text_of(result.root))
    assert run["parent"] is None
    assert run["run"] != outer.run_id.value
