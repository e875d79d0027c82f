"""The ASGI middleware's header bytes: reading repeats, the request's rewrite, the response's.

Plain functions over the ``(name, value)`` byte pairs of ASGI messages, for ``asgi.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from ._propagation import PARENT_HEADER, ROOT_HEADER, SESSION_HEADER, run_headers
from ._run_id import RunId
from ._types import Message, Scope, Send

__all__ = [
    "PARENT_KEY",
    "ROOT_KEY",
    "SESSION_KEY",
    "Bound",
    "header_getter",
    "joined",
    "request_headers",
    "response_sender",
]

#: The lineage headers as ASGI servers give them: lower-case bytes.
PARENT_KEY = PARENT_HEADER.lower().encode("ascii")
ROOT_KEY = ROOT_HEADER.lower().encode("ascii")
SESSION_KEY = SESSION_HEADER.lower().encode("ascii")
# The messages that carry the response headers: of a response, of an accepted WebSocket
# handshake, and of a handshake denied with a response (the ASGI "websocket.http.response" ext).
_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})

#: What each request's response send is bound to: the server's send and the run id header.
Bound = tuple[Send, tuple[bytes, bytes]]


def response_sender(key: bytes) -> Callable[[Bound, Message], Coroutine[Any, Any, None]]:
    """Return the send of a middleware whose header is ``key``, to bind to each request's own.

    Bound as a method of the tuple ``(send, (key, value))`` (the cheapest binding to make per
    request: no closure, no ``functools.partial``), it adds the run id header to the messages
    that carry the response headers, replacing one the app set itself, and passes every message
    on. An ``async def``, so that it does its work when awaited, on the event loop, and callers
    that check (asgiref's ``async_to_sync``, which Django Channels' sync consumers use) see a
    coroutine function on every Python version.
    """
    size = len(key)

    async def send_with_run(bound: Bound, message: Message) -> None:
        send, header = bound
        if message["type"] in _STARTS:
            # A new list and a new message: the app may send the same ones again. ASGI messages
            # are dicts, so copy() is there (and quicker than dict()).
            headers = [*message.get("headers", ())]
            for name, _ in headers:
                if len(name) == size and name.lower() == key:  # the app set its own
                    headers = [pair for pair in headers if pair[0].lower() != key]
                    break
            headers.append(header)
            message = message.copy()  # type: ignore[attr-defined]
            message["headers"] = headers
        await send(message)

    return send_with_run


def joined(
    headers: list[tuple[bytes, bytes]], key: bytes
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None]:
    """Return the run id header ``key``, the two lineage ones and the session's, repeats joined.

    As HTTP reads a repeated header (with commas); None for one that did not come.
    """
    found: tuple[list[bytes], list[bytes], list[bytes], list[bytes]] = ([], [], [], [])
    runs, parents, roots, sessions = found
    for name, field in headers:
        if name == key:
            runs.append(field)
        elif name == PARENT_KEY:
            parents.append(field)
        elif name == ROOT_KEY:
            roots.append(field)
        elif name == SESSION_KEY:
            sessions.append(field)
    return (
        b",".join(runs) if runs else None,
        b",".join(parents) if parents else None,
        b",".join(roots) if roots else None,
        b",".join(sessions) if sessions else None,
    )


def header_getter(scope: Scope) -> Callable[[str], str | None]:
    """Return a reader of the scope's request headers by lower-case name, repeats joined."""

    def get_header(name: str) -> str | None:
        key = name.lower().encode("latin-1")
        values = [
            value.decode("latin-1") for item, value in scope.get("headers", ()) if item == key
        ]
        return ",".join(values) if values else None

    return get_header


def request_headers(
    headers: list[tuple[bytes, bytes]],
    names: frozenset[bytes],
    run: RunId,
    header: tuple[bytes, bytes],
) -> list[tuple[bytes, bytes]]:
    """Return the request headers with the run's own (``header`` first) in place of ``names``."""
    kept = [pair for pair in headers if pair[0] not in names]
    kept.append(header)
    for name, lineage in run_headers(run)[1:]:
        kept.append((name.lower().encode("ascii"), lineage.encode("ascii")))
    return kept
