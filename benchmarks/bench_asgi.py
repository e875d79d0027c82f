"""Per-request cost of the ASGI RunIdMiddleware, side by side with asgi-correlation-id.

Each case drives an ASGI app directly, with a prebuilt scope and trivial receive and send, for a
batch of requests in one event loop: no HTTP client or server in the measurement. The scope has
the keys uvicorn gives every request, a fresh copy of the lifespan ``state`` among them. Every
option is at its default. The cost of a middleware is its case minus the bare app's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from asgi_correlation_id import CorrelationIdMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agent_run_id import RunContext, RunId
from agent_run_id._types import ASGIApp, Message, Receive, Scope, Send
from agent_run_id.asgi import RunIdMiddleware

from ._aims import elsewhere
from ._timing import compare

BATCH = 20
NUMBER = 25  # batches a sample
ROUNDS = 61
_BASE_HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"user-agent", b"python-httpx/0.28.1"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
]
_RUN_ID = b"0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"
_REQUEST_ID = b"0b6f5d3e2c1a4e8b9f7d5a4c3b2a1908"  # asgi-correlation-id's own form


def _scope(extra: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": _BASE_HEADERS + extra,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def request(scope: Scope) -> Scope:
    """Return a fresh copy of ``scope``, as a server makes one per request.

    The lifespan ``state`` is copied, and so are the headers: a server parses them anew for each
    request (uvicorn lowercases every name), so each request brings new bytes objects whose
    hashes are not cached yet. A middleware that hashes them pays for it here as it would behind
    a real server.
    """
    headers = [(name.lower(), bytes(bytearray(value))) for name, value in scope["headers"]]
    return {**scope, "headers": headers, "state": dict(scope["state"])}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


async def bare(scope: Scope, receive: object, send: Callable[[Message], object]) -> None:
    """Answer 200 with a two-byte body: the smallest ASGI app."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def _home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def starlette(middleware: type | None) -> ASGIApp:
    app = Starlette(routes=[Route("/", _home)])
    if middleware is not None:
        app.add_middleware(middleware)
    return app


class _RunContextAlone:
    """Enter a ready-made run around the app: the floor of any middleware that enters a run."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.run_id = RunId.generate()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        with RunContext(run_id=self.run_id):
            await self.app(scope, receive, send)


def _runner(loop: asyncio.AbstractEventLoop, app: ASGIApp, scope: Scope) -> Callable[[], None]:
    async def batch() -> None:
        for _ in range(BATCH):
            # A fresh scope per request, as a server makes: the middleware may write to it.
            await app(request(scope), _receive, _send)

    def run() -> None:
        loop.run_until_complete(batch())

    return run


#: The request scopes of the cases: no run id header, ours, and asgi-correlation-id's own.
SCOPES = {
    "no header": _scope([]),
    "x-run-id": _scope([(b"x-run-id", _RUN_ID)]),
    "x-request-id": _scope([(b"x-request-id", _REQUEST_ID)]),
}
#: Each case: its middleware (None for the app alone) and its scope. A case's overhead is its cost
#: over the app alone with the same scope, so that making the request (a header more to copy) is
#: never counted as the middleware's.
CASES: dict[str, tuple[type | None, str]] = {
    "app alone": (None, "no header"),
    "RunContext alone (no header work)": (_RunContextAlone, "no header"),
    "RunIdMiddleware, no header": (RunIdMiddleware, "no header"),
    "CorrelationIdMiddleware, no header": (CorrelationIdMiddleware, "no header"),
    "app alone, with x-run-id": (None, "x-run-id"),
    "RunIdMiddleware, incoming id": (RunIdMiddleware, "x-run-id"),
    "app alone, with x-request-id": (None, "x-request-id"),
    "CorrelationIdMiddleware, incoming id": (CorrelationIdMiddleware, "x-request-id"),
}


def overheads(costs: dict[str, float]) -> dict[str, float]:
    """Return each case's cost over the app alone with the same scope (0 for the app alone)."""
    alone = {scope: costs[name] for name, (app, scope) in CASES.items() if app is None}
    return {name: costs[name] - alone[CASES[name][1]] for name in costs}


#: Our cases, each with asgi-correlation-id's case in the same situation. The aim (issue 3): our
#: overhead at most 0.5x of theirs, counted in instructions by ``count_asgi``.
PEERS = {
    "RunIdMiddleware, no header": "CorrelationIdMiddleware, no header",
    "RunIdMiddleware, incoming id": "CorrelationIdMiddleware, incoming id",
}


def ratio(over: dict[str, float], name: str) -> str:
    """Return our overhead over asgi-correlation-id's in the same situation, or "" if not ours."""
    return f"{over[name] / over[PEERS[name]]:.3f}" if name in PEERS else ""


def main() -> None:
    loop = asyncio.new_event_loop()
    for title, make in (
        ("bare ASGI app", lambda m: bare if m is None else m(bare)),
        ("minimal Starlette app", starlette),
    ):
        cases = {
            name: _runner(loop, make(middleware), SCOPES[scope])
            for name, (middleware, scope) in CASES.items()
        }
        medians = {
            name: t / BATCH for name, t in compare(cases, number=NUMBER, rounds=ROUNDS).items()
        }
        _report(f"ASGI middleware per request, {title} ({BATCH} requests a batch)", medians)
    elsewhere("RunIdMiddleware's overhead <= 0.5x CorrelationIdMiddleware's")
    loop.close()


def _report(title: str, medians: dict[str, float]) -> None:
    over = overheads(medians)
    print(f"\n{title}")
    print(f"  {'case':<40} {'median':>9} {'overhead':>9} {'ours/theirs':>12}")
    for name, value in medians.items():
        print(
            f"  {name:<40} {value * 1e9:>7.0f}ns {over[name] * 1e9:>7.0f}ns {ratio(over, name):>12}"
        )


if __name__ == "__main__":
    main()
