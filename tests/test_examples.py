"""The examples run end to end and tell the story the README promises."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_basic_agent_finds_every_line_of_the_failing_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "basic_agent.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert "1 of 5 runs failed." in out
    match = re.search(r"The error report names run ([0-9a-f-]{36})\.", out)
    assert match is not None
    failing = match.group(1)

    events = [json.loads(line) for line in (tmp_path / "agent.jsonl").read_text().splitlines()]
    runs = {event["run_id"] for event in events}
    assert len(runs) == 5  # every line, from structlog and from stdlib logging, has its run
    of_failing = [event for event in events if event["run_id"] == failing]
    assert [event["event"] for event in of_failing] == [
        "agent_started",
        "llm_response",
        "tool_call",
        "backend timed out after 10 ms",
        "agent_failed",
    ]
    assert of_failing[0]["user_id"] == "carol"
    assert of_failing[2]["tool_run_id"] == failing
    printed = out.split("Every log line of that run:")[1]
    assert len(re.findall(r"^  \d\d:\d\d:\d\d\.\d{3} ", printed, re.MULTILINE)) == len(of_failing)
    assert "-> TimeoutError: search backend did not answer" in printed
    for run_id in runs - {failing}:
        assert run_id not in printed


def test_the_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quick_start = re.findall(r"```python\n(.*?)```", readme, re.DOTALL)[0]
    script = tmp_path / "quick_start.py"
    script.write_text(quick_start, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    printed = json.loads(result.stdout.replace("'", '"'))
    assert printed["run_id"] == printed["sent"]
    assert f" {printed['run_id']} agent agent started" in result.stderr
