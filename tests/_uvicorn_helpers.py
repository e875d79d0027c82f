"""A real uvicorn server for the tests: in a thread, on a free port of 127.0.0.1.

Standard library and uvicorn only: the mcp 1.x environment (.venv-mcp1) imports it too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def uvicorn_serving(app: Any, **options: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn (``options`` go to ``uvicorn.Config``); yield its base URL."""
    # uvicorn sets the level of its loggers for the whole process: restore them afterwards.
    loggers = [logging.getLogger(f"uvicorn.{name}") for name in ("error", "access", "asgi")]
    saved = [(logger, logger.level, logger.propagate, logger.handlers[:]) for logger in loggers]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        log_config=None,  # leave the logging setup (and the tests' capturing handlers) alone
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # uvicorn offers a flag, not an event, to wait on
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        for logger, level, propagate, handlers in saved:
            logger.setLevel(level)
            logger.propagate = propagate
            logger.handlers[:] = handlers
