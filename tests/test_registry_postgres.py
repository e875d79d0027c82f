"""PostgresRunRegistry against a real server: faults, load, migrations, fork, bounded close.

What the shared suite (``test_registry_backends.py``) cannot say for SQLite too: a server that
cannot be reached, stops mid-load, ends the registry's connection, cancels a statement, refuses
a schema; a server that never answers; many workers making the tables at once.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import os
import re
import signal
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from agent_run_id import RunContext, RunId
from agent_run_id.registry import PostgresRunRegistry, SchemaError
from agent_run_id.registry import _postgres_schema as schema_module
from agent_run_id.registry._rows import START
from tests._postgres_server import PostgresServer, free_port, require_binaries, shared_server

LOGGER = "agent_run_id.registry"


@pytest.fixture
def dsn() -> str:
    return shared_server().fresh_dsn()


@pytest.fixture
def registry(dsn: str) -> Iterator[PostgresRunRegistry]:
    registry = PostgresRunRegistry(dsn)
    try:
        yield registry
    finally:
        registry.close()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 30]


def _runs(registry: PostgresRunRegistry, count: int, **facts: Any) -> list[str]:
    ids = []
    for _ in range(count):
        with RunContext(registry=registry, **facts) as run:
            ids.append(run.run_id.value)
    return ids


def _backends(dsn: str) -> list[int]:
    """The server processes of the registry's connections to the database of ``dsn``."""
    name = dsn.rsplit("/", 1)[1]
    rows = shared_server().execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'agent-run-id' AND datname = %s",
        name,
    )
    return [row[0] for row in rows]


# -- a database that is not there, or goes away ----------------------------------------------


def test_made_while_unreachable_it_never_raises_and_writes_everything_once_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Made before the server starts: one warning, the runs go on, all written once it is up."""
    server = PostgresServer(require_binaries())
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            registry = PostgresRunRegistry(server.dsn, connect_timeout=1)
            started = time.monotonic()
            ids = _runs(registry, 50, user_id="early")
            assert time.monotonic() - started < 1.0  # never slowed by the database
            registry.flush()
            (warning,) = _warnings(caplog)
            assert "cannot be written (OperationalError" in warning
            assert registry.failures >= 1
            server.start()
            registry.flush()  # the writer tries again, and writes what it kept
            assert {r.run_id for r in registry.find(user_id="early")} == set(ids)
        assert any("works again: writing the" in r.getMessage() for r in caplog.records)
        assert len(_warnings(caplog)) == 1
        registry.close()
    finally:
        server.close()


def _load(dsn: str, worker: int, runs: int, done: Any, release: Any) -> None:
    """Record ``runs`` runs; wait for the test's word, then close (run in a spawned process)."""
    registry = PostgresRunRegistry(dsn, close_timeout=30)
    slowest = 0.0
    for n in range(runs):
        began = time.perf_counter()
        with RunContext(registry=registry, user_id=f"w{worker}", task=f"task {n}"):
            pass
        slowest = max(slowest, time.perf_counter() - began)
    done.put((worker, slowest))
    release.wait(120)
    registry.close()


def test_the_server_stopped_mid_load_loses_no_run() -> None:
    """8 workers x 5,000 runs; the server stops for 10 s in the middle: every run is written."""
    workers, runs = 8, 5_000
    with PostgresServer(require_binaries()) as server:
        spawn = multiprocessing.get_context("spawn")
        done, release = spawn.Queue(), spawn.Event()
        processes = [
            spawn.Process(target=_load, args=(server.dsn, n, runs, done, release))
            for n in range(workers)
        ]
        for process in processes:
            process.start()
        try:
            deadline = time.monotonic() + 60
            while _count(server) < workers * runs // 8:  # a while into the load
                assert time.monotonic() < deadline, "the load never started"
                time.sleep(0.05)
            server.stop()
            time.sleep(10)  # the outage itself: the workers record on meanwhile
            server.start()
            finished = [done.get(timeout=120) for _ in processes]
            deadline = time.monotonic() + 60
            while _count(server) < workers * runs:  # the backlogs drain on their own
                assert time.monotonic() < deadline, f"{_count(server)} of {workers * runs}"
                time.sleep(0.1)
        finally:
            release.set()
            for process in processes:
                process.join(60)
        assert [p.exitcode for p in processes] == [0] * workers
        assert max(slowest for _, slowest in finished) < 1.0  # no run waited for the server
        rows = server.execute(
            "SELECT user_id, count(*), count(DISTINCT task), min(status), max(status), "
            "count(ended_at) FROM runs GROUP BY user_id ORDER BY user_id"
        )
        assert rows == [(f"w{n}", runs, runs, "ok", "ok", runs) for n in range(workers)]


def _count(server: PostgresServer) -> int:
    try:
        (row,) = server.execute("SELECT count(*) FROM runs WHERE status = 'ok'")
    except psycopg.Error:  # no table yet, or the server restarting
        return 0
    return int(row[0])


def test_a_connection_the_server_ends_is_logged_once_and_nothing_is_lost(
    registry: PostgresRunRegistry, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    before = _runs(registry, 20)
    registry.flush()
    assert registry.get(before[0]).status == "ok"  # the reader's connection is open too
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for pid in _backends(dsn):
            shared_server().execute("SELECT pg_terminate_backend(%s)", pid)
        after = _runs(registry, 20)
        registry.flush()  # fails: the connection is gone; the writes are kept
        registry.flush()  # reconnects and writes them
        assert registry.failures == 1
        assert {r.run_id for r in registry.find(limit=100)} == set(before + after)
    (warning,) = _warnings(caplog)
    assert "cannot be written" in warning
    assert "terminating connection due to administrator command" in warning


def test_a_statement_timeout_is_logged_once_and_the_writes_wait(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = PostgresRunRegistry(dsn, statement_timeout=0.2)
    try:
        _runs(registry, 1)
        registry.flush()
        with psycopg.connect(dsn) as locker, caplog.at_level(logging.INFO, logger=LOGGER):
            locker.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")  # until it ends
            ids = _runs(registry, 30)
            registry.flush()
            registry.flush()
            assert registry.failures >= 2
            with pytest.raises(psycopg.errors.QueryCanceled):  # a read raises, at once
                registry.get(ids[0], timeout=0)
            (warning,) = _warnings(caplog)
            assert "QueryCanceled" in warning
            assert "statement timeout" in warning
            locker.rollback()
            registry.flush()
            assert {r.run_id for r in registry.find(limit=100)} >= set(ids)
    finally:
        registry.close()


def test_a_schema_refused_by_its_permissions_is_logged_once_until_granted(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    owner = PostgresRunRegistry(dsn, schema="agents")
    owner.flush()
    _runs(owner, 1)
    owner.close()
    role = f"worker_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
        limited = dsn.replace("postgres@", f"{role}@")
        registry = PostgresRunRegistry(limited, schema="agents")
        try:
            with caplog.at_level(logging.INFO, logger=LOGGER):
                ids = _runs(registry, 10)  # never raised into the run
                registry.flush()
                registry.flush()
                assert registry.failures >= 2
                (warning,) = _warnings(caplog)
                assert "InsufficientPrivilege" in warning
                assert "permission denied for schema agents" in warning
                admin.execute(f"GRANT USAGE ON SCHEMA agents TO {role}")
                admin.execute(
                    f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA agents TO {role}"
                )
                registry.flush()
                assert {r.run_id for r in registry.find(limit=100)} >= set(ids)
        finally:
            registry.close()


@pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX signals")
def test_close_returns_in_time_when_the_server_never_answers(
    registry: PostgresRunRegistry, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry.close_timeout = 0.5
    _runs(registry, 1)
    registry.flush()
    frozen = _backends(dsn)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)  # the server's process for our connection stops answering
    try:
        _runs(registry, 5)
        started = time.monotonic()
        registry.close()
        assert time.monotonic() - started < 2.0
        (warning,) = _warnings(caplog)
        assert "closing gave up after 0.5 s, the database does not answer" in warning
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)


# -- the schema -------------------------------------------------------------------------------


def _first_start(dsn: str, schema: str | None, go: Any) -> None:
    go.wait(30)
    schema_module.connect(dsn, schema, connect_timeout=5, statement_timeout=10).close()


@pytest.mark.parametrize("schema", [None, "fleet"])
def test_many_workers_starting_at_once_make_the_schema_once(dsn: str, schema: str | None) -> None:
    """8 processes against an empty database at once: one makes the tables, none fails."""
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    go = context.Event()
    workers = [context.Process(target=_first_start, args=(dsn, schema, go)) for _ in range(8)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        for worker in workers:
            worker.start()
    go.set()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0] * 8
    table = "agent_run_id_schema" if schema is None else f"{schema}.agent_run_id_schema"
    with psycopg.connect(dsn) as conn:
        versions = conn.execute(f"SELECT version FROM {table}".encode()).fetchall()
    assert versions == [(schema_module.SCHEMA_VERSION,)]


def test_the_first_published_schema_is_migrated_in_place_keeping_its_runs(dsn: str) -> None:
    run = RunId.generate()
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in schema_module.MIGRATIONS[0]:
            conn.execute(statement.encode())
        conn.execute("CREATE TABLE agent_run_id_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO agent_run_id_schema VALUES (1)")
        conn.execute(
            "INSERT INTO runs (run_id, root_id, status, started_at, user_id) "
            "VALUES (%s, %s, 'running', 1, 'u-1')",
            (run.value, run.value),
        )
    from agent_run_id._cli.main import main

    code = main(["runs", "show", run.value, "--db", dsn], stdout=(out := _Text()), stderr=_Text())
    assert code == 0  # the command reads version 1 as it is, without migrating it
    assert "user_id:    u-1" in out.text
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT version FROM agent_run_id_schema").fetchall() == [(1,)]
    registry = PostgresRunRegistry(dsn)
    try:
        registry.annotate(run, external_ids={"langsmith_run": "ls-1"})
        record = registry.get(run)
        assert (record.user_id, record.external_ids) == ("u-1", {"langsmith_run": "ls-1"})
        assert [r.run_id for r in registry.by_external_id("ls-1")] == [run.value]
    finally:
        registry.close()
    with psycopg.connect(dsn) as conn:
        (version,) = conn.execute("SELECT version FROM agent_run_id_schema").fetchone() or (0,)
    assert version == schema_module.SCHEMA_VERSION


def test_a_newer_schema_is_refused_on_read_and_warned_on_write(
    dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    PostgresRunRegistry(dsn).close()  # made at once, in the background; close waits for it
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE agent_run_id_schema SET version = 99")
    registry = PostgresRunRegistry(dsn, close_timeout=0.2)
    try:
        _runs(registry, 1)
        registry.flush()
        (warning,) = _warnings(caplog)
        assert "schema version 99, newer than this agent-run-id knows" in warning
        with pytest.raises(SchemaError, match="upgrade agent-run-id"):
            registry.find()
        from agent_run_id._cli.main import main

        code = main(["runs", "list", "--db", dsn], stdout=_Text(), stderr=(err := _Text()))
        assert code == 2
        assert "schema version 99, newer than this agent-run-id knows" in err.text
    finally:
        registry.close()


# -- the registry object ----------------------------------------------------------------------


def test_a_row_the_server_refuses_is_dropped_alone(
    registry: PostgresRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    bad = RunId.generate()
    row = (bad.value, None, bad.value, "running", 2**70, None, None, None, None, None, "h", 1)
    before = _runs(registry, 5)
    registry._writer.put((START, (*row, "{}", None)))  # a start time beyond bigint
    after = _runs(registry, 5)
    assert {r.run_id for r in registry.find()} == set(before + after)
    (warning,) = _warnings(caplog)
    assert "1 of" in warning
    assert "writes dropped, refused by the database" in warning


def test_bad_arguments_are_refused_with_the_fix_and_no_password_shown() -> None:
    with pytest.raises(TypeError, match="dsn must be a str"):
        PostgresRunRegistry(b"postgresql://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dsn is not a PostgreSQL connection string") as caught:
        PostgresRunRegistry("postgresql://u:s3cret@host:notaport/db x=")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(ValueError, match="schema must be a plain SQL name"):
        PostgresRunRegistry("postgresql://h/db", schema="a; DROP TABLE runs")
    with pytest.raises(TypeError, match="schema must be a str"):
        PostgresRunRegistry("postgresql://h/db", schema=3)  # type: ignore[arg-type]
    for option in ("connect_timeout", "statement_timeout", "close_timeout"):
        with pytest.raises(ValueError, match=f"{option} must be a number of seconds > 0"):
            PostgresRunRegistry("postgresql://h/db", **{option: 0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pending_bytes must be"):
        PostgresRunRegistry("postgresql://h/db", max_pending_bytes=10)
    port = free_port()
    registry = PostgresRunRegistry(
        f"postgresql://who:s3cret@127.0.0.1:{port}/db", schema="s", close_timeout=1
    )
    assert (
        repr(registry) == f"PostgresRunRegistry('postgresql://who@127.0.0.1:{port}/db (schema s)')"
    )
    registry.close()
    assert "s3cret" not in repr(PostgresRunRegistry("host=h password=s3cret", close_timeout=1))


def test_without_psycopg_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "agent_run_id.registry._postgres", raising=False)
    with pytest.raises(
        ImportError, match=r"needs the psycopg package: pip install .*\[postgres\]"
    ) as err:
        importlib.import_module("agent_run_id.registry._postgres")
    assert str(err.value).endswith('(or pip install "psycopg[binary]" alone)')
    from agent_run_id._cli.main import main

    monkeypatch.delitem(sys.modules, "agent_run_id.registry._postgres_read_only", raising=False)
    code = main(
        ["runs", "list", "--db", "postgresql://h/db"], stdout=_Text(), stderr=(err := _Text())
    )
    assert code == 2
    assert "a postgresql:// registry needs the psycopg package" in err.text


def test_an_unknown_name_of_the_registry_package_is_an_attribute_error() -> None:
    import agent_run_id.registry as package

    with pytest.raises(AttributeError, match="no attribute 'PostgresRegistry'"):
        package.PostgresRegistry  # noqa: B018


class _Text:
    """A text stream that keeps what is written."""

    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> int:
        self.text += text
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def test_a_write_the_driver_cannot_run_is_dropped_alone(
    registry: PostgresRunRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    before = _runs(registry, 3)
    registry._writer.put(("not a statement", ()))  # a bug upstream, never a user's input
    after = _runs(registry, 3)
    assert {r.run_id for r in registry.find()} == set(before + after)
    (warning,) = _warnings(caplog)
    assert "writes dropped, refused by the database (KeyError" in warning


def test_the_command_keeps_the_options_of_the_url(dsn: str) -> None:
    """A URL's own options (a search path here) stay, beside the command's read-only session."""
    registry = PostgresRunRegistry(dsn, schema="agents")
    (run,) = _runs(registry, 1)
    registry.close()
    from agent_run_id._cli.main import main

    url = f"{dsn}?options=-csearch_path%3Dagents"
    code = main(["runs", "show", run, "--db", url], stdout=(out := _Text()), stderr=_Text())
    assert code == 0
    assert run in out.text
    code = main(["runs", "show", run, "--db", dsn], stdout=_Text(), stderr=(err := _Text()))
    assert code == 2  # public has no registry
    assert "not a run registry" in err.text


def test_runs_prune_without_the_right_to_delete_says_so(dsn: str) -> None:
    registry = PostgresRunRegistry(dsn)
    _runs(registry, 1)
    registry.close()
    role = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN".encode())
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}".encode())
    from agent_run_id._cli.main import main

    url = dsn.replace("postgres@", f"{role}@")
    code = main(
        ["runs", "prune", "--older-than", "1m", "--db", url],
        stdout=_Text(),
        stderr=(err := _Text()),
    )
    assert code == 2
    assert f"cannot prune postgresql://{role}@" in err.text
    assert "permission denied for table" in err.text


def test_while_unreachable_the_writes_kept_are_bounded_in_bytes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = PostgresServer(require_binaries())
    try:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            registry = PostgresRunRegistry(
                server.dsn, connect_timeout=1, max_pending_bytes=1024 * 1024
            )
            ids = _runs(registry, 300, metadata={"blob": "x" * 10_000})
            assert registry._writer.held()[2] <= 1024 * 1024
            server.start()
            registry.flush()
            kept = {r.run_id for r in registry.find(limit=1000)}
            registry.close()
        assert 0 < len(kept) < 300
        assert kept <= set(ids)
        drops = [w for w in _warnings(caplog) if "exceed max_pending_bytes=1048576" in w]
        assert len(drops) == 1
        (back,) = [r.getMessage() for r in caplog.records if "works again" in r.getMessage()]
        assert re.search(r"writing the \d+ writes kept, \d+ were dropped", back)
    finally:
        server.close()


def test_without_the_server_binaries_the_tests_skip_or_fail_as_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import _postgres_server

    monkeypatch.setattr(_postgres_server, "binaries", lambda: None)
    monkeypatch.delenv("AGENT_RUN_ID_REQUIRE", raising=False)
    with pytest.raises(pytest.skip.Exception, match="install them \\(apt-get install postgresql"):
        _postgres_server.require_binaries()
    monkeypatch.setenv("AGENT_RUN_ID_REQUIRE", "postgres,chromium")
    with pytest.raises(pytest.fail.Exception, match="AGENT_RUN_ID_REQUIRE=postgres,chromium"):
        _postgres_server.require_binaries()
