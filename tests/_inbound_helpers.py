"""Real servers on 127.0.0.1 and log capture for the middleware tests."""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import make_server as make_wsgiref_server

from werkzeug.serving import make_server

from tests._uvicorn_helpers import uvicorn_serving

CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RUN_A = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"
RUN_B = "5f0c1a2b-3d4e-4f60-8a7b-9c8d7e6f5a4b"
RUN_C = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def is_canonical(value: object) -> bool:
    return isinstance(value, str) and CANONICAL.fullmatch(value) is not None


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free port of 127.0.0.1; yield its base URL."""
    with uvicorn_serving(
        app, lifespan="off", http="h11", ws="websockets-sansio", backlog=2048
    ) as base:
        yield base


@contextmanager
def _serving(server: Any) -> Iterator[str]:
    """Run ``server.serve_forever`` in a thread; yield its base URL, then shut it down."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(20)


@contextmanager
def wsgi_server(app: Any, *, threaded: bool = True) -> Iterator[str]:
    """Serve ``app`` with werkzeug's server in a thread on 127.0.0.1; yield its base URL."""
    with _serving(make_server("127.0.0.1", 0, app, threaded=threaded)) as url:
        yield url


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Keep the access log off the test output."""


@contextmanager
def wsgiref_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with the standard library's wsgiref in a thread on 127.0.0.1; yield its URL."""
    with _serving(make_wsgiref_server("127.0.0.1", 0, app, handler_class=_QuietHandler)) as url:
        yield url


class Capture(logging.Handler):
    """Keep each record's run id and message, from any thread."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []
        self.records: list[logging.LogRecord] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            self.lines.append((getattr(record, "run_id", "?"), record.getMessage()))
            self.records.append(record)


@contextmanager
def captured(name: str, level: int = logging.DEBUG) -> Iterator[Capture]:
    """Capture the records of logger ``name`` (and its children) at ``level`` and above."""
    handler = Capture()
    logger = logging.getLogger(name)
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


def load_example(name: str) -> Any:
    """Import ``examples/<name>.py`` as a module, as ``python examples/<name>.py`` would find it."""
    path = Path(__file__).parent.parent / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
