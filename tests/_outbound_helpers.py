"""A real HTTP server on 127.0.0.1 for the outbound tests: it tells what run headers it got.

Paths:
- ``/echo`` (any method): JSON ``{"headers": {...run headers...}, "body_length": n}``.
- ``/redirect?to=URL&status=302``: redirects to ``URL``; without ``to``, no Location is sent.
- ``/stream?chunks=N``: the echo JSON on a first line, then N chunks of 1 KiB, streamed.
- ``/flaky?key=K``: 503 the first time a key is seen, then the echo.
- An LLM request whose marker starts with ``flaky`` gets a 503 the first time.
- ``/v1/chat/completions`` and ``/v1/messages``: minimal OpenAI and Anthropic answers whose text
  is the ``X-Run-Id`` the server got.

Every request is recorded in ``server.seen`` as ``(path, marker, run headers)``, where the
marker is the ``marker`` query parameter or the last message's text of an LLM request, and in
``server.facts`` as ``(path, marker, session and user headers)``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import uvicorn

RUN_HEADERS = ("x-run-id", "x-parent-run-id", "x-root-run-id")
#: The headers that carry the run's session and (when opted in) its user.
FACT_HEADERS = ("x-session-id", "x-user-id")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class LocalServer:
    """A uvicorn server in a thread, bound to a free port on 127.0.0.1 before it starts.

    It serves ``app`` when given one, else its own echo app (the paths above).
    """

    def __init__(self, app: Any = None) -> None:
        self.seen: list[tuple[str, str | None, dict[str, str | None]]] = []
        self.facts: list[tuple[str, str | None, dict[str, str | None]]] = []
        self._flaky: set[str] = set()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(512)
        self.port: int = self._sock.getsockname()[1]
        # No log_config, log_level or access_log=False: each would change the process-wide
        # logging setup (uvicorn's loggers) that other tests rely on.
        config = uvicorn.Config(
            self.app if app is None else app,
            log_config=None,
            lifespan="off",
            interface="asgi3",
            ws="none",
            http="h11",
            backlog=512,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        # Connections wait in the listening socket's backlog until the server accepts them,
        # so nothing needs to wait for the thread to be up.
        self._thread = threading.Thread(target=self._server.run, args=([self._sock],))
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def other_url(self) -> str:
        """The same server under another host name (localhost), for cross-host redirects."""
        return f"http://localhost:{self.port}"

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()

    async def app(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        run = {name: headers.get(name) for name in RUN_HEADERS}
        path = scope["path"]
        marker = query.get("marker")
        if path in ("/v1/chat/completions", "/v1/messages"):
            marker = str(json.loads(body)["messages"][-1]["content"])
        self.seen.append((path, marker, run))
        self.facts.append((path, marker, {name: headers.get(name) for name in FACT_HEADERS}))
        echo = {"headers": run, "body_length": len(body), "marker": marker}
        if path == "/redirect":
            to = query.get("to")
            location = [(b"location", to.encode())] if to else []
            await _respond(send, int(query.get("status", "302")), b"", location)
        elif path == "/stream":
            await _stream(send, echo, int(query.get("chunks", "8")))
        elif path == "/flaky" and query["key"] not in self._flaky:
            self._flaky.add(query["key"])
            await _respond(send, 503, b"try again")
        elif marker and marker.startswith("flaky") and marker not in self._flaky:
            # An LLM call that fails once; the SDKs honour retry-after-ms, so no back-off wait.
            self._flaky.add(marker)
            await _respond(send, 503, b"{}", [(b"retry-after-ms", b"1")])
        elif path == "/v1/chat/completions":
            await _json(send, _completion(run["x-run-id"]))
        elif path == "/v1/messages":
            await _json(send, _message(run["x-run-id"]))
        else:
            await _json(send, echo)


async def echo_all(scope: dict[str, Any], receive: Any, send: Send) -> None:
    """An ASGI app that answers with every request header, by lower-case name, as JSON.

    ``/redirect?to=URL`` redirects there (302) instead. For ``LocalServer(echo_all)``.
    """
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if scope["path"] == "/redirect":
        await _respond(send, 302, b"", [(b"location", query["to"].encode())])
        return
    await _json(
        send, {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    )


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, data: object) -> None:
    await _respond(send, 200, json.dumps(data).encode(), [(b"content-type", b"application/json")])


async def _stream(send: Send, echo: dict[str, Any], chunks: int) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    first = json.dumps(echo).encode() + b"\n"
    await send({"type": "http.response.body", "body": first, "more_body": True})
    for _ in range(chunks):
        await send({"type": "http.response.body", "body": b"." * 1024, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _completion(text: str | None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text or "no run"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _message(text: str | None) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "fake",
        "content": [{"type": "text", "text": text or "no run"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    """One real server per test module; tests tell their requests apart by marker."""
    local = LocalServer()
    try:
        yield local
    finally:
        local.close()
