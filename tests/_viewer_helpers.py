"""The viewer's test tools: the app served on 127.0.0.1 in a thread, and headless Chromium.

Chromium is Debian's (``/usr/bin/chromium``, or ``$AGENT_RUN_ID_CHROMIUM``), driven by
Playwright's Python package with ``executable_path`` set to it: Playwright's own browser
download is never used. Without it the browser tests skip, saying how to get it, unless
``AGENT_RUN_ID_REQUIRE`` names ``chromium`` (CI sets it): then they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from agent_run_id._viewer._app import LOOPBACK, create_app
from agent_run_id.registry import RunRegistry

HOW_TO_GET = (
    "no Chromium: apt-get install chromium (Debian, /usr/bin/chromium), "
    "or set AGENT_RUN_ID_CHROMIUM to a Chromium binary"
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def artifacts() -> Path:
    """Return the folder the screenshots go to: ``$AGENT_RUN_ID_ARTIFACTS/viewer`` or a temp one."""
    base = os.environ.get("AGENT_RUN_ID_ARTIFACTS") or os.path.join(
        tempfile.gettempdir(), "agent-run-id-artifacts"
    )
    folder = Path(base) / "viewer"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def chromium_path() -> str:
    """Return the Chromium binary, or skip (fail when required) saying how to get it."""
    found = os.environ.get("AGENT_RUN_ID_CHROMIUM") or shutil.which("chromium") or ""
    if not found or not os.access(found, os.X_OK):
        if "chromium" in os.environ.get("AGENT_RUN_ID_REQUIRE", ""):
            pytest.fail(f"AGENT_RUN_ID_REQUIRE={os.environ['AGENT_RUN_ID_REQUIRE']}: {HOW_TO_GET}")
        pytest.skip(HOW_TO_GET)
    return found


@contextmanager
def browser(profile: Path) -> Iterator[Any]:
    """Yield a fresh headless Chromium context (its own user-data-dir under ``profile``)."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=executable,
            headless=True,
            args=ARGS,
            viewport={"width": 1360, "height": 900},
            device_scale_factor=1,
        )
        try:
            yield context
        finally:
            context.close()


class Watched:
    """A page's dialogs, console errors, uncaught errors and requests, as they happen."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("request", lambda request: self.requests.append(request.url))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, message: Any) -> None:
        if message.type in ("error", "warning"):
            self.errors.append(f"console {message.type}: {message.text}")


@contextmanager
def served(registry: RunRegistry, logs: Sequence[str | Path] = ()) -> Iterator[str]:
    """Serve the viewer on 127.0.0.1 (a free port) in a thread; yield its URL; stop it.

    The socket listens before the thread starts, so the URL takes connections at once.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(
        create_app(registry, [str(name) for name in logs], hosts=LOOPBACK),
        log_level="warning",
        access_log=False,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
