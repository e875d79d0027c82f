"""examples/mcp_stdio_agent.py runs end to end: the tool server's lines under the agent's run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests._mcp_helpers import MCP_MAJOR

if MCP_MAJOR < 2:
    pytest.skip("the example is written for mcp 2.x", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent


def test_logs_tree_shows_the_tool_servers_lines_under_the_failing_agent_run(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mcp_stdio_agent.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    header, lines = result.stdout.split("$ agent-run-id logs ")
    assert header.startswith("1 of 3 agent runs failed: run ")
    failed = header.split("run ")[-1].strip()
    found = [line.split(":", 1) for line in lines.splitlines()[1:]]
    events = [(name, json.loads(text)) for name, text in found]
    shown = [(name, event["message"]) for name, event in events]
    assert shown[0] == ("agent.jsonl", "agent started: trip to Reykjavik")
    assert shown[-1] == (
        "agent.jsonl",
        "tool weather failed: Error executing tool weather: weather backend timed out",
    )
    # The two tool calls ran at once: their lines in either order, each call's in its order.
    assert sorted(shown[1:-1]) == [
        ("tools.jsonl", "search 'flights to Reykjavik'"),
        ("tools.jsonl", "weather backend timed out for Reykjavik"),
        ("tools.jsonl", "weather in Reykjavik"),
    ]
    for name, event in events:
        if name == "agent.jsonl":
            assert event["run_id"] == failed
        else:  # each tool call a child run of the agent's, in another process
            assert event["parent_run_id"] == failed
            assert event["run_id"] != failed
    tools = [json.loads(line) for line in (tmp_path / "tools.jsonl").read_text().splitlines()]
    assert len(tools) == 7  # the other runs' tool lines are in the file, not in the output
