"""examples/registry_agent.py runs end to end: the registry and the command find the failure."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_registry_example_finds_the_failing_run_its_tree_and_its_lines(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "registry_agent.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert out.startswith("1 of 3 runs failed.")
    listed, tree, lines = out.split("$ agent-run-id ")[1:]
    assert len(re.findall(r"^[0-9a-f-]{36}  error ", listed, re.MULTILINE)) == 2
    root, child = re.findall(r"^ *([0-9a-f-]{36})  error ", tree, re.MULTILINE)
    assert "TimeoutError: search backend did not answer" in tree
    events = [json.loads(line) for line in lines.splitlines()[1:]]
    assert [e["message"] for e in events] == [
        "agent started for bob",
        "tool call: search 'weather in Reykjavik'",
        "search backend timed out",
        "agent failed: tool call failed",
    ]
    assert [e["run_id"] for e in events] == [root, child, child, root]
    written = (tmp_path / "agent.jsonl").read_text().splitlines()
    assert len(written) == 10  # the other runs' lines are in the file, not in the output
