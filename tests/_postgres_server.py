"""A real PostgreSQL server for the tests: initdb in a temporary folder, a free port on 127.0.0.1.

The server binaries are found on PATH or in Debian's ``/usr/lib/postgresql/*/bin``. Without
them the PostgreSQL tests skip, with one line saying how to get them, unless
``AGENT_RUN_ID_REQUIRE`` names ``postgres`` (CI sets it): then they fail. As root (initdb and
postgres refuse to run as root), the server runs as the ``postgres`` user, its folder given to it.

One server serves the whole test run (``shared_server``), stopped at exit; a test that stops
and restarts its server makes its own (``PostgresServer``, a context manager).
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
import pytest

HOW_TO_GET = (
    "PostgreSQL server binaries (initdb, postgres) not found on PATH or in "
    "/usr/lib/postgresql/*/bin: install them (apt-get install postgresql, brew install "
    "postgresql) to run the PostgreSQL registry tests"
)
_START_TIMEOUT = 30.0


def binaries() -> Path | None:
    """Return the folder holding ``initdb`` and ``postgres``, or None when there is none."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    return Path(debian[-1]).parent if debian else None


def _version(path: str) -> tuple[int, ...]:
    number = Path(path).parent.parent.name
    return tuple(int(part) for part in number.split(".") if part.isdigit())


def require_binaries() -> Path:
    """Return the binaries' folder; skip the test without them, or fail when CI requires them."""
    found = binaries()
    if found is None:
        if "postgres" in os.environ.get("AGENT_RUN_ID_REQUIRE", ""):
            pytest.fail(f"AGENT_RUN_ID_REQUIRE={os.environ['AGENT_RUN_ID_REQUIRE']}: {HOW_TO_GET}")
        pytest.skip(HOW_TO_GET)
    return found


def free_port() -> int:
    """Return a TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """A PostgreSQL server of its own, in a temporary folder, on 127.0.0.1; ``stop``/``start``.

    ``dsn`` connects as the superuser ``postgres`` to the database ``postgres`` (trust
    authentication, 127.0.0.1 only). ``fresh_dsn()`` gives a new database's.
    """

    def __init__(self, bin_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="agent-run-id-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.dsn = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.folder),
            "fsync": "off",  # a test server: its data dies with the test run anyway
            "max_connections": "100",
            "shared_buffers": "32MB",
            **(settings or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._as = _as_postgres()
        if self._as:
            shutil.chown(self.folder, "postgres", "postgres")
        initdb = [str(bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres"]
        self._run([*initdb, "-A", "trust", "-E", "UTF8", "--no-sync", "--no-instructions"])

    def start(self) -> None:
        """Start the server and wait until it takes connections."""
        options: list[str] = []
        for name, value in self.settings.items():
            options += ["-c", f"{name}={value}"]
        log = open(self.folder / "server.log", "ab")  # noqa: SIM115 - the server's, closed in stop
        self._log = log
        self._process = subprocess.Popen(
            [str(self.bin_dir / "postgres"), "-D", str(self.data), "-p", str(self.port), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            **self._as,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            try:
                psycopg.connect(self.dsn, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}") from None
                time.sleep(0.05)  # polling the server's readiness: no event to wait for

    def stop(self) -> None:
        """Stop the server (a fast shutdown: open sessions are ended) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(2)  # SIGINT: PostgreSQL's fast shutdown
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a server that hangs
                process.kill()
                process.wait()
        self._log.close()

    def close(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def fresh_dsn(self) -> str:
        """Create a new, empty database and return its DSN."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn.rsplit("/", 1)[0] + f"/{name}"

    def execute(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run one statement as the superuser on the ``postgres`` database; return its rows."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cursor = conn.execute(sql, params or None)
            return cursor.fetchall() if cursor.description else []

    def log_tail(self) -> str:
        """Return the end of the server's log."""
        try:
            return (self.folder / "server.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, capture_output=True, check=False, **self._as)
        if done.returncode:
            raise RuntimeError(f"{command[0]} failed: {done.stderr.decode(errors='replace')}")


def _as_postgres() -> dict[str, Any]:
    """Return Popen's arguments to run as ``postgres`` when root (the server refuses root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": [], "cwd": "/"}


_shared: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """Return the test run's server, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        server = PostgresServer(require_binaries())
        server.start()
        atexit.register(server.close)
        _shared = server
    return _shared


@pytest.fixture
def postgres_dsn() -> str:
    """Return the DSN of a new, empty database on the test run's server."""
    return shared_server().fresh_dsn()
