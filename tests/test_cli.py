"""The agent-run-id command end to end: new, logs (hostile logs too) and runs."""

from __future__ import annotations

import gzip
import json
import os
import runpy
import socket
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

import agent_run_id._cli.logs as logs_module
from agent_run_id import RunContext, RunId
from agent_run_id._cli._lines import MAX_LINE
from agent_run_id.registry import SQLiteRunRegistry
from tests._cli_helpers import (
    CHILD,
    GRANDCHILD,
    OTHER,
    RUN,
    TWIN,
    Runner,
    call,
    jline,
    run_cli,
    write_logs,
)

# -- new --------------------------------------------------------------------------------------


def test_new_prints_a_fresh_v4_run_id_for_shell_scripts() -> None:
    result = run_cli("new")
    assert result.code == 0
    assert uuid.UUID(result.out.strip()).version == 4
    assert result.out.strip() != run_cli("new").out.strip()


def test_new_can_print_a_v7_id() -> None:
    result = call("new", "--uuid-version", "7")
    assert RunId.from_string(result.out.strip()).created_at is not None


def test_version_and_usage_mistakes_exit_2_without_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert call("--version").code == 0
    assert "agent-run-id 0." in capsys.readouterr().out
    assert call().code == 2
    assert call("frobnicate").code == 2
    assert call("new", "--bogus").code == 2
    assert call("logs", RUN, "--bogus", "x.log").code == 2
    assert "Traceback" not in capsys.readouterr().err


# -- logs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_logs_prints_the_runs_lines_from_several_files_in_time_order(
    tmp_path: Path, cli: Runner
) -> None:
    api, tool = write_logs(tmp_path)
    result = cli("logs", RUN, str(api), str(tool))
    assert result.code == 0
    lines = result.out.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [str(api), str(tool), str(api)]
    assert '"message": "start"' in lines[0]
    assert "tool call" in lines[1]
    assert '"message": "end"' in lines[2]
    assert "3 lines of run" in result.err
    assert "from 2 files" in result.err


def test_a_json_line_of_another_run_that_mentions_the_id_is_not_the_runs(
    tmp_path: Path,
) -> None:
    api, _ = write_logs(tmp_path)
    assert "mentions" not in call("logs", RUN, str(api)).out


def test_logs_tree_adds_child_and_grandchild_lines(tmp_path: Path) -> None:
    api, tool = write_logs(tmp_path)
    result = call("logs", RUN, "--tree", str(api), str(tool))
    messages = [line.rsplit("message", 1)[-1] for line in result.out.splitlines()]
    assert len(messages) == 5
    assert "tool call" in messages[1]
    assert "grandchild" in messages[2]
    assert '"child"' in messages[3]
    assert "unrelated" not in result.out
    assert "mentions" not in result.out


def test_logs_tree_of_a_child_finds_its_descendants_by_parent(tmp_path: Path) -> None:
    """In a JSON-lines log a text line is found by the run's id or its root's, as JSON lines are.

    A text line naming a descendant alone holds neither: it is not found.
    """
    log = tmp_path / "a.log"
    log.write_text(
        jline(run_id=CHILD, parent_run_id=RUN, root_run_id=RUN, message="child")
        + jline(run_id=GRANDCHILD, parent_run_id=CHILD, root_run_id=RUN, message="grand")
        + jline(run_id=OTHER, parent_run_id=RUN, root_run_id=RUN, message="sibling")
        + f"text line of {GRANDCHILD} alone\n"
        + f"text line of {CHILD} the run\n"
        + f"text line of {GRANDCHILD} in root {RUN}\n"
        + f"text line of {OTHER} in root {RUN}\n"
    )
    result = call("logs", CHILD, "--tree", str(log))
    assert "child" in result.out
    assert "grand" in result.out
    assert "sibling" not in result.out
    texts = [line for line in result.out.splitlines() if line.startswith("text line")]
    assert texts == [f"text line of {CHILD} the run", f"text line of {GRANDCHILD} in root {RUN}"]


def _forwarded_only(tmp_path: Path) -> Path:
    """A JSON-lines log where a service that forwards only X-Run-Id logs a grandchild."""
    log = tmp_path / "a.log"
    log.write_text(
        jline(run_id=RUN, message="root")
        + jline(run_id=CHILD, parent_run_id=RUN, message="child")
        + jline(run_id=GRANDCHILD, parent_run_id=CHILD, message="grand")
        + jline(run_id=OTHER, parent_run_id=TWIN, message="stranger")
        + f"text line of {GRANDCHILD} alone\n"
    )
    return log


def test_logs_tree_finds_by_the_run_or_root_id_alone_by_default(tmp_path: Path) -> None:
    """The fast rule: a line holding neither the run's id nor its root's is not read."""
    result = call("logs", RUN, "--tree", str(_forwarded_only(tmp_path)))
    assert result.code == 0
    assert [json.loads(line)["message"] for line in result.out.splitlines()] == ["root", "child"]


def test_logs_tree_every_line_finds_a_descendant_without_root_by_its_parent(
    tmp_path: Path,
) -> None:
    log = _forwarded_only(tmp_path)
    result = call("logs", RUN, "--tree", "--every-line", str(log))
    assert result.code == 0
    lines = result.out.splitlines()
    assert [json.loads(line)["message"] for line in lines[:3]] == ["root", "child", "grand"]
    assert lines[3:] == [f"text line of {GRANDCHILD} alone"]
    assert "stranger" not in result.out
    assert "4 lines of run" in result.err
    alone = call("logs", RUN, "--every-line", str(log))  # without --tree: the run's own lines
    assert [json.loads(line)["message"] for line in alone.out.splitlines()] == ["root"]


def test_logs_json_gives_one_object_per_line(tmp_path: Path) -> None:
    api, tool = write_logs(tmp_path)
    result = call("logs", RUN[:8], "--json", str(api), str(tool))
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [row["file"] for row in rows] == [str(api), str(tool), str(api)]
    assert rows[0]["record"]["message"] == "start"
    assert rows[0]["text"] is None
    assert rows[0]["time"] == "2025-01-01T00:00:01+00:00"
    assert rows[1]["record"] is None
    assert rows[1]["text"].endswith("tool call")
    assert rows[1]["run_id"] == RUN
    assert rows[2]["line"] == 3


def test_logs_reads_standard_input(tmp_path: Path) -> None:
    api, _ = write_logs(tmp_path)
    result = run_cli("logs", RUN, stdin=api.read_bytes())
    assert result.code == 0
    assert len(result.out.splitlines()) == 2
    assert not result.out.startswith("(stdin)")
    assert call("logs", RUN, "-", stdin=api.read_bytes()).out == result.out


def test_logs_reads_gzip_from_standard_input(tmp_path: Path) -> None:
    _, tool = write_logs(tmp_path)
    result = call("logs", CHILD, stdin=tool.read_bytes())
    assert len(result.out.splitlines()) == 2


def test_lines_without_a_time_keep_their_place_in_their_file(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    a.write_text(f"2025-01-01T00:00:01 a1 {RUN}\nno time a2 {RUN}\n2025-01-01T00:00:09 a3 {RUN}\n")
    b.write_text(f"[2025-01-01T00:00:05.5Z] b1 {RUN}\nno time b2 {RUN}\n")
    result = call("logs", RUN, str(a), str(b))
    order = [line.split()[-2] for line in result.out.splitlines()]
    assert order == ["a1", "a2", "b1", "b2", "a3"]


def test_times_in_several_forms_merge_in_order(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    a.write_text(
        jline(ts=1735689600123, run_id=RUN, n="a1")  # milliseconds
        + jline(record={"time": {"timestamp": 1735689603.0}, "extra": {"run_id": RUN}}, n="a2")
        + jline(asctime="2025-01-01T00:00:05-00:30", run_id=RUN, n="a3")
    )
    b.write_text(
        jline(created="2025-01-01 00:00:01.5+0000", run_id=RUN, n="b1")
        + jline(time=True, run_id=RUN, n="b2")  # not a time: keeps its place
        + jline(time="2025-13-45T00:00:00", run_id=RUN, n="b3")  # no such day
        + jline(time=[1], run_id=RUN, n="b4")
    )
    result = call("logs", RUN, "--json", str(a), str(b))
    assert [json.loads(line)["record"]["n"] for line in result.out.splitlines()] == [
        "a1",
        "b1",
        "b2",
        "b3",
        "b4",
        "a2",
        "a3",
    ]


def test_unix_times_in_ns_us_ms_and_s_merge_in_order(tmp_path: Path) -> None:
    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    a.write_text(
        jline(ts=1735689600_000000000, run_id=RUN, n="a1")  # zap, zerolog: nanoseconds
        + jline(ts=1735689602_000000, run_id=RUN, n="a2")  # microseconds
    )
    b.write_text(
        jline(ts=1735689601_000, run_id=RUN, n="b1") + jline(ts=1735689603, run_id=RUN, n="b2")
    )
    result = call("logs", RUN, "--json", str(a), str(b))
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [row["record"]["n"] for row in rows] == ["a1", "b1", "a2", "b2"]
    assert rows[0]["time"] == "2025-01-01T00:00:00+00:00"
    assert rows[3]["time"] == "2025-01-01T00:00:03+00:00"


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_times_no_datetime_can_hold_are_no_time_and_never_crash(
    tmp_path: Path, cli: Runner
) -> None:
    a = tmp_path / "a.log"
    b = tmp_path / "b.log"
    a.write_bytes(
        jline(ts=1735689601, run_id=RUN, n="a1").encode()
        + b'{"ts": NaN, "run_id": "'
        + RUN.encode()
        + b'", "n": "nan"}\n'
        + b'{"ts": Infinity, "run_id": "'
        + RUN.encode()
        + b'", "n": "inf"}\n'
        + b'{"ts": 1e400, "run_id": "'
        + RUN.encode()
        + b'", "n": "1e400"}\n'
        + b'{"ts": 1'
        + b"0" * 400
        + b', "run_id": "'
        + RUN.encode()
        + b'", "n": "bigint"}\n'
        + jline(ts=-1e20, run_id=RUN, n="negative").encode()
        + jline(ts=1e30, run_id=RUN, n="far").encode()
        + jline(time="0001-01-01T00:00:00+01:00", run_id=RUN, n="year0").encode()
        + jline(time="9999-12-31T23:59:59-01:00", run_id=RUN, n="year10000").encode()
        + f"0001-01-01T00:00:00+01:00 text {RUN}\n".encode()
        + jline(ts=1735689603, run_id=RUN, n="a3").encode()
    )
    b.write_text(jline(ts=1735689602, run_id=RUN, n="b1"))
    result = cli("logs", RUN, "--json", str(a), str(b))
    assert result.code == 0
    assert "Traceback" not in result.err
    rows = [json.loads(line) for line in result.out.splitlines()]
    names = [(row["record"] or {"n": "text"})["n"] for row in rows]
    # Each line without a time stays after the line before it: b1 merges after all of them.
    assert names == [
        "a1", "nan", "inf", "1e400", "bigint", "negative", "far", "year0", "year10000", "text",
        "b1", "a3",
    ]  # fmt: skip
    assert [row["time"] for row in rows[1:10]] == [None] * 9
    assert rows[0]["time"] == "2025-01-01T00:00:01+00:00"


def test_a_time_on_the_edge_of_what_a_datetime_holds_is_written_or_left_out() -> None:
    from agent_run_id._cli._lines import iso

    assert iso(-5.0) == "1969-12-31T23:59:55+00:00"
    assert iso(1e300) is None


def test_a_prefix_of_two_runs_is_ambiguous_and_lists_them(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(jline(run_id=RUN) + jline(run_id=TWIN))
    result = run_cli("logs", RUN[:8], str(log))
    assert result.code == 2
    assert RUN in result.err
    assert TWIN in result.err
    assert result.out == ""
    assert "Traceback" not in result.err
    assert call("logs", RUN[:14], str(log)).code == 0


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_an_ambiguous_prefix_on_standard_input_prints_nothing(cli: Runner) -> None:
    """cat s1.log k.log | agent-run-id logs 0b6f5d3e: the first run's lines are not shown."""
    stdin = (jline(run_id=RUN, n="first") * 3 + jline(run_id=TWIN, n="twin")).encode()
    result = cli("logs", RUN[:8], stdin=stdin)
    assert result.code == 2
    assert result.out == ""
    assert "matches several runs" in result.err
    assert "; give more characters\n" in result.err  # the same words as runs show
    assert RUN in result.err
    assert TWIN in result.err


def test_a_prefix_on_standard_input_is_resolved_then_its_lines_printed(tmp_path: Path) -> None:
    api, tool = write_logs(tmp_path)
    result = run_cli("logs", RUN[:8], stdin=api.read_bytes())
    assert result.code == 0
    assert [json.loads(line)["message"] for line in result.out.splitlines()] == ["start", "end"]
    gzipped = call("logs", CHILD[:8], "-", str(api), stdin=tool.read_bytes())
    assert gzipped.code == 0
    assert gzipped.out.count("(stdin):") == 2


def test_a_prefix_with_too_many_runs_stops_the_first_pass_at_once(tmp_path: Path) -> None:
    """Once the candidates are too many to list, the next files are not read."""
    many = tmp_path / "many.log"
    many.write_text(
        "".join(jline(run_id=f"0b6f5d3e-{i:04x}-4e8b-9f7d-5a4c3b2a1908") for i in range(11))
    )
    broken = tmp_path / "broken.log.gz"
    broken.write_bytes(gzip.compress(jline(run_id=RUN).encode() * 100)[:30])
    result = call("logs", RUN[:8], str(many), str(broken))
    assert result.code == 2
    assert "matches several runs" in result.err


def test_a_prefix_of_no_run_is_an_error(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(jline(run_id=RUN))
    assert f"no run id in {log} starts with 'ffffffff'" in call("logs", "ffffffff", str(log)).err
    result = call("logs", "ffffffff", stdin=log.read_bytes())
    assert result.code == 2
    assert "no run id in standard input starts with 'ffffffff'" in result.err


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_a_full_id_with_no_lines_is_an_unknown_run_exit_2(tmp_path: Path, cli: Runner) -> None:
    log = tmp_path / "a.log"
    log.write_text(jline(run_id=OTHER))
    result = cli("logs", RUN, str(log))
    assert (result.code, result.out) == (2, "")
    read = log.stat().st_size  # one line, under a kilobyte
    assert f"agent-run-id: 0 lines of run {RUN} in {read} B read\n" in result.err
    assert result.err.endswith(f"agent-run-id: no line of run {RUN} in {log}\n")
    many = [str(log)] * 5
    assert f"in {log}, {log}, {log} and 2 more files\n" in call("logs", RUN, "--tree", *many).err
    assert f"in {log}, {log}, {log} and 1 more file\n" in call("logs", RUN, *many[:4]).err
    assert "in standard input\n" in call("logs", RUN, stdin=log.read_bytes()).err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["logs", RUN, "missing.log"], "no such file: missing.log"),
        (["logs", "0b6f"], "at least its first 8 characters"),
        (["logs", "zzzzzzzzzz"], "neither a run id nor a prefix"),
    ],
)
def test_logs_mistakes_exit_2_with_a_clear_message(argv: list[str], message: str) -> None:
    result = run_cli(*argv)
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_a_folder_or_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    assert "is a folder" in call("logs", RUN, str(tmp_path)).err
    secret = tmp_path / "secret.log"
    secret.write_text("x\n")
    secret.chmod(0)
    try:
        result = call("logs", RUN, str(secret))
        if os.geteuid() != 0:  # root reads anything
            assert "permission denied" in result.err
    finally:
        secret.chmod(0o600)


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_hostile_lines_are_skipped_counted_and_never_crash(tmp_path: Path, cli: Runner) -> None:
    log = tmp_path / "hostile.log"
    with log.open("wb") as f:
        f.write(jline(timestamp="2025-01-01T00:00:01Z", run_id=RUN, message="first").encode())
        f.write(b"\xff\xfe\x00 invalid utf-8 " + RUN.encode() + b"\n")
        f.write(b'{"run_id": "' + RUN.encode() + b'", "message": "latin-1 caf\xe9"}\n')
        f.write(b"\x00\x01\x02" + os.urandom(4096).replace(b"\n", b"") + b"\n")
        f.write(b'{"run_id": "' + RUN.encode() + b'", "cut": \n')
        f.write(b"{" + b'"a":[' * 100_000 + RUN.encode() + b"\n")  # too deep to parse
        f.write(b"x" * (MAX_LINE + 10) + RUN.encode() + b"\n")  # longer than the limit
        f.write(b"y" * (3 * MAX_LINE) + b"\n")
        nested = {"record": {"extra": {"run_id": RUN}}, "message": "nested"}
        f.write(json.dumps(nested).encode() + b"\n")
        f.write(jline(run_id=12, message=f"bad field, id in text {RUN}").encode())
        f.write(b"[1, 2] " + RUN.encode() + b"\n")
        f.write(jline(run_id=RUN, message="last").encode()[:-1])  # no final newline
    result = cli("logs", RUN, str(log), "--json")
    assert result.code == 0
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert len(rows) == 7
    assert rows[0]["record"]["message"] == "first"
    assert rows[1]["text"] == "\ufffd\ufffd\x00 invalid utf-8 " + RUN
    assert rows[2]["record"]["message"] == "latin-1 caf\ufffd"
    assert rows[3]["record"]["message"] == "nested"
    assert "bad field" in rows[4]["record"]["message"]
    assert rows[5]["text"].startswith("[1, 2]")
    assert rows[6]["record"]["message"] == "last"
    assert f"in {log.stat().st_size / 1e6:.1f} MB read; 4 malformed lines skipped " in result.err
    assert "(2 invalid JSON, 2 longer than 1 MiB)" in result.err
    assert "; 2 lines not UTF-8, read with replacement characters" in result.err
    shown = cli("logs", RUN, str(log))
    assert len(shown.out.splitlines()) == 7


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_a_corrupt_gzip_file_is_reported_without_a_traceback(
    tmp_path: Path, cli: Runner, damage: str
) -> None:
    log = tmp_path / "cut.log.gz"
    data = gzip.compress((jline(run_id=RUN) * 2000).encode())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = data[:20] + bytes([data[20] ^ 0xFF]) + data[21:]
    log.write_bytes(data)
    result = cli("logs", RUN, str(log))
    assert result.code == 2
    assert f"cannot read {log}" in result.err
    assert "Traceback" not in result.err


def test_a_closed_pipe_stops_the_command_quietly(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    log.write_text(jline(run_id=RUN, message="x" * 100) * 20_000)
    done = os.popen(f"{sys.executable} -m agent_run_id logs {RUN} {log} 2>&1 | head -1")
    output = done.read()
    done.close()
    assert output.count("\n") == 1
    assert "Traceback" not in output


def test_progress_shows_on_a_terminal_and_is_cleared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(10**6))
    monkeypatch.setattr(logs_module, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    log = tmp_path / "big.log"
    log.write_text(jline(run_id=OTHER) * 40_000 + jline(run_id=RUN))
    result = call("logs", RUN, str(log), tty=True)
    assert result.code == 0
    assert log.stat().st_size == 2_040_051
    assert "\r2.0 MB scanned" in result.err
    assert f"\r\033[Kagent-run-id: 1 line of run {RUN} in 2.0 MB read\n" in result.err
    assert "scanned" not in call("logs", RUN, str(log)).err


# -- runs -------------------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    registry = SQLiteRunRegistry(path)
    with RunContext(
        RunId.from_string(RUN), registry=registry, user_id="alice", task="plan a  trip\nto Lisbon"
    ):
        with RunContext(RunId(CHILD, parent=RUN), task="search flights"):
            pass
        try:
            with RunContext(RunId(TWIN, parent=RUN), task="book " + "x" * 60):
                raise TimeoutError("hotel API timed out")
        except TimeoutError:
            pass
    registry.close()
    return path


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_runs_list_shows_a_table_newest_first(db: Path, cli: Runner) -> None:
    result = cli("runs", "list", "--db", str(db))
    assert result.code == 0
    header, *rows = result.out.splitlines()
    assert header.split()[:3] == ["RUN", "STATUS", "STARTED"]
    assert [row.split()[0] for row in rows] == [TWIN, CHILD, RUN]
    assert "error" in rows[0]
    assert rows[0].endswith("…")
    assert "plan a trip\\nto Lisbon" in rows[2]  # runs of spaces as one, the newline escaped
    assert "alice" in rows[2]
    assert "3 runs" in result.err


def test_runs_list_filters(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENT_RUN_ID_DB", str(db))
    assert len(call("runs", "list", "--status", "error").out.splitlines()) == 2
    assert len(call("runs", "list", "--user", "alice").out.splitlines()) == 2
    assert len(call("runs", "list", "--since", "1h").out.splitlines()) == 4
    assert len(call("runs", "list", "--since", "2099-01-01").out.splitlines()) == 1
    assert len(call("runs", "list", "--since", "2000-01-01T00:00+00:00").out.splitlines()) == 4
    assert len(call("runs", "list", "--limit", "1").out.splitlines()) == 2
    assert len(call("runs", "list", "--stale").out.splitlines()) == 1


def test_runs_list_stale_shows_the_host_and_pid_of_the_dead_process(db: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(dead.stdout)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute(
            "UPDATE runs SET status = 'running', ended_at = NULL, pid = ? WHERE run_id = ?",
            (pid, CHILD),
        )
    conn.close()
    result = call("runs", "list", "--db", str(db), "--stale")
    assert result.code == 0
    header, row = result.out.splitlines()
    assert header.split()[:7] == ["RUN", "STATUS", "STARTED", "(UTC)", "DURATION", "HOST", "PID"]
    assert row.split()[0] == CHILD
    assert f"  {socket.gethostname()[:19]}" in row
    assert f"  {pid}  " in row
    assert "HOST" not in call("runs", "list", "--db", str(db)).out
    assert call("runs", "list", "--db", str(db), "--stale", "--status", "running").out == result.out


def test_runs_list_stale_takes_no_other_status(db: Path) -> None:
    result = call("runs", "list", "--db", str(db), "--stale", "--status", "error")
    assert result.code == 2
    assert "--stale lists runs still marked running: it takes no --status error" in result.err


@pytest.mark.parametrize(
    ("since", "rows"),
    [
        ("2020-01-01T00:00:00Z", 4),
        ("2020-01-01t00:00:00z", 4),
        ("2020-01-01 00:00:00.5+00:00", 4),
        ("2020-01-01T00:00+0000", 4),
        ("2099-01-01T00:00:00Z", 1),
        ("2099-01-01T02:00:00+02:00", 1),
        (" 2099-01-01 ", 1),
    ],
)
def test_runs_list_since_takes_the_iso_times_that_logs_reads(
    db: Path, since: str, rows: int
) -> None:
    """One rule on every Python (3.10 refuses "Z"): the rule log stamps are read with."""
    result = call("runs", "list", "--db", str(db), "--since", since)
    assert result.code == 0
    assert len(result.out.splitlines()) == rows


@pytest.mark.parametrize(
    "since",
    [
        "[2020-01-01",
        "2020-01-01T25:00Z",
        "2020-01-01T00:00 later",
        "999999999d",
        "99999999999999999999s",
        "9" * 5000 + "s",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_runs_list_since_refuses_what_is_not_a_time(db: Path, since: str) -> None:
    result = call("runs", "list", "--db", str(db), "--since", since)
    assert result.code == 2
    assert f"--since {since!r} is not a time" in result.err


def test_runs_list_json_gives_records_with_their_field_names(db: Path) -> None:
    result = call("runs", "list", "--db", str(db), "--json")
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert [row["run_id"] for row in rows] == [TWIN, CHILD, RUN]
    assert rows[0]["error"] == "TimeoutError: hotel API timed out"
    assert set(rows[0]) == {
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
        "external_ids",
    }


@pytest.mark.parametrize("cli", [run_cli, call], ids=["subprocess", "in-process"])
def test_runs_show_prints_the_whole_record(db: Path, cli: Runner) -> None:
    result = cli("runs", "show", CHILD[:8], "--db", str(db))
    assert result.code == 0
    fields = dict(line.split(":", 1) for line in result.out.splitlines())
    assert fields["run_id"].strip() == CHILD
    assert fields["parent_id"].strip() == RUN
    assert fields["status"].strip() == "ok"
    assert fields["error"].strip() == "-"
    assert fields["metadata"].strip() == "{}"
    (row,) = call("runs", "show", CHILD, "--db", str(db), "--json").out.splitlines()
    assert json.loads(row)["run_id"] == CHILD


def test_runs_tree_indents_children_with_status_and_duration(db: Path) -> None:
    result = call("runs", "tree", RUN, "--db", str(db))
    lines = result.out.splitlines()
    assert lines[0].startswith(f"{RUN}  ok  ")
    assert lines[0].endswith("plan a trip\\nto Lisbon  user=alice")
    assert lines[1].startswith(f"  {CHILD}  ok  ")
    assert lines[2].startswith(f"  {TWIN}  error  ")
    assert lines[2].endswith("TimeoutError: hotel API timed out")
    assert "ms" in lines[1]
    rows = call("runs", "tree", RUN, "--db", str(db), "--json").out.splitlines()
    assert [json.loads(row)["run_id"] for row in rows] == [RUN, CHILD, TWIN]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["runs", "show", "0b6f5d3e"], "matches several runs"),
        (["runs", "show", "ffffffff"], "unknown run 'ffffffff'"),
        (["runs", "tree", OTHER], "unknown run"),
        (["runs", "show", "0b6f"], "at least its first 8 characters"),
        (["runs", "list", "--since", "last week"], "--since 'last week' is not a time"),
        (["runs", "list", "--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_runs_mistakes_exit_2_with_a_clear_message(db: Path, argv: list[str], message: str) -> None:
    result = run_cli(*argv, "--db", str(db))
    assert result.code == 2
    assert message in result.err
    assert "Traceback" not in result.err


def test_runs_needs_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_RUN_ID_DB", raising=False)
    assert "give --db PATH or set $AGENT_RUN_ID_DB" in call("runs", "list").err
    assert "no registry database at" in call("runs", "list", "--db", "nope.db").err
    conninfo = call("runs", "list", "--db", "host=127.0.0.1 dbname=agents password=s3cret")
    assert conninfo.code == 2
    assert "a libpq key=value connection string" in conninfo.err
    assert "give a postgresql:// URL" in conninfo.err
    assert "s3cret" not in conninfo.err
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    result = call("runs", "list", "--db", str(junk))
    assert result.code == 2
    assert f"cannot read {junk}" in result.err


def _foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("argv", [["list"], ["show", RUN], ["tree", RUN]])
def test_runs_refuses_a_database_that_is_not_a_registry_and_leaves_it_untouched(
    tmp_path: Path, argv: list[str]
) -> None:
    foreign = tmp_path / "app.db"
    _foreign_database(foreign)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path in (foreign, empty):
        before = path.read_bytes()
        result = run_cli("runs", *argv, "--db", str(path))
        assert call("runs", *argv, "--db", str(path)) == result
        assert result.code == 2
        assert (
            result.err
            == f"agent-run-id: cannot read {path}: not a run registry (it has no runs table)\n"
        )
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "empty.db"]
    conn = sqlite3.connect(foreign)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert conn.execute("PRAGMA user_version").fetchone() == (0,)
    conn.close()


def test_runs_reads_a_registry_without_writing_to_it(db: Path) -> None:
    before = db.read_bytes()
    assert run_cli("runs", "list", "--db", str(db)).code == 0
    assert call("runs", "tree", RUN, "--db", str(db)).code == 0
    assert db.read_bytes() == before


def test_runs_reads_a_registry_whose_path_has_uri_characters(db: Path, tmp_path: Path) -> None:
    odd = tmp_path / "a b%20#?x=1.db"
    db.rename(odd)
    result = call("runs", "show", RUN, "--db", str(odd))
    assert result.code == 0
    assert RUN in result.out


def test_runs_refuses_a_registry_with_a_newer_schema(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    result = call("runs", "list", "--db", str(db))
    assert result.code == 2
    assert "newer than this agent-run-id knows" in result.err


def test_python_dash_m_runs_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["agent-run-id", "new"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_module("agent_run_id", run_name="__main__")
    assert exited.value.code == 0
    assert RunId.from_string(capsys.readouterr().out.strip())


# -- what the command says ----------------------------------------------------------------------


def test_logs_with_no_argument_asks_for_the_run_only(capsys: pytest.CaptureFixture[str]) -> None:
    """Files are optional (standard input is read): only the run (or a session) is required."""
    assert call("logs").code == 2
    err = capsys.readouterr().err
    assert " ".join(err.split()).startswith(
        "usage: agent-run-id logs [-h] [--tree] [--every-line] [--session SESSION] [--db PATH] "
        "[--json] [RUN] [FILE ...] "
    )
    assert err.endswith(
        "agent-run-id logs: error: the following arguments are required: RUN "
        "(or --session SESSION)\n"
    )


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["logs", RUN, "--bogus", "x.log"], "agent-run-id logs"),
        (["logs", "--bogus", RUN], "agent-run-id logs"),
        (["runs", "list", "--bogus"], "agent-run-id runs list"),
        (["runs", "show", RUN, "--bogus"], "agent-run-id runs show"),
        (["runs", "tree", "--bogus", RUN], "agent-run-id runs tree"),
        (["new", "--bogus"], "agent-run-id new"),
        (["--bogus", "new"], "agent-run-id"),
    ],
)
def test_an_unknown_option_is_shown_with_the_usage_of_its_command(
    capsys: pytest.CaptureFixture[str], argv: list[str], command: str
) -> None:
    assert call(*argv).code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {command} [-h]")
    assert f"\n{command}: error: unrecognized arguments: --bogus" in err


def test_files_after_an_option_are_still_files(tmp_path: Path) -> None:
    api, tool = write_logs(tmp_path)
    result = call("logs", RUN, str(api), "--json", str(tool))
    assert [json.loads(line)["file"] for line in result.out.splitlines()] == [
        str(api),
        str(tool),
        str(api),
    ]


def test_the_logs_summary_counts_in_words(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_bytes(b"caf\xe9 " + RUN.encode() + b"\n" + b'{"run_id": "' + RUN.encode() + b'", \n')
    result = call("logs", RUN, str(log))
    assert result.code == 0
    assert result.err == (
        f"agent-run-id: 1 line of run {RUN} in 94 B read; 1 malformed line skipped "
        "(1 invalid JSON); 1 line not UTF-8, read with replacement characters\n"
    )


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0 B"),
        (812, "812 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (4_249, "4.2 kB"),
        (999_949, "999.9 kB"),
        (999_950, "1.0 MB"),
        (1_000_000_000, "1.0 GB"),
        (1_234_567_890_123, "1.2 TB"),
        (5 * 10**15, "5,000.0 TB"),
    ],
)
def test_the_logs_summary_says_what_was_read_in_decimal_units(count: int, shown: str) -> None:
    assert logs_module.size_text(count) == shown


def test_runs_list_counts_its_runs_in_words(db: Path) -> None:
    assert call("runs", "list", "--db", str(db)).err == "3 runs\n"
    assert call("runs", "list", "--db", str(db), "--user", "alice").err == "1 run\n"
    assert call("runs", "list", "--db", str(db), "--status", "running").err == "no runs\n"
    assert (
        call("runs", "list", "--db", str(db), "--limit", "2").err
        == "2 runs (as many as --limit 2: there may be more)\n"
    )


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["runs", "show"], "--json      print the record as one JSON object\n"),
        (["runs", "list"], "print one JSON object per run, one a line\n"),
        (["runs", "tree"], "print one JSON object per run, one a line, the run first\n"),
        (["logs"], "print one JSON object per line found: file, line, time, run_id,"),
    ],
)
def test_help_says_what_json_prints(
    capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    assert call(*argv, "--help").code == 0
    assert " ".join(says.split()) in " ".join(capsys.readouterr().out.split())


def test_logs_help_says_how_lines_are_written_to_a_terminal_and_a_pipe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert call("logs", "--help").code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Piped or redirected, the lines are written byte for byte" in text
    assert "on a terminal, the control characters in them" in text
    assert "are shown escaped, as \\x1b" in text
    assert "FILE log files, gzip or not (standard input when none, or -)" in text
