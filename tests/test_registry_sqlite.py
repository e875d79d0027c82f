"""SQLiteRunRegistry's file: processes sharing it, failures that never break a run, migrations."""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import shutil
import sqlite3
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_run_id import RunContext, RunId
from agent_run_id.registry import SCHEMA_VERSION, SchemaError, SQLiteRunRegistry, _schema
from tests._registry_helpers import read_only, record_runs, start_and_die

LOGGER = "agent_run_id.registry"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "runs.db"


@pytest.fixture
def registry(path: Path) -> Iterator[SQLiteRunRegistry]:
    registry = SQLiteRunRegistry(path, timeout=0.05)
    try:
        yield registry
    finally:
        registry.close()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def _runs(registry: SQLiteRunRegistry, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        with RunContext(registry=registry) as run:
            ids.append(run.run_id.value)
    registry.flush()
    return ids


def test_several_processes_record_into_one_file_and_lose_nothing(path: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=record_runs, args=(str(path), 150, f"p{n}")) for n in range(3)]
    for worker in workers:
        worker.start()
    registry = SQLiteRunRegistry(path)
    mine = _runs(registry, 150)
    for worker in workers:
        worker.join()
        assert worker.exitcode == 0
    records = registry.find(limit=1000)
    registry.close()
    assert len(records) == 600
    assert {r.user_id for r in records} == {None, "p0", "p1", "p2"}
    assert {r.run_id for r in records} >= set(mine)
    assert len({r.pid for r in records}) == 4
    assert all(r.status == "ok" for r in records)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_forked_child_records_with_its_own_writer(registry: SQLiteRunRegistry) -> None:
    _runs(registry, 3)  # the parent's writer thread is running when it forks
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 1
        try:
            with RunContext(registry=registry, user_id="child"):
                pass
            registry.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    (child,) = registry.find(user_id="child")
    assert child.pid == pid
    assert len(registry.find()) == 4


def test_runs_of_a_dead_process_stay_running_and_show_as_stale(
    registry: SQLiteRunRegistry, path: Path
) -> None:
    spawn = multiprocessing.get_context("spawn")
    dead = spawn.Process(target=start_and_die, args=(str(path),))
    dead.start()
    dead.join()
    with RunContext(registry=registry, task="alive"):
        (stale,) = registry.find(stale=True)
        assert stale.task == "dies"
        assert stale.status == "running"
        assert stale.pid == dead.pid
        assert len(registry.find(status="running")) == 2
    elsewhere = RunId.generate()
    registry.start(elsewhere)
    registry.flush()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE runs SET host = 'other-host' WHERE run_id = ?", (elsewhere.value,))
        conn.execute("UPDATE runs SET pid = 0 WHERE task = 'dies'")
    conn.close()
    assert [r.task for r in registry.find(stale=True, limit=1)] == ["dies"]


def test_a_locked_database_warns_once_and_writes_everything_later(
    registry: SQLiteRunRegistry, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _runs(registry, 1)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        during = []
        for _ in range(3):
            during += _runs(registry, 2)
            registry.flush()
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    (warning,) = _warnings(caplog)
    assert "cannot be written" in warning
    assert "database is locked" in warning
    caplog.set_level(logging.INFO, LOGGER)
    registry.flush()  # a retry with nothing new: the 12 writes kept, exactly
    after = _runs(registry, 1)
    assert {r.run_id for r in registry.find()} == {*first, *during, *after}
    assert any(
        "works again: writing the 12 writes kept, 0 were dropped" in m for m in caplog.messages
    )


def test_writes_beyond_max_pending_drop_the_oldest(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = SQLiteRunRegistry(path, timeout=0.05, max_pending=4)
    _runs(registry, 1)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    lost = _runs(registry, 2)
    registry.flush()
    kept = _runs(registry, 2)
    registry.flush()
    locker.execute("ROLLBACK")
    locker.close()
    caplog.set_level(logging.INFO, LOGGER)
    registry.flush()  # a flush retries the kept writes even with nothing new
    found = {r.run_id for r in registry.find()}
    registry.close()
    assert set(kept) <= found
    assert not set(lost) & found
    assert any("4 were dropped" in m for m in caplog.messages)


def test_a_read_only_database_warns_once_and_writes_when_writable_again(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    writer = SQLiteRunRegistry(path)
    before = _runs(writer, 1)
    writer.close()
    registry = SQLiteRunRegistry(path, timeout=0.05)
    with read_only(path):
        during = _runs(registry, 3)
        registry.flush()
        registry.flush()
    (warning,) = _warnings(caplog)
    assert "readonly" in warning or "read-only" in warning
    after = _runs(registry, 1)
    assert {r.run_id for r in registry.find()} == {*before, *during, *after}
    registry.close()


def test_a_deleted_folder_warns_once_and_recording_goes_on_in_a_new_file(
    registry: SQLiteRunRegistry, path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _runs(registry, 1)
    context = RunContext(registry=registry)
    with context:
        registry.flush()
        shutil.rmtree(path.parent)
        inside = _runs(registry, 2)
    after = _runs(registry, 2)
    (warning,) = _warnings(caplog)
    assert "deleted or replaced" in warning
    found = {r.run_id: r.status for r in registry.find()}
    # The run that spanned the deletion is written whole when it ends.
    assert found == dict.fromkeys([context.run_id.value, *inside, *after], "ok")


def test_a_failing_registry_never_breaks_the_run(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir()
    path.mkdir()  # a folder where the file should be: nothing can ever be written
    registry = SQLiteRunRegistry(path, close_timeout=0.2)
    for _ in range(5):
        with RunContext(registry=registry) as run:
            registry.flush()
        assert run.run_id
    with pytest.raises(ValueError, match="boom"), RunContext(registry=registry):
        raise ValueError("boom")
    registry.flush()
    assert len(_warnings(caplog)) == 1
    registry.close()
    (_, lost) = _warnings(caplog)
    assert "12 writes of 6 runs lost at close" in lost


def test_a_new_file_gets_the_current_schema_version(
    registry: SQLiteRunRegistry, path: Path
) -> None:
    _runs(registry, 1)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_an_older_schema_is_migrated_keeping_its_runs(
    registry: SQLiteRunRegistry, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _runs(registry, 2)
    registry.close()
    step = ("ALTER TABLE runs ADD COLUMN cost REAL",)
    monkeypatch.setattr(_schema, "MIGRATIONS", (*_schema.MIGRATIONS, step))
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = SQLiteRunRegistry(path)
    assert {r.run_id for r in upgraded.find()} == set(old)
    upgraded.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION + 1,)
    assert "cost" in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    conn.close()


def test_a_newer_schema_is_refused_on_read_and_warned_on_write(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path.parent.mkdir()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    registry = SQLiteRunRegistry(path, close_timeout=0.2)
    with pytest.raises(SchemaError, match="schema version 99, newer than"):
        registry.find()
    _runs(registry, 1)
    registry.flush()
    (warning,) = _warnings(caplog)
    assert "upgrade agent-run-id" in warning
    registry.close()


def test_a_migration_that_fails_leaves_the_file_unchanged(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_schema, "MIGRATIONS", (("CREATE TABLE t (x)", "NOT SQL"),))
    monkeypatch.setattr(_schema, "SCHEMA_VERSION", 1)
    registry = SQLiteRunRegistry(path)
    with pytest.raises(sqlite3.OperationalError):
        registry.find()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone() == (0,)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []
    conn.close()


def test_the_atexit_hook_writes_what_is_queued(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from agent_run_id import RunContext\n"
        "from agent_run_id.registry import SQLiteRunRegistry\n"
        "r = SQLiteRunRegistry(sys.argv[1])\n"
        "for _ in range(500):\n"
        "    with RunContext(registry=r): pass\n"
    )
    import subprocess

    db = tmp_path / "exit.db"
    subprocess.run([sys.executable, "-c", script, str(db)], check=True)
    registry = SQLiteRunRegistry(db)
    assert len(registry.find(status="ok", limit=1000)) == 500
    registry.close()


def test_rows_of_the_wrong_type_are_refused_before_they_are_queued(
    registry: SQLiteRunRegistry,
) -> None:
    with pytest.raises(TypeError, match="user_id must be a str or None, got int"):
        registry.start(RunId.generate(), user_id=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="task must be a str or None, got list"):
        registry.start(RunId.generate(), task=["x"])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="run_id must be a RunId, got str"):
        registry.finish("0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908")  # type: ignore[arg-type]


def test_a_bug_in_the_writer_is_logged_and_recording_goes_on(
    registry: SQLiteRunRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agent_run_id.registry import _backlog, _writer

    real = _writer.Writer._write
    calls = []

    def broken_once(self: _writer.Writer, ops: list[_backlog.Held]) -> bool:
        calls.append(len(ops))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real(self, ops)

    monkeypatch.setattr(_writer.Writer, "_write", broken_once)
    _runs(registry, 1)
    kept = _runs(registry, 1)
    assert registry.get(kept[0]).status == "ok"
    (warning,) = _warnings(caplog)
    assert re.search(r"runs\.db: [12] writes lost", warning)


def test_an_unexpected_batch_error_writes_the_rows_one_by_one(
    registry: SQLiteRunRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agent_run_id.registry import _backlog, _batch

    real = _batch._execute
    calls = []

    def broken_once(conn: sqlite3.Connection, ops: list[_backlog.Held]) -> None:
        calls.append(len(ops))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        real(conn, ops)

    monkeypatch.setattr(_batch, "_execute", broken_once)
    ids = _runs(registry, 3)
    assert [registry.get(run).status for run in ids] == ["ok"] * 3
    assert calls[0] >= 1
    assert _warnings(caplog) == []


def test_a_database_error_while_writing_row_by_row_keeps_every_row(
    registry: SQLiteRunRegistry, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from agent_run_id.registry import _backlog, _batch

    class Failing:
        def execute(self, *args: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

    def broken(conn: sqlite3.Connection, ops: list[_backlog.Held]) -> None:
        raise RuntimeError("a bug")

    real_each = _batch.BatchWriter._each
    monkeypatch.setattr(_batch, "_execute", broken)
    monkeypatch.setattr(
        _batch.BatchWriter, "_each", lambda self, conn, todo: real_each(self, Failing(), todo)
    )
    ids = _runs(registry, 2)
    assert sum(registry._writer.held()[:2]) == 4  # every row kept, none dropped
    assert any(
        "cannot be written (OperationalError: disk I/O error)" in w for w in _warnings(caplog)
    )
    monkeypatch.undo()
    ids += _runs(registry, 1)
    assert [registry.get(run).status for run in ids] == ["ok"] * 3


def test_lone_surrogates_are_stored_escaped_and_no_other_run_is_lost(
    registry: SQLiteRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """Text UTF-8 cannot store (a file name read with surrogateescape) fails no batch."""
    ids = []
    for i in range(3000):
        task = "bad \udcff" if i == 1500 else f"task {i}"
        user = "user \ud800" if i == 1501 else None
        try:
            with RunContext(registry=registry, task=task, user_id=user) as run:
                ids.append(run.run_id.value)
                if i == 1502:
                    raise OSError("no such file: \udcff.txt")
        except OSError:
            pass
    registry.flush()
    assert len(registry.find(limit=10_000)) == 3000
    assert registry.get(ids[1500]).task == "bad \\udcff"
    assert registry.get(ids[1501]).user_id == "user \\ud800"
    assert registry.get(ids[1502]).error == "OSError: no such file: \\udcff.txt"
    assert registry.get(ids[2999]).task == "task 2999"
    assert _warnings(caplog) == []


def test_a_long_user_or_task_is_cut_to_4096_characters(registry: SQLiteRunRegistry) -> None:
    with RunContext(registry=registry, user_id="u" * 5000, task="\udcff" * 1000) as run:
        pass
    record = registry.get(run.run_id)
    assert record.user_id == "u" * 4096
    assert record.task == ("\\udcff" * 1000)[:4096]


def test_a_row_the_driver_refuses_is_dropped_alone_keeping_the_backlog(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A row that fails its batch in an unexpected way is dropped; the others, queued behind
    a locked database too, are all written."""
    from agent_run_id.registry import _rows

    registry = SQLiteRunRegistry(path, timeout=0.01)
    before = _runs(registry, 1)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        backlog = _runs(registry, 20)  # kept for the retry
        assert sum(registry._writer.held()[:2]) == 40
        bad = RunId.generate()
        row = (bad.value, None, bad.value, "running", 0, None, None, None, "\udcff")
        registry._writer.put((_rows.START, (*row, None, "host", 1, "{}", None)))
        registry.flush()
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    after = _runs(registry, 20)
    try:
        for run in before + backlog + after:
            assert registry.get(run).status == "ok"
        with pytest.raises(KeyError):
            registry.get(bad)
        assert len(registry.find(limit=100)) == 41
        dropped = [w for w in _warnings(caplog) if "dropped" in w]
        assert len(dropped) == 1
        assert re.search(r"1 of \d+ writes dropped", dropped[0])
        assert "UnicodeEncodeError" in dropped[0]
    finally:
        registry.close()


def test_while_failing_the_writer_keeps_at_most_max_pending_writes(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_run_id.registry import _backlog

    monkeypatch.setattr(_backlog, "_MAX_BATCH", 1)
    registry = SQLiteRunRegistry(path, timeout=0.01, max_pending=3)
    _runs(registry, 1)
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        _runs(registry, 1)  # now failing
        for _ in range(50):
            registry.start(RunId.generate())
        registry.flush()
        assert sum(registry._writer.held()[:2]) == 3
    finally:
        locker.execute("ROLLBACK")
        locker.close()
        registry.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_threads_reader_connection_is_closed_when_the_thread_ends(
    registry: SQLiteRunRegistry,
) -> None:
    (run,) = _runs(registry, 1)

    def look_up_in_a_new_thread() -> None:
        thread = threading.Thread(target=registry.get, args=(run,))
        thread.start()
        thread.join()

    registry.get(run)  # this thread's reader, and the writer's connection, are open
    # SQLite keeps a closed connection's file descriptor while the process holds locks on the
    # file, and reuses it at the next open: one more, once.
    look_up_in_a_new_thread()
    before = _open_fds() if sys.platform == "linux" else 0
    for _ in range(50):  # a threaded server answering each look-up from a new thread
        look_up_in_a_new_thread()
    assert len(registry._readers) == 1  # this thread's only
    if sys.platform == "linux":
        assert _open_fds() == before


def _writer_threads() -> int:
    return sum(t.name == "agent-run-id registry writer" for t in threading.enumerate())


def test_a_dropped_registry_writes_what_is_queued_and_ends_its_writer_thread(path: Path) -> None:
    before = _writer_threads()
    ids = []

    def record_with_a_fresh_registry() -> None:
        with RunContext(registry=SQLiteRunRegistry(path)) as run:
            ids.append(run.run_id)

    for _ in range(20):
        record_with_a_fresh_registry()
    assert _writer_threads() == before
    reader = SQLiteRunRegistry(path)
    try:
        assert [reader.get(run).status for run in ids] == ["ok"] * 20
    finally:
        reader.close()


def _remove(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def test_reads_follow_a_file_deleted_under_the_registry(
    registry: SQLiteRunRegistry, path: Path
) -> None:
    (first,) = _runs(registry, 1)
    assert registry.get(first).status == "ok"  # this thread's reader is open on the file
    _remove(path)  # a clean-up job
    (second,) = _runs(registry, 1)
    assert registry.get(second).status == "ok"
    with pytest.raises(KeyError):
        registry.get(first)


def test_reads_follow_a_file_replaced_under_the_registry(
    registry: SQLiteRunRegistry, path: Path, tmp_path: Path
) -> None:
    (first,) = _runs(registry, 1)
    assert registry.get(first).status == "ok"
    other = SQLiteRunRegistry(tmp_path / "other.db")
    (restored,) = _runs(other, 1)
    other.close()
    _remove(path)
    os.replace(tmp_path / "other.db", path)  # a backup restored over it
    assert registry.get(restored).status == "ok"
    (second,) = _runs(registry, 1)
    assert [r.run_id for r in registry.find()] == [second, restored]


def test_prune_deletes_a_batch_per_transaction(
    registry: SQLiteRunRegistry, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers of live runs wait for one batch at most, never for the whole prune."""
    from agent_run_id.registry import _sqlite

    monkeypatch.setattr(_sqlite, "PRUNE_BATCH", 2)
    statements: list[str] = []

    def traced(path: Path, timeout: float) -> sqlite3.Connection:
        conn = _schema.connect(path, timeout)
        conn.set_trace_callback(statements.append)
        return conn

    monkeypatch.setattr(_sqlite, "connect", traced)
    old = [RunId.generate() for _ in range(5)]
    for run in old:
        registry.start(run)
    kept = RunId.generate()
    registry.start(kept)
    assert registry.prune(registry.get(kept).started_at) == 5
    # 2 + 2 + 1 runs: three transactions, each deleting the external ids, then the runs.
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == [
        "BEGIN IMMEDIATE",
        "COMMIT",
    ] * 3
    assert [r.run_id for r in registry.find()] == [kept.value]
