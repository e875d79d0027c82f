"""The command and sessions: runs list --session, the session in show and tree, logs --session.

A session (conversation, thread) is several runs: one per turn, each with its child runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from pathlib import Path

import pytest

import agent_run_id._cli.logs as logs_module
import agent_run_id.logging
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
        "external",
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


# -- logs --session ---------------------------------------------------------------------------

# A run the LLM service minted as a child of the call it got (incoming="child"), and a line
# from a service too old to write session_id: found through the registry's runs.
SERVICE_CHILD = "d5555555-2c1a-4e8b-9f7d-5a4c3b2a1908"


def _line(second: int, run: str | None, message: str, **fields: object) -> str:
    record = {"timestamp": f"2026-01-01T00:00:{second:02d}Z", "message": message, **fields}
    if run is not None:
        record["run_id"] = run
    return json.dumps(record) + "\n"


def session_logs(folder: Path) -> list[str]:
    """Write the logs of three services; return the names of the files, agent's first."""
    agent, llm, tool = folder / "agent.jsonl", folder / "llm.jsonl", folder / "tool.log"
    agent.write_text(
        _line(1, TURN1, "turn 1 started", session_id="chat-7", root_run_id=TURN1)
        + _line(2, BOB, "bob's turn", session_id="chat-8")
        + _line(4, TURN1_TOOL, "turn 1 tool", session_id="chat-7", parent_run_id=TURN1)
        + _line(6, LONE, "no session", session_id="-")
        + _line(7, TURN2, "turn 2 started", session_id="chat-7")
        + _line(9, None, "a line that says its session only", session_id="chat-7")
        + _line(10, OTHER_CHAT, "another chat", session_id="chat-70")
        + _line(12, TURN2, "turn 2 answered", session_id="chat-7")
    )
    llm.write_text(
        _line(3, TURN1_TOOL, "completion for turn 1")  # no session_id: an older service
        + _line(8, SERVICE_CHILD, "completion for turn 2", parent_run_id=TURN2_TOOL)
        + _line(8, BOB, "completion for bob")
    )
    tool.write_text(
        f"2026-01-01T00:00:05Z INFO run={TURN1_TOOL} search\n"
        f"2026-01-01T00:00:11Z ERROR run={TURN2_TOOL} search failed\n"
        f"2026-01-01T00:00:11Z INFO run={BOB} search for chat-7 (named, not its session)\n"
    )
    return [str(agent), str(llm), str(tool)]


OTHER_CHAT = "e6666666-2c1a-4e8b-9f7d-5a4c3b2a1908"
WHOLE_SESSION = [
    "turn 1 started",
    "completion for turn 1",
    "turn 1 tool",
    "run=" + TURN1_TOOL + " search",
    "turn 2 started",
    "completion for turn 2",
    "a line that says its session only",
    "run=" + TURN2_TOOL + " search failed",
    "turn 2 answered",
]


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_logs_session_finds_every_line_of_every_run_of_the_session_in_time_order(
    db: Path, tmp_path: Path, cli: Runner
) -> None:
    files = session_logs(tmp_path)
    result = cli("logs", "--session", "chat-7", "--db", str(db), "--json", *files)
    assert result.code == 0, result.err
    found = [json.loads(line) for line in result.out.splitlines()]
    shown = [f["record"]["message"] if f["record"] else f["text"] for f in found]
    assert [text.split(" INFO ")[-1].split(" ERROR ")[-1] for text in shown] == WHOLE_SESSION
    assert [f["time"][17:19] for f in found] == [
        "01",
        "03",
        "04",
        "05",
        "07",
        "08",
        "09",
        "11",
        "12",
    ]
    assert [f["run_id"] for f in found] == [
        TURN1,
        TURN1_TOOL,
        TURN1_TOOL,
        TURN1_TOOL,
        TURN2,
        SERVICE_CHILD,
        None,  # the line carries the session, and no run
        TURN2_TOOL,
        TURN2,
    ]
    assert result.err == (
        f"agent-run-id: 9 lines of session chat-7 in 1.9 kB read from 3 files; "
        f"4 runs of it in {db}\n"
    )


def test_logs_session_prints_the_lines_as_logs_prints_a_runs(db: Path, tmp_path: Path) -> None:
    agent, llm, tool = session_logs(tmp_path)
    result = call("logs", "--session", "chat-7", "--db", str(db), agent, llm, tool)
    lines = result.out.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [
        agent,
        llm,
        agent,
        tool,
        agent,
        llm,
        agent,
        tool,
        agent,
    ]
    by_run = call("logs", TURN1, agent)
    assert lines[0] == f"{agent}:{by_run.out.splitlines()[0]}"


def test_logs_session_reads_the_registry_named_in_the_environment(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = session_logs(tmp_path)
    monkeypatch.setenv("AGENT_RUN_ID_DB", str(db))
    result = call("logs", "--session", "chat-7", *files)
    assert len(result.out.splitlines()) == 9
    assert f"4 runs of it in {db}" in result.err


def test_logs_session_without_a_registry_finds_the_lines_that_carry_it_and_their_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENT_RUN_ID_DB", raising=False)
    files = session_logs(tmp_path)
    result = call("logs", "--session", "chat-7", "--json", *files)
    assert result.code == 0
    found = [json.loads(line) for line in result.out.splitlines()]
    runs = [f["run_id"] for f in found]
    # Only the lines that carry the session: the lines without it (the older service's, the
    # text log's, the service's own child run's) need the registry to be known as the session's.
    assert runs == [TURN1, TURN1_TOOL, TURN2, None, TURN2]
    assert result.err.endswith(
        "; no registry (--db or $AGENT_RUN_ID_DB): found by the session_id of the lines\n"
    )


def test_logs_session_reads_standard_input(db: Path, tmp_path: Path) -> None:
    agent = Path(session_logs(tmp_path)[0])
    result = run_cli("logs", "--session", "chat-8", "--db", str(db), stdin=agent.read_bytes())
    assert result.code == 0
    assert [json.loads(line)["message"] for line in result.out.splitlines()] == ["bob's turn"]


def test_logs_session_finds_a_child_session_through_the_tree_of_its_parent(
    db: Path, tmp_path: Path
) -> None:
    """The registry's runs of a session come with their descendants, whatever their session."""
    log = tmp_path / "sub.jsonl"
    log.write_text(
        _line(1, BOB, "bob", session_id="chat-8")
        + _line(2, SUBTHREAD, "subagent", session_id="chat-8-sub", parent_run_id=BOB)
    )
    both = call("logs", "--session", "chat-8", "--db", str(db), str(log))
    assert [json.loads(line)["message"] for line in both.out.splitlines()] == ["bob", "subagent"]
    sub = call("logs", "--session", "chat-8-sub", "--db", str(db), str(log))
    assert [json.loads(line)["message"] for line in sub.out.splitlines()] == ["subagent"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["logs", "--session", "chat 7", "x.log"], "--session 'chat 7' is not a session id"),
        (["logs", "--session", "chat-7", "no-such.log"], "no such file: no-such.log"),
        (["logs", "--session", "chat-7", TURN1], "give a RUN or --session, not both"),
        (["logs", TURN1, "--db", "runs.db"], "--db goes with --session"),
        (["logs", "--session", "chat-7", "--db", "nope.db", "x.log"], "no registry database"),
    ],
)
def test_logs_session_mistakes_exit_2_with_a_clear_message(
    tmp_path: Path,
    argv: list[str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.log").write_text(_line(1, TURN1, "x", session_id="chat-7"))
    result = run_cli(*argv)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err
    in_process = call(*argv)  # argparse's own messages go to sys.stderr
    assert in_process.code == 2
    assert message in in_process.err + capsys.readouterr().err


def test_logs_session_with_a_file_that_is_not_a_registry_says_so(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    log = tmp_path / "x.log"
    log.write_text(_line(1, TURN1, "x", session_id="chat-7"))
    result = call("logs", "--session", "chat-7", "--db", str(junk), str(log))
    assert result.code == 2
    assert result.err.startswith(f"agent-run-id: cannot read {junk}: ")
    assert result.out == ""


def test_logs_session_with_no_line_of_it_is_an_error_after_the_summary(
    db: Path, tmp_path: Path
) -> None:
    files = session_logs(tmp_path)
    result = call("logs", "--session", "chat-9", "--db", str(db), *files)
    assert result.code == 2
    assert result.out == ""
    first, second = result.err.splitlines()
    assert sum(Path(name).stat().st_size for name in files) == 1885
    assert first.startswith("agent-run-id: 0 lines of session chat-9 in 1.9 kB read from 3")
    assert second.startswith("agent-run-id: no line of session chat-9 in ")


def test_logs_session_of_a_schema_1_registry_finds_the_lines_that_carry_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    schema_1_registry(path)
    files = session_logs(tmp_path)
    result = call("logs", "--session", "chat-7", "--db", str(path), *files)
    assert result.code == 0
    assert f"0 runs of it in {path}" in result.err


def test_logs_session_warns_when_the_session_has_more_runs_than_it_reads(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs_module, "MAX_SESSION_RUNS", 2)
    files = session_logs(tmp_path)
    result = call("logs", "--session", "chat-7", "--db", str(db), *files)
    assert result.code == 0
    assert f"session chat-7 has more than 2 runs in {db}: the lines of the latest" in result.err


def test_logs_help_says_what_session_finds(capsys: pytest.CaptureFixture[str]) -> None:
    assert call("logs", "--help").code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "With --session instead of a RUN, every line of every run of a session" in text
    assert "the JSON lines whose session_id field is SESSION, and the lines (text ones too)" in text
    assert "the registry that knows the session's runs (default: $AGENT_RUN_ID_DB)" in text


# -- many sessions at once: no line in another's ------------------------------------------------


def test_many_concurrent_sessions_in_tasks_and_threads_each_get_only_their_lines(
    tmp_path: Path,
) -> None:
    """40 asyncio tasks and 16 threads, each a session of two turns, log into one file at once."""
    log = tmp_path / "all.jsonl"
    handler = logging.FileHandler(log)
    handler.setFormatter(_JsonFields())
    logger = logging.getLogger("sessions-test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    agent_run_id.logging.install()
    registry = SQLiteRunRegistry(tmp_path / "runs.db")

    async def chat(session: str) -> None:
        for turn in range(2):
            async with RunContext(registry=registry, session_id=session):
                logger.info("%s turn %d", session, turn)
                await asyncio.sleep(0)
                async with RunContext(task="tool"):
                    logger.info("%s turn %d tool", session, turn)
                    await asyncio.sleep(0)

    def thread_chat(session: str) -> None:
        for turn in range(2):
            with RunContext(registry=registry, session_id=session):
                logger.info("%s turn %d", session, turn)
                with RunContext(task="tool"):
                    logger.info("%s turn %d tool", session, turn)

    async def everything() -> None:
        await asyncio.gather(*(chat(f"task-{n}") for n in range(40)))

    threads = [threading.Thread(target=thread_chat, args=(f"thread-{n}",)) for n in range(16)]
    for thread in threads:
        thread.start()
    asyncio.run(everything())
    for thread in threads:
        thread.join()
    registry.close()
    handler.close()
    logger.removeHandler(handler)
    sessions = [f"task-{n}" for n in range(40)] + [f"thread-{n}" for n in range(16)]
    for session in sessions:
        result = call("logs", "--session", session, "--db", str(tmp_path / "runs.db"), str(log))
        messages = [json.loads(line)["message"] for line in result.out.splitlines()]
        assert messages == [
            f"{session} turn 0",
            f"{session} turn 0 tool",
            f"{session} turn 1",
            f"{session} turn 1 tool",
        ], session
        assert "4 runs of it" in result.err


class _JsonFields(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": record.created,
                "message": record.getMessage(),
                "run_id": record.run_id,  # type: ignore[attr-defined]
                "parent_run_id": record.parent_run_id,  # type: ignore[attr-defined]
                "session_id": record.session_id,  # type: ignore[attr-defined]
            }
        )
