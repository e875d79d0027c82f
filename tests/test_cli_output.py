r"""What the command shows people: control characters escaped everywhere, JSON and pipes exact.

A task, a user id, an exception's text or a log line is client input: written raw, a task like
``book\x1b]0;owned\x07\x1b[2J\nstatus:     ok`` retitles the terminal, clears it and forges a line.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from agent_run_id import RunContext, RunId
from agent_run_id._cli._output import count, json_line, printable, printable_line
from agent_run_id.registry import SQLiteRunRegistry
from tests._cli_helpers import (
    CHILD,
    OTHER,
    RUN,
    call,
    run_cli,
    run_cli_bytes,
    run_cli_on_terminal,
)

HOSTILE_TASK = "book\x1b]0;owned\x07\x1b[2J\nstatus:     ok"
# Every character a terminal acts on rather than shows, or that reorders or breaks the line.
UNSAFE = (
    [chr(code) for code in range(0x20)]
    + ["\x7f"]
    + [chr(code) for code in range(0x80, 0xA0)]
    + ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029"]
    + [chr(code) for code in range(0x202A, 0x202F)]
    + [chr(code) for code in range(0x2066, 0x206A)]
)
# A line shown on a terminal may hold none of them, nor a lone surrogate (not encodable).
SHOWN_UNSAFE = re.compile("[" + re.escape("".join(UNSAFE)) + "\ud800-\udfff]")


def _safe(text: str) -> bool:
    """Whether every line of ``text`` is free of what a terminal would act on."""
    return all(SHOWN_UNSAFE.search(line) is None for line in text.split("\n"))


# -- the escaping itself ----------------------------------------------------------------------


@pytest.mark.parametrize("char", UNSAFE, ids=[f"U+{ord(c):04X}" for c in UNSAFE])
def test_printable_escapes_each_control_character_to_visible_ascii(char: str) -> None:
    shown = printable(f"a{char}b")
    assert shown.startswith("a\\")
    assert shown.endswith("b")
    assert shown.isascii()
    assert shown[1:-1].isprintable()
    assert char not in shown


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("line\nnext", "line\\nnext"),
        ("a\r\tb", "a\\r\\tb"),
        ("\x1b[2J", "\\x1b[2J"),
        ("\x00\x7f\x85\x9b", "\\x00\\x7f\\x85\\x9b"),
        ("abc\u202eexe.txt", "abc\\u202eexe.txt"),
        ("\u2066x\u2069", "\\u2066x\\u2069"),
        ("a\u2028b", "a\\u2028b"),
        ("name\udcff.log", "name\\xff.log"),  # a byte that is not UTF-8, as os.fsdecode keeps it
        ("lone \ud800", "lone \\ud800"),
    ],
)
def test_printable_shows_each_escape_in_its_usual_form(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize(
    "text", ["plain", "café 東京 🙂", "back\\slash", "tab-free", "\u00a0nbsp", "", "\u200b"]
)
def test_printable_leaves_printable_text_unchanged(text: str) -> None:
    assert printable(text) == text


def test_printable_line_keeps_one_newline_and_escapes_the_rest() -> None:
    assert printable_line(b"ok line\n") == b"ok line\n"
    assert printable_line(b"crlf line\r\n") == b"crlf line\n"
    assert printable_line(b"no newline at the end") == b"no newline at the end\n"
    assert printable_line(b"a\rforged\x1b[1Ab\n") == b"a\\rforged\\x1b[1Ab\n"
    assert printable_line(b"caf\xe9 \x9b31m\n") == b"caf\\xe9 \\x9b31m\n"
    assert printable_line("\u202eevil\u0085x\n".encode()) == b"\\u202eevil\\x85x\n"
    assert printable_line("caf\u00e9\n".encode()) == "caf\u00e9\n".encode()


@pytest.mark.parametrize(
    "value",
    [
        HOSTILE_TASK,
        "".join(UNSAFE),
        "lone \ud800 and \udcff surrogates",
        {"k\x1b": ["\u202e", 1, None, "\u2028"]},
        "plain",
    ],
)
def test_json_line_is_exact_encodable_and_harmless_on_a_terminal(value: object) -> None:
    line = json_line(value)
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert json.loads(line) == value
    assert SHOWN_UNSAFE.search(line[:-1]) is None
    line.encode("utf-8")  # never a lone surrogate


def test_count_puts_the_noun_in_the_right_number() -> None:
    assert [count(n, "line") for n in (0, 1, 2)] == ["0 lines", "1 line", "2 lines"]
    assert count(1, "more file") == "1 more file"


# -- runs: every human-readable field ---------------------------------------------------------


@pytest.fixture
def hostile_db(tmp_path: Path) -> Path:
    """A registry whose runs hold control characters in every text field a person reads."""
    path = tmp_path / "runs.db"
    registry = SQLiteRunRegistry(path)
    with RunContext(
        RunId.from_string(RUN),
        registry=registry,
        user_id="eve\x1b[31m\nuser",
        task=HOSTILE_TASK,
        metadata={"note\x1b": "\u202eevil\u2028x", "bell": "\x07"},
    ):
        try:
            with RunContext(RunId(CHILD, parent=RUN), task="tool\rcall"):
                raise ValueError("bad\n\x1b[2Jstatus:     ok")
        except ValueError:
            pass
    registry.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE runs SET host = ? WHERE run_id = ?", ("host\x1b]0;x\x07", RUN))
        # Written by other software: the session id rule holds only for what the library records.
        conn.execute("UPDATE runs SET session_id = ? WHERE run_id = ?", ("s\x1b[2J\nid", RUN))
    conn.close()
    return path


def test_runs_show_puts_each_field_on_its_one_line_escaped(hostile_db: Path) -> None:
    result = call("runs", "show", RUN, "--db", str(hostile_db))
    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) == 15  # one per field of the record
    assert _safe(result.out)
    fields = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in lines}
    assert [line for line in lines if line.startswith("status:")] == ["status:     ok"]
    assert fields["task"] == "book\\x1b]0;owned\\x07\\x1b[2J\\nstatus:     ok"
    assert fields["user_id"] == "eve\\x1b[31m\\nuser"
    assert fields["host"] == "host\\x1b]0;x\\x07"
    assert fields["session_id"] == "s\\x1b[2J\\nid"
    assert "\\u202eevil\\u2028x" in fields["metadata"]
    assert "\\u0007" in fields["metadata"]


def test_runs_show_of_the_failed_run_shows_its_error_on_one_line(hostile_db: Path) -> None:
    result = call("runs", "show", CHILD, "--db", str(hostile_db))
    lines = result.out.splitlines()
    assert len(lines) == 15
    assert [line for line in lines if line.startswith("status:")] == ["status:     error"]
    assert "error:      ValueError: bad\\n\\x1b[2Jstatus:     ok" in lines
    assert _safe(result.out)


def test_runs_list_and_tree_keep_one_run_a_line(hostile_db: Path) -> None:
    listed = call("runs", "list", "--db", str(hostile_db))
    assert listed.code == 0
    assert len(listed.out.splitlines()) == 3  # the header and two runs
    assert _safe(listed.out)
    assert "book\\x1b]0;owned\\x07\\x1b[2J\\nstatus:" in listed.out
    assert "eve\\x1b[31m" in listed.out
    assert "tool\\rcall" in listed.out
    assert "s\\x1b[2J\\nid" in listed.out
    stale = call("runs", "list", "--db", str(hostile_db), "--stale", "--limit", "1")
    assert _safe(stale.out)
    tree = call("runs", "tree", RUN, "--db", str(hostile_db))
    assert tree.code == 0
    first, second = tree.out.splitlines()
    assert _safe(tree.out)
    assert first.endswith("user=eve\\x1b[31m\\nuser  session=s\\x1b[2J\\nid")
    assert second.startswith(f"  {CHILD}  error  ")
    assert second.endswith("  tool\\rcall  ValueError: bad\\n\\x1b[2Jstatus:     ok")


def test_runs_json_stays_exact(hostile_db: Path) -> None:
    (row,) = call("runs", "show", RUN, "--db", str(hostile_db), "--json").out.splitlines()
    record = json.loads(row)
    assert record["task"] == HOSTILE_TASK
    assert record["user_id"] == "eve\x1b[31m\nuser"
    assert record["host"] == "host\x1b]0;x\x07"
    assert record["metadata"] == {"note\x1b": "\u202eevil\u2028x", "bell": "\x07"}
    assert SHOWN_UNSAFE.search(row) is None
    rows = call("runs", "tree", RUN, "--db", str(hostile_db), "--json").out.splitlines()
    assert json.loads(rows[1])["error"] == "ValueError: bad\n\x1b[2Jstatus:     ok"


def test_a_run_id_in_the_database_is_escaped_too(hostile_db: Path) -> None:
    conn = sqlite3.connect(hostile_db)
    with conn:
        conn.execute("UPDATE runs SET run_id = ? WHERE run_id = ?", ("x\x1b[2J\ny", CHILD))
    conn.close()
    listed = call("runs", "list", "--db", str(hostile_db))
    assert len(listed.out.splitlines()) == 3
    assert "x\\x1b[2J\\ny" in listed.out
    assert _safe(listed.out)


# -- logs: escaped on a terminal, byte for byte through a pipe --------------------------------


def _hostile_log(path: Path) -> bytes:
    data = (
        f"2025-01-01T00:00:01Z {RUN} book\x1b]0;owned\x07\x1b[2J\rforged\n".encode()
        + f"2025-01-01T00:00:02Z {RUN} caf".encode()
        + b"\xe9 \x9b31m 8-bit CSI\r\n"
        + json.dumps(
            {"run_id": RUN, "message": "\u202eevil\u2028line"}, ensure_ascii=False
        ).encode()
        + b"\n"
        + f"2025-01-01T00:00:04Z {OTHER} not the run's\x1b[2J\n".encode()
        + f"2025-01-01T00:00:05Z {RUN} last, no newline".encode()
    )
    path.write_bytes(data)
    return data


def test_logs_writes_the_lines_byte_for_byte_through_a_pipe(tmp_path: Path) -> None:
    log = tmp_path / "hostile.log"
    data = _hostile_log(log)
    code, out = run_cli_bytes("logs", RUN, str(log))
    assert code == 0
    wanted = [line for line in data.splitlines(keepends=True) if OTHER.encode() not in line]
    assert out == b"".join(wanted) + b"\n"  # only the missing last newline is added


def test_logs_escapes_control_characters_on_a_terminal(tmp_path: Path) -> None:
    log = tmp_path / "hostile.log"
    _hostile_log(log)
    code, shown = run_cli_on_terminal("logs", RUN, str(log))
    assert code == 0
    lines = shown.split(b"\n")
    assert lines[-1] == b""
    assert lines[:-1] == [
        f"2025-01-01T00:00:01Z {RUN} book\\x1b]0;owned\\x07\\x1b[2J\\rforged".encode(),
        f"2025-01-01T00:00:02Z {RUN} caf\\xe9 \\x9b31m 8-bit CSI".encode(),
        ('{"run_id": "' + RUN + '", "message": "\\u202eevil\\u2028line"}').encode(),
        f"2025-01-01T00:00:05Z {RUN} last, no newline".encode(),
    ]


def test_logs_names_files_as_they_are_through_a_pipe_and_escaped_on_a_terminal(
    tmp_path: Path,
) -> None:
    """Like ls: a file name is written as its bytes when piped, and escaped on a terminal."""
    plain = tmp_path / "a.log"
    plain.write_text(f"{RUN} one\n")
    odd = Path(tmp_path, b"b\x1b[2J\xff.log".decode("utf-8", "surrogateescape"))
    odd.write_text(f"{RUN} two\n")
    code, out = run_cli_bytes("logs", RUN, str(plain), str(odd))
    assert code == 0
    assert out.splitlines()[1] == bytes(tmp_path) + b"/b\x1b[2J\xff.log:" + f"{RUN} two".encode()
    code, shown = run_cli_on_terminal("logs", RUN, str(plain), str(odd))
    assert code == 0
    assert (
        shown.split(b"\n")[1] == bytes(tmp_path) + b"/b\\x1b[2J\\xff.log:" + f"{RUN} two".encode()
    )
    rows = call("logs", RUN, "--json", str(plain), str(odd)).out.splitlines()
    assert json.loads(rows[1])["file"] == str(odd)


def test_logs_on_a_terminal_in_process(tmp_path: Path) -> None:
    log = tmp_path / "hostile.log"
    _hostile_log(log)
    result = call("logs", RUN, str(log), "-", out_tty=True, stdin=b"")
    assert result.code == 0
    assert _safe(result.out)
    assert len(result.out.splitlines()) == 4
    assert result.out.splitlines()[0].startswith(f"{log}:2025-01-01T00:00:01Z")
    assert "\\x1b]0;owned\\x07" in result.out


def test_logs_json_on_a_lone_surrogate_is_exact_and_never_crashes(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text('{"run_id": "' + RUN + '", "m": "\\ud800 \\u009b"}\n')
    result = run_cli("logs", RUN, "--json", str(log))
    assert result.code == 0
    assert "Traceback" not in result.err
    assert json.loads(result.out)["record"]["m"] == "\ud800 \x9b"


def test_error_messages_escape_what_the_user_gave(tmp_path: Path) -> None:
    result = run_cli("logs", RUN, "a\x1b[2J\nb.log")
    assert result.code == 2
    assert result.err == "agent-run-id: no such file: a\\x1b[2J\\nb.log\n"
    unknown = run_cli("logs", RUN, "--x\x1b[2J")
    assert unknown.code == 2
    assert "unrecognized arguments: --x\\x1b[2J\n" in unknown.err
    assert "\x1b" not in unknown.err
