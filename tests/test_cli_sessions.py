"""The command and sessions: runs list --session, the session in show and tree, logs --session.

A session (conversation, thread) is several runs: one per turn, each with its child runs.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from agent_run_id import RunContext, RunId
from agent_run_id.registry import SCHEMA_VERSION, SQLiteRunRegistry
from agent_run_id.registry._schema import MIGRATIONS
from tests._cli_helpers import Runner, call, run_cli

# Two turns of alice's chat, each a run with a child; a run of bob's; a run with no session.
TURN1 = "a1111111-2c1a-4e8b-9f7d-5a4c3b2a1908"
TURN1_TOOL = "a1111112-2c1a-4e8b-9f7d-5a4c3b2a1908"
TURN2 = "a2222222-2c1a-4e8b-9f7d-5a4c3b2a1908"
TURN2_TOOL = "a2222223-2c1a-4e8b-9f7d-5a4c3b2a1908"
BOB = "b3333333-2c1a-4e8b-9f7d-5a4c3b2a1908"
LONE = "c4444444-2c1a-4e8b-9f7d-5a4c3b2a1908"
# A child of bob's run in a session of its own (a subagent given its own thread).
SUBTHREAD = "b3333334-2c1a-4e8b-9f7d-5a4c3b2a1908"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    registry = SQLiteRunRegistry(path)
    for turn, tool in ((TURN1, TURN1_TOOL), (TURN2, TURN2_TOOL)):
        with (
            RunContext(
                RunId(turn), registry=registry, session_id="chat-7", user_id="alice", task="ask"
            ),
            RunContext(RunId(tool, parent=turn), task="search"),
        ):
            pass
    with (
        RunContext(RunId(BOB), registry=registry, session_id="chat-8", user_id="bob"),
        RunContext(RunId(SUBTHREAD, parent=BOB), session_id="chat-8-sub"),
    ):
        pass
    with RunContext(RunId(LONE), registry=registry, user_id="alice"):
        pass
    registry.close()
    return path


def _listed(*argv: str) -> list[str]:
    result = call("runs", "list", *argv)
    assert result.code == 0, result.err
    return [line.split()[0] for line in result.out.splitlines()[1:]]


def test_runs_list_session_gives_every_turn_and_its_child_runs(db: Path) -> None:
    assert _listed("--db", str(db), "--session", "chat-7") == [
        TURN2_TOOL,
        TURN2,
        TURN1_TOOL,
        TURN1,
    ]
    assert _listed("--db", str(db), "--session", "chat-8") == [BOB]
    assert _listed("--db", str(db), "--session", "chat-9") == []


def test_runs_list_session_and_user_together_keep_the_runs_of_both(db: Path) -> None:
    # Child runs do not inherit the user: only the turns themselves are alice's.
    assert _listed("--db", str(db), "--session", "chat-7", "--user", "alice") == [TURN2, TURN1]
    assert _listed("--db", str(db), "--user", "alice") == [LONE, TURN2, TURN1]
    assert _listed("--db", str(db), "--session", "chat-8", "--user", "alice") == []


def test_runs_list_shows_a_session_column(db: Path) -> None:
    result = call("runs", "list", "--db", str(db), "--session", "chat-7", "--user", "alice")
    header, *rows = result.out.splitlines()
    assert header.split() == [
        "RUN",
        "STATUS",
        "STARTED",
        "(UTC)",
        "DURATION",
        "USER",
        "SESSION",
        "TASK",
    ]
    assert [row.split()[-3:] for row in rows] == [["alice", "chat-7", "ask"]] * 2
    lone = call("runs", "list", "--db", str(db), "--limit", "1").out.splitlines()[1]
    assert lone.split()[-3:] == ["alice", "-", "-"]


def test_runs_list_json_gives_each_runs_session(db: Path) -> None:
    result = call("runs", "list", "--db", str(db), "--session", "chat-7", "--json")
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [row["session_id"] for row in rows] == ["chat-7"] * 4


@pytest.mark.parametrize(
    "bad",
    ["chat 7", "chat,7", "x" * 200, "chat\r7", "", "caf\u00e9"],
    ids=["space", "comma", "200 chars", "CR", "empty", "non-ASCII"],
)
def test_runs_list_refuses_what_is_not_a_session_id_naming_the_option(db: Path, bad: str) -> None:
    result = call("runs", "list", "--db", str(db), "--session", bad)
    assert result.code == 2
    assert result.err.startswith("agent-run-id: --session ")
    assert "is not a session id: pass 1 to 128 printable ASCII characters" in result.err
    assert "\r" not in result.err
    assert len(result.err) < 400


def test_runs_show_prints_the_session_in_its_place(db: Path) -> None:
    result = call("runs", "show", TURN1_TOOL, "--db", str(db))
    names = [line.split(":", 1)[0] for line in result.out.splitlines()]
    assert names == [
        "run_id",
        "parent_id",
        "root_id",
        "status",
        "started_at",
        "ended_at",
        "duration",
        "user_id",
        "session_id",
        "task",
        "error",
        "host",
        "pid",
        "metadata",
    ]
    assert "session_id: chat-7\n" in result.out  # inherited from its turn
    assert "user_id:    -\n" in result.out  # the user is not
    assert "session_id: -\n" in call("runs", "show", LONE, "--db", str(db)).out


def test_runs_tree_shows_the_session_where_it_starts_or_changes(db: Path) -> None:
    lines = call("runs", "tree", TURN1, "--db", str(db)).out.splitlines()
    assert lines[0].startswith(TURN1)
    assert lines[0].endswith("  ask  user=alice  session=chat-7")
    assert lines[1].startswith(f"  {TURN1_TOOL}  ok  ")
    assert lines[1].endswith("  search")  # the same session as its parent's: not repeated
    bob, sub = call("runs", "tree", BOB, "--db", str(db)).out.splitlines()
    assert bob.endswith("  -  user=bob  session=chat-8")
    assert sub.endswith("  -  session=chat-8-sub")
    (lone,) = call("runs", "tree", LONE, "--db", str(db)).out.splitlines()
    assert "session=" not in lone


# -- a registry written before sessions (schema 1) ----------------------------------------------


def schema_1_registry(path: Path) -> None:
    """Write a registry as the released version did: schema 1, no session column, two runs."""
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    for run_id, parent, status in ((TURN1, None, "ok"), (TURN1_TOOL, TURN1, "error")):
        conn.execute(
            "INSERT INTO runs (run_id, parent_id, root_id, status, started_at, ended_at, "
            "duration, user_id, task, error, host, pid, metadata) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                parent,
                TURN1,
                status,
                1_764_000_000_000_000 + (parent is not None),
                1_764_000_001_000_000,
                1.0,
                "alice" if parent is None else None,
                "plan a trip",
                None if status == "ok" else "TimeoutError: slow",
                "old-host",
                4242,
                '{"name": "agent"}',
            ),
        )
    conn.commit()
    conn.close()


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_the_command_reads_a_schema_1_registry_without_changing_it(
    tmp_path: Path, cli: Runner
) -> None:
    path = tmp_path / "old.db"
    schema_1_registry(path)
    before = path.read_bytes()
    listed = cli("runs", "list", "--db", str(path))
    assert listed.code == 0, listed.err
    assert [line.split()[0] for line in listed.out.splitlines()[1:]] == [TURN1_TOOL, TURN1]
    shown = cli("runs", "show", TURN1, "--db", str(path))
    assert "session_id: -\n" in shown.out
    assert "user_id:    alice\n" in shown.out
    tree = cli("runs", "tree", TURN1, "--db", str(path)).out.splitlines()
    assert [line.split()[0] for line in tree] == [TURN1, TURN1_TOOL]
    assert cli("runs", "list", "--db", str(path), "--session", "chat-7").out.count("\n") == 1
    assert path.read_bytes() == before  # not migrated: the command never writes
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    conn.close()


def test_a_schema_1_registry_is_upgraded_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    schema_1_registry(path)
    registry = SQLiteRunRegistry(path)
    try:
        old = registry.get(TURN1)
        assert (old.user_id, old.task, old.host, old.pid) == (
            "alice",
            "plan a trip",
            "old-host",
            4242,
        )
        assert old.session_id is None
        assert old.metadata == {"name": "agent"}
        assert [r.run_id for r in registry.tree(TURN1)] == [TURN1, TURN1_TOOL]
        assert registry.get(TURN1_TOOL).error == "TimeoutError: slow"
        # and the upgraded file takes the runs of today, sessions and all
        with RunContext(RunId(TURN2), registry=registry, session_id="chat-7"):
            pass
        assert [r.run_id for r in registry.find(session_id="chat-7")] == [TURN2]
    finally:
        registry.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone() == (3,)
    conn.close()
    assert call("runs", "list", "--db", str(path), "--session", "chat-7").out.count("\n") == 2
