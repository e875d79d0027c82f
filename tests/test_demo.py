"""examples/demo/run.py: three services, a burst of requests, and the failing run found whole."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.demo
def test_the_demo_finds_the_failing_run_across_three_services(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo" / "run.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = result.stdout
    assert out.startswith("1 of 8 runs failed.\n")
    match = re.search(r"500 response says X-Run-Id: ([0-9a-f-]{36})", out)
    assert match is not None
    run = match.group(1)

    record = out.split("$ agent-run-id runs show")[1].split("$ agent-run-id runs tree")[0]
    assert f"run_id:     {run}\n" in record
    assert "status:     error\n" in record
    assert "error:      ToolFailed: search failed with 503\n" in record

    tree = out.split("$ agent-run-id runs tree")[1].split("$ agent-run-id logs")[0]
    rows = [line for line in tree.splitlines()[1:] if line.strip()]
    assert rows[0].startswith(f"{run}  error  ")
    assert re.match(r"  [0-9a-f-]{36}  error  .*weather in Reykjavik  user=carol", rows[1])
    assert re.match(r"    [0-9a-f-]{36}  ok  .*choose a tool", rows[2])
    assert re.match(r"    [0-9a-f-]{36}  error  .*search 'weather in Reykjavik'", rows[3])
    assert rows[3].endswith("ToolFailed: search failed with 503")

    lines = out.split("$ agent-run-id logs")[1].splitlines()[1:]
    services = [line.split()[1] for line in lines]
    assert services == ["agent", "llm", "agent", "tool", "tool", "agent"]
    assert "carol" in lines[0]
    assert all("Reykjavik" in line or "503" in line for line in lines)
    times = [line.split()[0] for line in lines]
    assert times == sorted(times)

    db = sqlite3.connect(tmp_path / "runs.db")
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    db.close()
    assert statuses == {"ok": 29, "error": 3}  # 8 requests x 4 runs; nothing left running
    for name in ("agent", "llm", "tool"):
        assert (tmp_path / f"{name}.stderr").read_text() == ""
