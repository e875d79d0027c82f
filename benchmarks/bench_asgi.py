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

from ._timing import compare

BATCH = 20
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
    """Return a fresh copy of ``scope``, as a server makes one per request (state included)."""
    return {**scope, "state": dict(scope["state"])}


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


def main() -> None:
    loop = asyncio.new_event_loop()
    plain = _scope([])
    ours_in = _scope([(b"x-run-id", _RUN_ID)])
    theirs_in = _scope([(b"x-request-id", _REQUEST_ID)])
    for title, make in (
        ("bare ASGI app", lambda m: bare if m is None else m(bare)),
        ("minimal Starlette app", starlette),
    ):
        cases = {
            "app alone": _runner(loop, make(None), plain),
            "RunContext alone (no header work)": _runner(loop, make(_RunContextAlone), plain),
            "RunIdMiddleware, no header": _runner(loop, make(RunIdMiddleware), plain),
            "CorrelationIdMiddleware, no header": _runner(
                loop, make(CorrelationIdMiddleware), plain
            ),
            "RunIdMiddleware, incoming id": _runner(loop, make(RunIdMiddleware), ours_in),
            "CorrelationIdMiddleware, incoming id": _runner(
                loop, make(CorrelationIdMiddleware), theirs_in
            ),
        }
        medians = {name: t / BATCH for name, t in compare(cases, number=25, rounds=61).items()}
        _report(f"ASGI middleware per request, {title} ({BATCH} requests a batch)", medians)
    loop.close()


def _report(title: str, medians: dict[str, float]) -> None:
    base = medians["app alone"]
    over = {name: value - base for name, value in medians.items()}
    print(f"\n{title}")
    print(f"  {'case':<40} {'median':>9} {'overhead':>9} {'ours/theirs':>12}")
    for name, value in medians.items():
        ratio = ""
        if name.startswith("RunIdMiddleware"):
            theirs = over[name.replace("RunIdMiddleware", "CorrelationIdMiddleware")]
            ratio = f"{over[name] / theirs:.2f}"
        print(f"  {name:<40} {value * 1e9:>7.0f}ns {over[name] * 1e9:>7.0f}ns {ratio:>12}")


if __name__ == "__main__":
    main()
