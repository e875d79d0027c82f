"""The bytes-level scan of ``agent-run-id logs`` finds exactly what reading line by line finds."""

from __future__ import annotations

import io
import json
import os
import queue
import random
import threading
import uuid
from pathlib import Path

import pytest

from agent_run_id._cli import _scan
from agent_run_id._cli._lines import MAX_LINE, Stats, parse
from agent_run_id._cli._match import Matcher, SessionMatcher
from agent_run_id._cli._scan import Cursor, candidates
from tests._cli_helpers import call


def _stamped(rng: random.Random, run: str, parent: str | None, root: str, n: int) -> bytes:
    record = {
        "timestamp": f"2026-12-06T12:00:{n % 60:02d}.{n % 1000:03d}Z",
        "level": rng.choice(["info", "error"]),
        "message": f"line {n}",
        "run_id": run,
        "parent_run_id": parent,
        "root_run_id": root,
    }
    return json.dumps(record).encode() + b"\n"


def _log(seed: int) -> tuple[bytes, str, list[str]]:
    """A JSON-lines log with a tree of runs among others, and every kind of odd line."""
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(40)]
    root, tree = ids[0], ids[:12]
    parents = {root: None, **{run: rng.choice(tree[: i + 1]) for i, run in enumerate(tree[1:])}}
    lines = []
    for n in range(3000):
        kind = rng.random()
        if kind < 0.3:
            run = rng.choice(tree)
            lines.append(_stamped(rng, run, parents[run], root, n))
        elif kind < 0.9:
            other = rng.choice(ids[12:])
            lines.append(_stamped(rng, other, None, other, n))
        elif kind < 0.95:  # a text line (a traceback) naming one run of the tree alone
            lines.append(f"Traceback in {rng.choice(ids)}: boom\n".encode())
        elif kind < 0.97:
            lines.append(b"\n")
        elif kind < 0.98:  # cut JSON of the tree
            lines.append(b'{"run_id": "' + root.encode() + b'", "cut": \n')
        elif kind < 0.983:  # too long, of the tree or not
            lines.append(b"x" * (MAX_LINE + rng.randrange(10)) + rng.choice(tree).encode() + b"\n")
        else:
            lines.append(b"\xff not utf-8 " + rng.choice(tree).encode() + b"\n")
    data = b"".join(lines)
    return data[: len(data) - rng.randrange(2)], root, tree  # with or without its last \n


def _by_lines(
    data: bytes, matcher: Matcher | SessionMatcher
) -> tuple[list[tuple[int, str]], Stats]:
    """What reading line by line finds: each line tested, parsed and matched in turn.

    In a JSON-lines log a line is tested by the needles it holds (the run's id, its root's, as
    known at that line), a text line among them too; in a text log, by ``candidate``.
    """
    stats = Stats()
    found = []
    json_lines = data.lstrip()[:1] == b"{"
    for number, raw in enumerate(io.BytesIO(data).readlines(), 1):
        stats.lines += 1
        if len(raw) > MAX_LINE:
            stats.too_long += 1
            continue
        needles = matcher.needles(json_lines)
        if needles is None and not matcher.candidate(raw):
            continue
        if needles is not None and not any(needle in raw for needle in needles):
            continue
        line = parse(raw, stats)
        if line is not None and (run := matcher.match(line, raw)) is not None:
            found.append((number, run))
    return found, stats


def _scanned(data: bytes, matcher: Matcher | SessionMatcher) -> tuple[list[tuple[int, str]], Stats]:
    stats = Stats()
    found = []
    for number, raw in candidates(io.BytesIO(data), matcher, stats):
        line = parse(raw, stats)
        if line is not None and (run := matcher.match(line, raw)) is not None:
            found.append((number, run))
    return found, stats


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("block", [4096, 1 << 16, _scan.BLOCK])
def test_the_scan_finds_what_reading_line_by_line_finds(
    seed: int, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_scan, "BLOCK", block)
    data, root, tree = _log(seed)
    for key, is_tree in [(root, True), (tree[3], True), (tree[5], False)]:
        expected, by_lines = _by_lines(data, Matcher(key, tree=is_tree))
        found, scanned = _scanned(data, Matcher(key, tree=is_tree))
        assert found == expected
        assert found or key != root  # the tree has lines
        assert (scanned.lines, scanned.too_long) == (by_lines.lines, by_lines.too_long)
        # The malformed lines counted are those that may have been the run's: for a subtree,
        # the scan also reads those that name the root of the whole tree.
        if key == root or not is_tree:
            assert (scanned.bad_json, scanned.not_utf8) == (by_lines.bad_json, by_lines.not_utf8)
    # The registry's members given up front find every line of the tree, in order.
    members = Matcher(root, tree=True, members=tree, root=root)
    found, _ = _scanned(data, members)
    assert found == _by_lines(data, Matcher(root, tree=True, members=tree, root=root))[0]
    assert {run for _, run in found} <= set(tree)


@pytest.mark.parametrize(
    "text",
    [
        '{"run_id": "0b6f0d1e-9c1a-4e8b-9f7d-5a4c3b2a1908", "n": [1, 2.5, null, true]}',
        '{"a": 1}   ',
        '{"a": 1} \t ',
        '{"a": 1} x',
        '{"a": 1}{"b": 2}',
        '{"a": 1}\x0c',
        '{"a": 1}\u00a0',
        '  {"a": 1}',
        '\x0c{"a": 1}',
        '{"a": ',
        '{"a": NaN, "b": -Infinity}',
        '{"a": "\\ud800"}',
        '{"a": 1, "a": 2}',
        "{}",
        "{" + '"a":[' * 100_000,
    ],
)
def test_a_json_line_is_read_as_json_loads_reads_it(text: str) -> None:
    """The scan's reader of JSON lines skips json.loads' wrapper: the same objects, errors."""
    try:
        expected = json.loads(text)
    except (ValueError, RecursionError):
        expected = None
    stats = Stats()
    line = parse(text.encode(), stats)
    assert (None if line is None else line.record) == expected
    assert stats.bad_json == (expected is None)


def test_a_text_log_searched_for_a_tree_is_read_line_by_line() -> None:
    root, child = str(uuid.uuid4()), str(uuid.uuid4())
    data = (
        f"2026-01-01T00:00:00Z {root} started\n2026-01-01T00:00:01Z {child} parent={root}\n"
    ).encode()
    matcher = Matcher(root, tree=True)
    assert matcher.needles(json_lines=False) is None
    found, stats = _scanned(data, matcher)
    assert found == [(1, root), (2, root)]  # a text line names the run: no parent link in text
    assert stats.lines == 2


def test_a_text_log_searched_for_a_tree_tests_each_line_and_skips_a_long_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_scan, "BLOCK", 4096)
    root, child = str(uuid.uuid4()), str(uuid.uuid4())
    data = (
        f"2026-01-01T00:00:00Z {root} started\n"
        f"2026-01-01T00:00:01Z {child} names no run of the tree\n"
        + "x" * (MAX_LINE + 1)
        + f" {root}\n2026-01-01T00:00:02Z {root} ended\n"
    ).encode()
    found, stats = _scanned(data, Matcher(root, tree=True))
    assert found == [(1, root), (4, root)]
    assert (stats.lines, stats.too_long) == (4, 1)
    assert (found, stats.lines) == (_by_lines(data, Matcher(root, tree=True))[0], 4)


def test_a_log_whose_first_reads_are_blank_is_known_as_json_lines_by_its_first_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first bytes that are not blank say whether the log is JSON lines, however far."""
    monkeypatch.setattr(_scan, "BLOCK", 4096)
    rng = random.Random(3)
    root, child = str(uuid.uuid4()), str(uuid.uuid4())
    data = (
        b"\n" * 10_000
        + _stamped(rng, root, None, root, 1)
        + _stamped(rng, child, root, root, 2)
        + f"Traceback in {child}: a text line naming a descendant alone\n".encode()
        + f"Traceback in {root}\n".encode()
    )
    found, stats = _scanned(data, Matcher(root, tree=True))
    assert found == [(10_001, root), (10_002, child), (10_004, root)]
    assert stats.lines == 10_004
    # A text log (its first line is text) is read line by line: the descendant's line is found.
    text_found, _ = _scanned(b"a banner\n" + data, Matcher(root, tree=True))
    assert (10_004, child) in text_found


def test_a_log_being_written_is_read_to_its_last_newline_and_resumed(tmp_path: Path) -> None:
    run = str(uuid.uuid4())
    log = tmp_path / "live.jsonl"
    rng = random.Random(1)
    first = _stamped(rng, run, None, run, 1) + _stamped(rng, run, None, run, 2)
    log.write_bytes(first + b'{"run_id": "' + run.encode())  # the third line half written
    cursor = Cursor()
    stats = Stats()
    with log.open("rb") as f:
        got = list(candidates(f, Matcher(run, tree=True), stats, cursor=cursor, complete=True))
    assert [number for number, _ in got] == [1, 2]
    assert cursor == Cursor(offset=len(first), line=2)
    with log.open("ab") as f:
        f.write(b'", "message": "third"}\n')
    with log.open("rb") as f:
        f.seek(cursor.offset)
        got = list(candidates(f, Matcher(run, tree=True), stats, cursor=cursor, complete=True))
    assert [(number, json.loads(raw)["message"]) for number, raw in got] == [(3, "third")]
    assert cursor.offset == log.stat().st_size


def test_a_scan_resumed_inside_an_unfinished_long_line_skips_its_tail(tmp_path: Path) -> None:
    """The cursor left inside a line too long to read says so: its tail is no line of its own."""
    run = str(uuid.uuid4())
    log = tmp_path / "live.jsonl"
    first = _stamped(random.Random(1), run, None, run, 1)
    log.write_bytes(first + b"x" * (MAX_LINE + 10))  # too long already, and still written
    cursor = Cursor()
    stats = Stats()
    with log.open("rb") as f:
        got = list(candidates(f, Matcher(run, tree=True), stats, cursor=cursor, complete=True))
    assert [number for number, _ in got] == [1]
    assert cursor == Cursor(offset=log.stat().st_size, line=2, inside_long=True)
    assert (stats.lines, stats.too_long) == (2, 1)
    for tail in (b"y" * 100, b'", "run_id": "' + run.encode() + b'"}\n' + first):
        with log.open("ab") as f:
            f.write(tail)
        with log.open("rb") as f:
            f.seek(cursor.offset)
            got = list(candidates(f, Matcher(run, tree=True), stats, cursor=cursor, complete=True))
    assert [(number, raw) for number, raw in got] == [(3, first)]
    assert cursor == Cursor(offset=log.stat().st_size, line=3)
    assert (stats.lines, stats.too_long) == (3, 1)


def test_a_line_longer_than_any_block_is_skipped_counted_and_the_next_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_scan, "BLOCK", 4096)
    run = str(uuid.uuid4())
    data = b"y" * (MAX_LINE + 20_000) + run.encode() + b"\n" + f"after {run}\n".encode()
    found, stats = _scanned(data, Matcher(run, tree=False))
    assert found == [(2, run)]
    assert (stats.lines, stats.too_long) == (2, 1)
    found, stats = _scanned(data[: MAX_LINE + 100], Matcher(run, tree=False))  # cut: no newline
    assert (found, stats.lines, stats.too_long) == ([], 1, 1)


def test_logs_tree_finds_a_text_line_among_json_lines_when_it_names_the_run(
    tmp_path: Path,
) -> None:
    data, root, tree = _log(7)
    log = tmp_path / "app.jsonl"
    log.write_bytes(data)
    result = call("logs", root, "--tree", "--json", str(log))
    rows = [json.loads(line) for line in result.out.splitlines()]
    expected, _ = _by_lines(data, Matcher(root, tree=True))
    assert sorted((row["line"], row["run_id"]) for row in rows) == sorted(expected)
    tracebacks = [line for line in data.splitlines() if line.startswith(b"Traceback in ")]
    naming_root = [line.decode() for line in tracebacks if root.encode() in line]
    found = [row["text"] for row in rows if row["text"] and row["text"].startswith("Traceback")]
    assert found == naming_root
    assert found
    # A traceback naming a descendant alone is in the log, and not found: it holds no needle.
    assert any(run.encode() in line for run in tree[1:] for line in tracebacks)


def test_lines_long_but_under_the_limit_are_read_where_the_probes_measure_them() -> None:
    run = str(uuid.uuid4())
    line = b"a" * (MAX_LINE * 3 // 5) + run.encode() + b"\n"  # wider than a probe's stretch
    found, stats = _scanned(line * 2, Matcher(run, tree=False))
    assert found == [(1, run), (2, run)]
    assert (stats.lines, stats.too_long) == (2, 0)


def test_a_long_unfinished_line_after_the_last_newline_of_a_block_is_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_scan, "BLOCK", 2 * MAX_LINE + 100)
    run = str(uuid.uuid4())
    data = f"first {run}\n".encode() + b"z" * (2 * MAX_LINE) + b"\n" + f"last {run}".encode()
    found, stats = _scanned(data, Matcher(run, tree=False))
    assert found == [(1, run), (3, run)]
    assert (stats.lines, stats.too_long) == (3, 1)


def test_a_pipe_is_read_as_its_data_comes() -> None:
    run = str(uuid.uuid4())
    reader, writer = os.pipe()
    found: queue.Queue[tuple[int, bytes] | None] = queue.Queue()

    def consume() -> None:
        with os.fdopen(reader, "rb") as stream:
            assert not stream.seekable()
            for item in candidates(stream, Matcher(run, tree=False), Stats()):
                found.put(item)
        found.put(None)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    with os.fdopen(writer, "wb") as pipe:
        pipe.write(f"first {run}\n".encode())
        pipe.flush()
        # The first line comes while the pipe is still open: no wait for 8 MiB, or its end.
        assert found.get(timeout=10) == (1, f"first {run}\n".encode())
        pipe.write(f"second {run}".encode())
    assert found.get(timeout=10) == (2, f"second {run}".encode())
    assert found.get(timeout=10) is None
    thread.join(timeout=10)
