"""fastmcp (PrefectHQ's, 4.x on mcp 2.x): ``instrument_server`` on its server, its own client.

fastmcp's servers run on the SDK's low-level server (``server._mcp_server``), whose middleware
list takes ``RunIdServerMiddleware``; fastmcp's own ``Client`` takes ``meta=`` on its calls.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent_run_id.mcp
from agent_run_id import RunContext
from tests._mcp_helpers import MCP_MAJOR, Observed, observed, seen

if MCP_MAJOR < 2:
    pytest.skip("fastmcp 4.x runs on mcp 2.x", allow_module_level=True)

fastmcp = pytest.importorskip("fastmcp", reason="fastmcp is not installed: pip install fastmcp")


@pytest.fixture
def found(tmp_path: Path) -> Iterator[Observed]:
    with observed(tmp_path) as what:
        yield what


async def test_each_fastmcp_tool_call_runs_as_a_child_of_the_callers_run(found: Observed) -> None:
    server = fastmcp.FastMCP("tools")

    @server.tool
    def echo(n: int) -> str:
        return seen()

    @server.tool
    def fail() -> str:
        raise fastmcp.exceptions.ToolError("the tool failed")

    own = list(server.middleware)
    assert agent_run_id.mcp.instrument_server(server) is server
    agent_run_id.mcp.instrument_server(server)  # once is enough: nothing added
    assert server.middleware == own  # fastmcp's own list (its kind of middleware) left alone
    ours = agent_run_id.mcp.RunIdServerMiddleware
    assert sum(isinstance(layer, ours) for layer in server._mcp_server.middleware) == 1
    async with fastmcp.Client(server) as client:
        with RunContext() as caller:
            results = [
                await client.call_tool("echo", {"n": n}, meta=agent_run_id.mcp.meta())
                for n in range(3)
            ]
            failed = await client.call_tool(
                "fail", {}, meta=agent_run_id.mcp.meta(), raise_on_error=False
            )
    runs = [json.loads(result.content[0].text) for result in results]
    assert {run["parent"] for run in runs} == {caller.run_id.value}
    assert len({run["run"] for run in runs}) == 3
    assert {run["name"] for run in runs} == {"tools/call echo"}
    assert failed.is_error is True
    found.registry.flush()
    rows = {row.metadata["name"]: row for row in found.registry.children(caller.run_id)}
    assert rows["tools/call fail"].status == "error"
    assert rows["tools/call echo"].status == "ok"
