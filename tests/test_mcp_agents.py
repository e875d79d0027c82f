"""The OpenAI Agents SDK calling MCP tools: ``tool_meta_resolver=agent_run_id.mcp.meta_resolver``.

A fake model (no network) asks for the MCP server's tool three times in one turn; the SDK calls
them over stdio (a real subprocess server) and over streamable HTTP (uvicorn on 127.0.0.1), and
each call runs as a child of the agent's run on the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._mcp_helpers import (
    MCP_MAJOR,
    Observed,
    build_server,
    observed,
    read_jsonl,
    stdio_command,
    uvicorn_app,
)

if MCP_MAJOR < 2:
    pytest.skip(
        "the main environment's test: mcp 1.x runs tests/test_mcp1.py", allow_module_level=True
    )

from agents import Agent, Runner
from agents.items import ModelResponse, TResponseStreamEvent
from agents.mcp import MCPServerStdio, MCPServerStreamableHttp
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

import agent_run_id.mcp
from agent_run_id import RunContext
from agent_run_id.asgi import RunIdMiddleware


class ToolCallingModel(Model):
    """A model that first calls ``echo`` three times at once, then answers with what came back."""

    def __init__(self) -> None:
        self.outputs: list[Any] = []

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        items = args[1] if len(args) > 1 else kwargs["input"]
        outputs = [
            item["output"]
            for item in items
            if isinstance(item, dict) and item.get("type") == "function_call_output"
        ]
        if not outputs:
            calls: list[Any] = [
                ResponseFunctionToolCall(
                    type="function_call",
                    call_id=f"call-{n}",
                    name="echo",
                    arguments=json.dumps({"n": n}),
                    id=f"fc-{n}",
                    status="completed",
                )
                for n in range(3)
            ]
            return ModelResponse(output=calls, usage=Usage(), response_id=None)
        self.outputs = outputs
        text = ResponseOutputText(type="output_text", text="done", annotations=[])
        message = ResponseOutputMessage(
            type="message", id="msg", role="assistant", status="completed", content=[text]
        )
        return ModelResponse(output=[message], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[TResponseStreamEvent]:
        raise NotImplementedError("the tests never stream")


@pytest.fixture
def seen(tmp_path: Path) -> Iterator[Observed]:
    with observed(tmp_path) as found:
        yield found


def runs_in(outputs: list[Any]) -> list[dict[str, Any]]:
    """The runs the tools saw, from their outputs as the model got them (input_text items)."""
    return [json.loads(output[0]["text"]) for output in outputs]


async def run_agent(server: Any) -> tuple[str, list[dict[str, Any]]]:
    model = ToolCallingModel()
    agent = Agent(name="assistant", model=model, mcp_servers=[server])
    async with server:
        with RunContext(name="assistant") as run:
            result = await Runner.run(agent, "call the tool")
    assert result.final_output == "done"
    return run.run_id.value, runs_in(model.outputs)


async def test_the_resolver_carries_the_run_over_stdio(tmp_path: Path, seen: Observed) -> None:
    server = MCPServerStdio(
        params=stdio_command(tmp_path),  # type: ignore[arg-type]
        tool_meta_resolver=agent_run_id.mcp.meta_resolver,
        client_session_timeout_seconds=30,
    )
    caller, runs = await run_agent(server)
    assert len({run["run"] for run in runs}) == 3
    assert {run["parent"] for run in runs} == {caller}
    lines = read_jsonl(tmp_path / "server.jsonl")
    assert {line["parent_run_id"] for line in lines if line["message"].startswith("tool echo")} == {
        caller
    }


async def test_the_resolver_carries_the_run_over_http(tmp_path: Path, seen: Observed) -> None:
    mcp_server = agent_run_id.mcp.instrument_server(build_server())
    with uvicorn_app(RunIdMiddleware(mcp_server.streamable_http_app())) as url:
        server = MCPServerStreamableHttp(
            params={"url": url}, tool_meta_resolver=agent_run_id.mcp.meta_resolver
        )
        caller, runs = await run_agent(server)
    assert {run["parent"] for run in runs} == {caller}
    for n in range(3):
        assert seen.records.run_of(f"tool echo {n}")["parent_run_id"] == caller
