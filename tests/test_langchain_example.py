"""examples/langgraph_agent.py runs offline end to end: LangChain's ids lead to our runs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_langgraph_example_finds_the_failing_tool_by_its_langchain_id(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "langgraph_agent.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert out.startswith("3 agent runs; LangChain's root run ids are our run ids: True\n")
    match = re.search(r"has the LangChain \(LangSmith\) run id ([0-9a-f-]{36})\n", out)
    assert match is not None
    langchain_id = match.group(1)
    shown, tree, lines = out.split("$ agent-run-id ")[1:]

    assert f"external:   langchain_run={langchain_id}\n" in shown
    assert "status:     error\n" in shown
    assert "error:      TimeoutError: hotel API timed out for Reykjavik\n" in shown
    assert "session_id: chat-bob\n" in shown
    tool = re.search(r"^run_id:     ([0-9a-f-]{36})$", shown, re.MULTILINE)
    run = re.search(r"^root_id:    ([0-9a-f-]{36})$", shown, re.MULTILINE)
    assert tool is not None
    assert run is not None
    assert run.group(1)[14] == "7"  # a UUIDv7, as LangSmith wants

    rows = re.findall(r"^( *)([0-9a-f-]{36})  (ok|error) ", tree, re.MULTILINE)
    assert [(len(indent), status) for indent, _, status in rows] == [
        (0, "ok"),  # the agent answered: the tool's failure went to the model as a message
        (2, "ok"),  # the model node, its model call and its routing
        (4, "ok"),
        (4, "ok"),
        (2, "ok"),  # the tools node and its two tools, in either order
        (4, "error" if rows[5][1] == tool.group(1) else "ok"),
        (4, "error" if rows[6][1] == tool.group(1) else "ok"),
        (2, "ok"),
        (4, "ok"),
        (4, "ok"),
    ]
    assert rows[0][1] == run.group(1)

    events = [json.loads(line) for line in lines.splitlines()[1:]]
    by_message = {e["message"]: e for e in events}
    assert len(events) == 5
    assert by_message["asking the hotel API about Reykjavik"]["run_id"] == tool.group(1)
    assert by_message["hotel API timed out"]["run_id"] == tool.group(1)
    searching = by_message["searching the web for 'weather in Reykjavik'"]
    assert searching["run_id"] not in (tool.group(1), run.group(1))
    assert searching["parent_run_id"] == by_message["hotel API timed out"]["parent_run_id"]
    assert by_message["agent answered: Plan for Reykjavik"]["run_id"] == run.group(1)
    assert {e["root_run_id"] for e in events} == {run.group(1)}
    assert {e["session_id"] for e in events} == {"chat-bob"}
