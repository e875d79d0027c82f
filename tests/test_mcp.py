"""agent_run_id.mcp on mcp 2.x: every tool call carries its run, over every real transport.

In-process (memory streams), stdio (a real subprocess server) and streamable HTTP (uvicorn on
127.0.0.1): a client inside run A calls tools concurrently; each tool's log lines, registry row
and spans carry a child of A (A itself under ``incoming="continue"``), and two client runs never
mix. The mcp 1.x tests are in tests/test_mcp1.py (their own environment, ``.venv-mcp1``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
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
from tests._mcp_helpers import seen as seen_by_tool

if MCP_MAJOR < 2:
    pytest.skip("mcp 2.x tests: mcp 1.x runs tests/test_mcp1.py", allow_module_level=True)

import httpx2
import mcp.shared._otel
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

import agent_run_id._mcp_server
import agent_run_id.mcp
from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.httpx2 import AsyncRunIdTransport

TRANSPORTS = ("memory", "stdio", "http")


@pytest.fixture
def seen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Observed]:
    """Logs, spans (the SDK's server spans too) and registry rows of this process."""
    with observed(tmp_path) as found:
        # The SDK's tracer is the global one: make its spans this test's.
        monkeypatch.setattr(mcp.shared._otel, "_tracer", found.provider.get_tracer("mcp"))
        yield found


@asynccontextmanager
async def serving(
    kind: str, folder: Path, incoming: str = "child", *, instrument: bool = True
) -> AsyncIterator[Client]:
    """Yield a connected client of the tool server over transport ``kind``, instrumented."""
    if kind == "stdio":
        target: Any = StdioServerParameters(**stdio_command(folder, incoming))
    else:
        server = build_server()
        agent_run_id.mcp.instrument_server(server, incoming=incoming)
        target = server
    if kind != "http":
        async with Client(target) as client:
            yield client if not instrument else agent_run_id.mcp.instrument_client(client)
        return
    with uvicorn_app(RunIdMiddleware(server.streamable_http_app())) as url:
        async with Client(url) as client:
            yield client if not instrument else agent_run_id.mcp.instrument_client(client)


class Server:
    """What the tool server saw: in this process, or in the stdio server's files."""

    def __init__(self, kind: str, folder: Path, found: Observed) -> None:
        self.kind, self.folder, self.found = kind, folder, found

    def line(self, message: str) -> Any:
        if self.kind == "stdio":
            return by_message(read_jsonl(self.folder / "server.jsonl"), message)
        return self.found.records.run_of(message)

    def row(self, run: str) -> dict[str, Any]:
        if self.kind != "stdio":
            record = self.found.row(run)
            return {
                "parent_id": record.parent_id,
                "status": record.status,
                "metadata": dict(record.metadata),
                "error": record.error,
            }
        with sqlite3.connect(self.folder / "server.db") as db:
            db.row_factory = sqlite3.Row
            found = db.execute("SELECT * FROM runs WHERE run_id = ?", (run,)).fetchone()
        return {
            "parent_id": found["parent_id"],
            "status": found["status"],
            "metadata": json.loads(found["metadata"]),
            "error": found["error"],
        }

    def spans(self, name: str) -> list[tuple[dict[str, Any], str]]:
        """Each span called ``name``: its attributes and its status."""
        if self.kind == "stdio":
            lines = read_jsonl(self.folder / "spans.jsonl")
            return [(line["attributes"], line["status"]) for line in lines if line["name"] == name]
        return [
            (dict(span.attributes or {}), span.status.status_code.name)
            for span in self.found.spans.named(name)
        ]

    def span_of(self, name: str, run: str) -> tuple[dict[str, Any], str]:
        found = [one for one in self.spans(name) if one[0].get("agent_run.id") == run]
        assert len(found) == 1, (name, run, self.spans(name))
        return found[0]


@pytest.mark.parametrize("incoming", ["child", "continue"])
@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_three_concurrent_tool_calls_each_run_in_the_callers_run(
    kind: str, incoming: str, tmp_path: Path, seen: Observed
) -> None:
    caller = RunId.generate()
    async with serving(kind, tmp_path, incoming) as client:
        with RunContext(run_id=caller, session_id="chat-7"):
            results = await asyncio.gather(
                *(client.call_tool("echo", {"n": n}) for n in range(3)),
                client.call_tool("echo_sync", {"n": 9}),
            )
            assert current_run_id() is caller
    runs = [json.loads(text_of(result)) for result in results]
    server = Server(kind, tmp_path, seen)
    if incoming == "continue":
        assert {run["run"] for run in runs} == {caller.value}
    else:
        assert len({run["run"] for run in runs}) == 4
        assert {run["parent"] for run in runs} == {caller.value}
    for n, run in zip((0, 1, 2, 9), runs, strict=True):
        assert run["root"] == caller.value
        assert run["session"] == "chat-7"
        tool = "echo" if n != 9 else "echo_sync"
        assert run["name"] == f"tools/call {tool}"
        line = server.line(f"tool {tool} {n}")
        assert line["run_id"] == run["run"]
        if incoming == "child":
            assert line["parent_run_id"] == caller.value
            row = server.row(run["run"])
            assert row["parent_id"] == caller.value
            assert row["status"] == "ok"
            assert row["metadata"]["name"] == f"tools/call {tool}"
            # The run's own span and the SDK's server span of the call, stamped with the run.
            attributes, status = server.span_of(f"invoke_agent tools/call {tool}", run["run"])
            assert attributes["agent_run.parent_id"] == caller.value
            assert status == "UNSET"
            attributes, _ = server.span_of(f"tools/call {tool}", run["run"])
            assert attributes["agent_run.parent_id"] == caller.value
            assert attributes["gen_ai.conversation.id"] == "chat-7"


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_calls_of_two_client_runs_interleaved_never_mix(
    kind: str, tmp_path: Path, seen: Observed
) -> None:
    async with serving(kind, tmp_path) as client:

        async def agent(turns: asyncio.Queue[int], other: asyncio.Queue[int]) -> list[Any]:
            results = []
            with RunContext() as run:
                for _ in range(4):
                    await turns.get()  # strictly alternating: A, B, A, B, ...
                    results.append((run.run_id.value, await client.call_tool("echo", {"n": 1})))
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


async def test_resources_and_prompts_run_as_children_too(tmp_path: Path, seen: Observed) -> None:
    async with serving("memory", tmp_path) as client:
        with RunContext() as run:
            prompt = json.loads(text_of(await client.get_prompt("greet", {"who": "x"})))
            resource = json.loads(text_of(await client.read_resource("res://run")))
    assert prompt["parent"] == resource["parent"] == run.run_id.value
    assert prompt["name"] == "prompts/get greet"
    assert resource["name"] == "resources/read res://run"
    assert seen.row(resource["run"]).metadata["name"] == "resources/read res://run"


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_tool_error_reported_as_a_value_fails_its_run(
    kind: str, tmp_path: Path, seen: Observed
) -> None:
    async with serving(kind, tmp_path) as client:
        with RunContext() as run:
            result = await client.call_tool("fail", {})
    assert result.is_error is True
    server = Server(kind, tmp_path, seen)
    tool_run = server.line("tool fail")["run_id"]
    row = server.row(tool_run)
    assert row["parent_id"] == run.run_id.value
    assert row["status"] == "error"
    assert row["error"].startswith("ReportedError: tool fail reported an error: ")
    _, status = server.span_of("invoke_agent tools/call fail", tool_run)
    assert status == "ERROR"


async def test_without_the_client_side_a_tool_runs_as_a_new_root_run(
    tmp_path: Path, seen: Observed
) -> None:
    async with serving("memory", tmp_path, instrument=False) as client:
        with RunContext():
            # In process the server's tasks were started in the client's context: never nested.
            run = json.loads(text_of(await client.call_tool("echo", {"n": 0})))
    assert run["parent"] is None
    assert run["root"] == run["run"]


async def test_explicit_meta_on_each_call_carries_the_run(tmp_path: Path, seen: Observed) -> None:
    async with serving("memory", tmp_path, instrument=False) as client:
        with RunContext() as caller:
            meta = agent_run_id.mcp.meta({"trace": "mine"})
            assert meta["trace"] == "mine"
            result = await client.call_tool("echo", {"n": 0}, meta=meta)
            prompt = await client.get_prompt("greet", {"who": "y"}, meta=agent_run_id.mcp.meta())
    assert json.loads(text_of(result))["parent"] == caller.run_id.value
    assert json.loads(text_of(prompt))["parent"] == caller.run_id.value


async def test_ignore_starts_a_new_root_run_for_each_call(tmp_path: Path, seen: Observed) -> None:
    async with serving("memory", tmp_path, "ignore") as client:
        with RunContext() as caller:
            run = json.loads(text_of(await client.call_tool("echo", {"n": 0})))
    assert run["parent"] is None
    assert run["run"] != caller.run_id.value


async def test_incoming_may_be_a_function_of_the_request(tmp_path: Path, seen: Observed) -> None:
    asked: list[str] = []

    def choose(ctx: Any) -> str:
        asked.append(ctx.method)
        return "continue" if ctx.params["name"] == "echo" else "child"

    server = MCPServer(
        "tools", middleware=[agent_run_id.mcp.RunIdServerMiddleware(incoming=choose)]
    )
    server.add_tool(seen_by_tool, name="plain")
    server.add_tool(seen_by_tool, name="echo")
    async with Client(server) as client:
        agent_run_id.mcp.instrument_client(client)
        with RunContext() as caller:
            plain = json.loads(text_of(await client.call_tool("plain", {})))
            echo = json.loads(text_of(await client.call_tool("echo", {})))
    assert plain["parent"] == caller.run_id.value
    assert echo["run"] == caller.run_id.value
    assert asked == ["tools/call", "tools/call"]


async def test_http_without_meta_takes_the_run_of_the_http_request(
    tmp_path: Path, seen: Observed
) -> None:
    """The header-only recipe (mcp 2.x): X-Run-Id on the POST, RunIdMiddleware, then our child."""
    server = build_server()
    agent_run_id.mcp.instrument_server(server)
    with uvicorn_app(RunIdMiddleware(server.streamable_http_app())) as url:
        http = httpx2.AsyncClient(transport=AsyncRunIdTransport())
        async with http, Client(streamable_http_client(url, http_client=http)) as client:
            with RunContext() as caller:
                runs = await asyncio.gather(*(client.call_tool("echo", {"n": n}) for n in range(3)))
    for result in runs:
        assert json.loads(text_of(result))["parent"] == caller.run_id.value


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "unrecorded"])
async def test_fifty_client_runs_at_once_each_get_only_their_own_calls(
    recorded: bool,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Recorded (a registry, observers) the server enters a RunContext; unrecorded, a frame."""
    if recorded:
        request.getfixturevalue("seen")
    quick: list[bool] = []  # per tool call: entered without a RunContext?
    unwatched = agent_run_id._mcp_server.enter_unwatched

    def spy(*args: Any) -> Any:
        token = unwatched(*args)
        quick.append(token is not None)
        return token

    monkeypatch.setattr(agent_run_id._mcp_server, "enter_unwatched", spy)
    async with serving("memory", tmp_path) as client:

        async def agent(n: int) -> tuple[str, list[Any]]:
            with RunContext(session_id=f"chat-{n}") as run:
                results = await asyncio.gather(
                    *(client.call_tool("echo", {"n": n}) for n in range(2))
                )
            return run.run_id.value, [json.loads(text_of(result)) for result in results]

        done = await asyncio.gather(*(agent(n) for n in range(50)))
        outside = json.loads(text_of(await client.call_tool("echo", {"n": 0})))
    assert len({caller for caller, _ in done}) == 50
    for n, (caller, runs) in enumerate(done):
        assert [(run["parent"], run["session"], run["name"]) for run in runs] == [
            (caller, f"chat-{n}", "tools/call echo")
        ] * 2
    assert len({run["run"] for _, runs in done for run in runs}) == 100  # each call its own
    assert (outside["parent"], outside["session"]) == (None, None)  # nothing left current
    assert quick == [not recorded] * 101


def test_one_server_shared_by_threads_each_with_its_own_loop_never_mixes_their_runs() -> None:
    """The middleware (and its parsed runs) is shared by every connection, thread and loop."""
    server = agent_run_id.mcp.instrument_server(build_server())
    failures: list[str] = []

    async def calls() -> None:
        async with Client(server) as client:
            agent_run_id.mcp.instrument_client(client)
            for _ in range(10):
                with RunContext() as run:
                    result = await client.call_tool("echo_sync", {"n": 0})
                if json.loads(text_of(result))["parent"] != run.run_id.value:
                    failures.append(run.run_id.value)

    threads = [threading.Thread(target=asyncio.run, args=(calls(),)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
