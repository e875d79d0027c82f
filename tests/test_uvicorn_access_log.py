"""examples/fastapi_app.py under a real uvicorn: its access log lines show the request's run id.

uvicorn's own logging config gives its loggers their own handlers and formats, which have no
``%(run_id)s``; the example (and the README) pass ``log_config=None`` so that basicConfig's
format, with the id, applies to them too.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
RUN = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _get_when_up(url: str, headers: dict[str, str], within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        try:
            return httpx.get(url, headers=headers, timeout=5)
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_the_access_log_line_of_a_request_shows_its_run_id(tmp_path: Path) -> None:
    port = _free_port()
    with (tmp_path / "stderr").open("w+") as stderr:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "fastapi_app.py"), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            url = f"http://127.0.0.1:{port}/agent?task=hello"
            response = _get_when_up(url, {"X-Run-Id": RUN}, within=30)
        finally:
            server.terminate()
            server.wait(timeout=30)
        stderr.seek(0)
        log = stderr.read()
    assert response.headers["X-Run-Id"] == RUN
    (access,) = [line for line in log.splitlines() if " uvicorn.access " in line]
    assert f" {RUN} uvicorn.access " in access
    assert '"GET /agent?task=hello HTTP/1.1" 200' in access
    (agent,) = [line for line in log.splitlines() if " agent " in line]
    assert f" {RUN} agent agent started on 'hello'" in agent
    # Lines logged outside any request show the default instead.
    assert any(" - uvicorn.error " in line for line in log.splitlines())
