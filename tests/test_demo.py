"""examples/demo/run.py: three services, a burst of requests, and the failing run found whole."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests._transcripts import console_blocks, normalized

ROOT = Path(__file__).resolve().parent.parent


def _processes_naming(text: str) -> list[str]:
    """Return the command lines of the running processes that mention ``text``."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


@pytest.mark.demo
def test_the_demo_finds_the_failing_run_across_three_services(tmp_path: Path) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo" / "run.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert time.monotonic() - started < 30  # as the issue promises
    if os.path.isdir("/proc"):  # its three servers (given tmp_path as --log-dir) are gone
        assert _processes_naming(f"--log-dir {tmp_path}") == []
    out = result.stdout
    assert out.startswith("1 of 16 requests failed (8 users, a conversation of two turns each).\n")
    match = re.search(r"500 response says X-Run-Id: ([0-9a-f-]{36})", out)
    assert match is not None
    run = match.group(1)

    # The request's run: the user annotated after authentication, the session from the client.
    record = out.split(f"$ agent-run-id runs show {run[:8]} --db runs.db\n")[1]
    record = record.split("$ agent-run-id runs tree")[0]
    assert f"run_id:     {run}\n" in record
    assert "user_id:    carol\n" in record
    assert "session_id: chat-carol\n" in record
    assert "task:       -\n" in record
    assert "one level down" in record
    assert "status:     error\n" in record
    assert "error:      ToolFailed: search failed with 503\n" in record

    tree = out.split("$ agent-run-id runs tree")[1].split("$ agent-run-id logs")[0]
    rows = [line for line in tree.splitlines()[1:] if line.strip()]
    assert rows[0].startswith(f"{run}  error  ")
    assert "  -  user=carol  session=chat-carol  ToolFailed" in rows[0]
    assert re.match(r"  [0-9a-f-]{36}  error  .*weather in Reykjavik  user=carol  Tool", rows[1])
    assert re.match(r"    [0-9a-f-]{36}  ok  .*choose a tool$", rows[2])
    assert re.match(r"    [0-9a-f-]{36}  error  .*search 'weather in Reykjavik'  Tool", rows[3])
    assert rows[3].endswith("ToolFailed: search failed with 503")

    shown = f"$ agent-run-id logs {run[:8]} --tree --json agent.jsonl llm.jsonl tool.jsonl\n"
    lines = out.split(shown)[1].split("\n\n")[0].splitlines()[1:]
    services = [line.split()[1] for line in lines]
    assert services == ["agent", "llm", "agent", "tool", "tool", "agent"]
    assert "carol" in lines[0]
    assert all("Reykjavik" in line or "503" in line for line in lines)
    times = [line.split()[0] for line in lines]
    assert times == sorted(times)

    # Then the whole conversation: every run of the session, every line of every turn.
    listed = out.split("$ agent-run-id runs list --session chat-carol --db runs.db\n")[1]
    header, *runs = listed.split("\n\n")[0].splitlines()
    assert header.split()[5:7] == ["USER", "SESSION"]
    assert len(runs) == 8  # two turns of four runs: request, agent, LLM call, tool call
    assert all(row.split()[6] == "chat-carol" for row in runs)
    assert [row.split()[1] for row in runs].count("error") == 3
    assert [row.split()[5] for row in runs].count("carol") == 4  # the request's and agent's runs
    shown = (
        "$ agent-run-id logs --session chat-carol --db runs.db --json "
        "agent.jsonl llm.jsonl tool.jsonl\n"
    )
    lines = out.split(shown)[1].split("\n\n")[0].splitlines()[1:]
    assert [line.split()[1] for line in lines] == [
        *("agent", "llm", "agent", "tool", "agent"),  # the first turn, answered
        *("agent", "llm", "agent", "tool", "tool", "agent"),  # the second, failed
    ]
    assert "flights to Iceland" in lines[0]
    assert lines[4].endswith("agent answered carol")
    assert "weather in Reykjavik" in lines[5]
    times = [line.split()[0] for line in lines]
    assert times == sorted(times)
    conversation_runs = {line.split()[4] for line in lines}
    assert conversation_runs == {row.split()[0][:8] for row in runs if row.split()[-1] != "-"}
    for name in ("agent", "llm", "tool"):  # every line of the session's runs carries it
        for line in (tmp_path / f"{name}.jsonl").read_text().splitlines():
            logged = json.loads(line)
            assert (logged["session_id"] == "chat-carol") == (
                logged["run_id"][:8] in conversation_runs
            )

    db = sqlite3.connect(tmp_path / "runs.db")
    statuses = dict(db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall())
    db.close()
    assert statuses == {"ok": 61, "error": 3}  # 16 requests x 4 runs; nothing left running
    for name in ("agent", "llm", "tool"):
        assert (tmp_path / f"{name}.stderr").read_text() == ""

    # It says where its files stay, and the docs show what it printed (ids and times aside).
    where = f"{tmp_path.resolve()}/"
    assert out.endswith(
        f"\nThe logs and the registry stay in {where}: cd {where} and try the commands above.\n"
        f"Or browse them (the viewer extra), the failing run at "
        f"http://127.0.0.1:8765/runs/{run[:8]}:\n"
        "$ agent-run-id serve --db runs.db agent.jsonl llm.jsonl tool.jsonl\n"
    )
    as_make_demo_prints = out.replace(where, "demo-logs/")
    for document in (ROOT / "README.md", ROOT / "docs" / "registry.md"):
        (shown,) = [b for b in console_blocks(document) if b.startswith("1 of 16 requests")]
        assert normalized(shown) == normalized(as_make_demo_prints), document


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_run", ROOT / "examples" / "demo" / "run.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_service_that_hangs_before_printing_its_port_fails_the_demo_in_time() -> None:
    demo = _demo()
    hung = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True
    )
    try:
        started = time.monotonic()
        assert demo._first_line(hung, timeout=0.5) == ""
        assert time.monotonic() - started < 5
    finally:
        hung.kill()
        hung.wait()
        assert hung.stdout is not None
        hung.stdout.close()


def test_a_burst_where_nothing_fails_ends_the_demo_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = _demo()

    @contextmanager
    def service(name: str, folder: Path, *options: str) -> Iterator[str]:
        yield "http://127.0.0.1:1"

    async def burst(agent: str) -> list[httpx.Response]:
        return [httpx.Response(200)] * 8

    monkeypatch.setattr(demo, "service", service)
    monkeypatch.setattr(demo, "burst", burst)
    with pytest.raises(SystemExit, match="no request failed: the tool should fail for Reykjavik"):
        demo.main(tmp_path)
    assert capsys.readouterr().out == (
        "0 of 8 requests failed (8 users, a conversation of two turns each).\n"
    )


def test_the_demo_keeps_its_files_in_a_folder_git_ignores_and_replaces_only_its_own(
    tmp_path: Path,
) -> None:
    demo = _demo()
    assert demo.FOLDER == ROOT / "demo-logs"
    assert "/demo-logs/" in (ROOT / ".gitignore").read_text().splitlines()
    own = ["agent.jsonl", "llm.stderr", "tool.jsonl", "runs.db", "runs.db-wal", "runs.db-shm"]
    for name in [*own, "notes.txt"]:
        (tmp_path / name).write_text("from an earlier run")
    demo.fresh(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]
    demo.fresh(tmp_path / "new" / "folder")  # made when missing
    assert (tmp_path / "new" / "folder").is_dir()
