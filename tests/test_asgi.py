"""agent_run_id.asgi.RunIdMiddleware with Starlette and FastAPI, in process and over uvicorn."""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction, sync_to_async
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

import agent_run_id.logging as run_logging
from agent_run_id import RunContext, RunId, add_run_observer, current_run_id
from agent_run_id._hooks import add_incoming_fallback, remove_incoming_fallback
from agent_run_id._types import Message, Scope
from agent_run_id.asgi import RunIdMiddleware

from ._inbound_helpers import (
    RUN_A,
    RUN_B,
    RUN_C,
    captured,
    is_canonical,
    load_example,
    uvicorn_server,
)


def current() -> str | None:
    run = current_run_id()
    return None if run is None else run.value


class Teapot(Exception):
    pass


def seen(request: Request) -> dict[str, Any]:
    """What a handler sees of its run."""
    run = current_run_id()
    return {
        "current": None if run is None else run.value,
        "parent": None if run is None or run.parent is None else run.parent.value,
        "state": request.state.run_id.value,
        "header": request.headers.getlist("x-run-id"),
        "parent_header": request.headers.getlist("x-parent-run-id"),
    }


def starlette_app(*, outermost: bool = False, **options: Any) -> Any:
    """A fresh Starlette app with one route per behaviour, wrapped in the middleware."""
    background: list[str | None] = []

    async def home(request: Request) -> JSONResponse:
        await asyncio.sleep(0)
        return JSONResponse(seen(request))

    def sync(request: Request) -> JSONResponse:  # Starlette runs it in its thread pool
        return JSONResponse({**seen(request), "thread": threading.current_thread().name})

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            for _ in range(3):
                await asyncio.sleep(0)
                yield f"{current()}\n"

        return StreamingResponse(chunks())

    async def later(request: Request) -> PlainTextResponse:
        task = BackgroundTask(lambda: background.append(current()))
        return PlainTextResponse(current() or "", background=task)

    async def own_header(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"X-Run-Id": "made-up-by-the-app"})

    async def teapot(request: Request) -> None:
        raise Teapot

    async def missing(request: Request) -> None:
        raise HTTPException(404, "nothing here")

    async def boom(request: Request) -> None:
        raise RuntimeError("boom")

    async def on_teapot(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"current": current()}, status_code=418)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"current": current()}, status_code=404)

    async def on_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"current": current()}, status_code=500)

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(current() or "")
        text = await websocket.receive_text()
        await websocket.send_text(f"{text} {current()} {websocket.state.run_id}")
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/sync", sync),
            Route("/stream", stream),
            Route("/later", later),
            Route("/own-header", own_header),
            Route("/teapot", teapot),
            Route("/missing", missing),
            Route("/boom", boom),
            WebSocketRoute("/ws", socket),
        ],
        exception_handlers={Teapot: on_teapot, HTTPException: on_http, 500: on_error},
    )
    app.state.background = background
    if outermost:
        wrapped = RunIdMiddleware(app, **options)
        wrapped.background = background  # type: ignore[attr-defined]
        return wrapped
    app.add_middleware(RunIdMiddleware, **options)
    return app


def client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, **kwargs)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


# --- the run of a request ----------------------------------------------------------------------


async def test_a_request_without_header_gets_a_new_root_run_seen_everywhere() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/")
    body = response.json()
    assert is_canonical(body["current"])
    assert body["state"] == body["current"]
    assert body["header"] == [body["current"]]  # the request header the app reads
    assert body["parent"] is None
    assert response.headers.get_list("x-run-id") == [body["current"]]


async def test_a_valid_incoming_id_is_continued_in_canonical_form() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/", headers={"X-Run-Id": RUN_A.upper().replace("-", "")})
    body = response.json()
    assert body["current"] == body["state"] == RUN_A
    assert body["header"] == [RUN_A]
    assert response.headers.get_list("x-run-id") == [RUN_A]


async def test_the_incoming_lineage_is_continued() -> None:
    headers = {"X-Run-Id": RUN_A, "X-Parent-Run-Id": RUN_B, "X-Root-Run-Id": RUN_C}
    async with client(starlette_app()) as http:
        body = (await http.get("/", headers=headers)).json()
    assert body["current"] == RUN_A
    assert body["parent"] == RUN_B
    assert body["parent_header"] == [RUN_B]


async def test_child_mode_starts_a_child_and_tells_inner_apps_its_lineage() -> None:
    async with client(starlette_app(incoming="child")) as http:
        response = await http.get("/", headers={"X-Run-Id": RUN_A})
    body = response.json()
    assert body["current"] != RUN_A
    assert body["parent"] == RUN_A
    assert body["header"] == [body["current"]]
    assert body["parent_header"] == [RUN_A]
    assert response.headers["x-run-id"] == body["current"]


async def test_ignore_mode_never_takes_the_client_id() -> None:
    async with client(starlette_app(incoming="ignore")) as http:
        response = await http.get("/", headers={"X-Run-Id": RUN_A, "X-Parent-Run-Id": RUN_B})
    body = response.json()
    assert body["current"] != RUN_A
    assert body["parent"] is None
    assert body["parent_header"] == []
    assert response.headers["x-run-id"] == body["current"]


async def test_an_invalid_id_is_replaced_and_never_echoed() -> None:
    bad = "x\x01" + RUN_A
    with captured("agent_run_id") as log:
        async with client(starlette_app()) as http:
            response = await http.get("/", headers={"X-Run-Id": bad})
    body = response.json()
    assert is_canonical(body["current"])
    assert body["header"] == [body["current"]]
    assert response.headers.get_list("x-run-id") == [body["current"]]
    assert len(log.lines) == 1


async def test_reject_answers_400_json_naming_the_header_without_calling_the_app() -> None:
    app = starlette_app(on_invalid="reject", header_name="X-Agent-Run")
    async with client(app) as http:
        response = await http.get("/", headers={"X-Agent-Run": "nope"})
        accepted = await http.get("/", headers={"X-Agent-Run": RUN_A})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert "X-Agent-Run" in response.json()["detail"]
    assert "x-agent-run" not in response.headers
    assert accepted.json()["state"] == RUN_A
    assert accepted.headers["x-agent-run"] == RUN_A


async def test_an_empty_or_blank_header_counts_as_absent_also_under_reject() -> None:
    async with client(starlette_app(on_invalid="reject")) as http:
        answers = [
            await http.get("/", headers=[("X-Run-Id", value), ("X-Parent-Run-Id", value)])
            for value in ("", " ", "\t", " , ")
        ]
    for response in answers:
        assert response.status_code == 200
        body = response.json()
        assert is_canonical(body["current"])
        assert body["header"] == [body["current"]]  # the app reads the id used, not the blank
        assert body["parent"] is None
        assert response.headers.get_list("x-run-id") == [body["current"]]
    assert len({response.json()["current"] for response in answers}) == len(answers)


async def test_spaces_and_tabs_around_an_incoming_id_are_dropped() -> None:
    """Headers as a server may pass them, optional whitespace kept: the id is still taken."""
    sent: list[Message] = []
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = RunIdMiddleware(app, on_invalid="reject")
    for raw in (f"{RUN_A}  ", f"\t{RUN_A}", f" {RUN_A.replace('-', '').upper()}\t"):
        sent.clear()
        seen.clear()
        scope: Scope = {"type": "http", "headers": [(b"x-run-id", raw.encode())]}
        await middleware(scope, None, send)  # type: ignore[arg-type]
        assert dict(sent[0]["headers"])[b"x-run-id"] == RUN_A.encode()
        assert seen[0]["headers"] == [(b"x-run-id", RUN_A.encode())]


async def test_repeated_headers_with_two_values_count_as_invalid() -> None:
    async with client(starlette_app()) as http:
        same = await http.get("/", headers=[("X-Run-Id", RUN_A), ("X-Run-Id", RUN_A)])
        differ = await http.get("/", headers=[("X-Run-Id", RUN_A), ("X-Run-Id", RUN_B)])
    assert same.json()["current"] == RUN_A
    assert same.json()["header"] == [RUN_A]
    assert differ.json()["current"] not in (RUN_A, RUN_B)
    assert differ.headers.get_list("x-run-id") == [differ.json()["current"]]


async def test_every_request_starts_its_own_run_and_restores_the_one_it_came_in() -> None:
    app = starlette_app()
    with RunContext() as stale:
        async with client(app) as http:
            first = (await http.get("/")).json()
            second = (await http.get("/")).json()
        assert current_run_id() is stale.run_id
    assert stale.run_id.value not in (first["current"], second["current"])
    assert first["parent"] is None
    assert second["parent"] is None
    assert first["current"] != second["current"]


async def test_run_observers_see_each_request_run_start_and_end() -> None:
    events: list[tuple[str, str]] = []

    def observe(run: RunId, context: RunContext) -> Any:
        events.append(("start", run.value))
        return lambda exc: events.append(("end", run.value))

    add_run_observer(observe)
    async with client(starlette_app()) as http:
        await http.get("/", headers={"X-Run-Id": RUN_A})
    assert events == [("start", RUN_A), ("end", RUN_A)]


# --- where the run is current ------------------------------------------------------------------


async def test_a_sync_handler_in_the_thread_pool_sees_the_run() -> None:
    async with client(starlette_app()) as http:
        body = (await http.get("/sync", headers={"X-Run-Id": RUN_A})).json()
    assert body["current"] == RUN_A
    assert body["thread"] != threading.current_thread().name


async def test_a_streaming_body_is_produced_inside_the_run() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/stream", headers={"X-Run-Id": RUN_A})
    assert response.text.split() == [RUN_A] * 3
    assert response.headers["x-run-id"] == RUN_A


async def test_background_tasks_run_inside_the_run() -> None:
    app = starlette_app()
    async with client(app) as http:
        response = await http.get("/later", headers={"X-Run-Id": RUN_A})
    assert response.text == RUN_A
    assert app.state.background == [RUN_A]


async def test_exception_handlers_see_the_run_and_answer_with_the_header() -> None:
    async with client(starlette_app()) as http:
        teapot = await http.get("/teapot", headers={"X-Run-Id": RUN_A})
        missing = await http.get("/missing", headers={"X-Run-Id": RUN_B})
    assert (teapot.status_code, teapot.json()["current"]) == (418, RUN_A)
    assert teapot.headers.get_list("x-run-id") == [RUN_A]
    assert (missing.status_code, missing.json()["current"]) == (404, RUN_B)
    assert missing.headers.get_list("x-run-id") == [RUN_B]


async def test_an_app_set_header_is_replaced_not_duplicated() -> None:
    async with client(starlette_app()) as http:
        response = await http.get("/own-header", headers={"X-Run-Id": RUN_A})
    assert response.headers.get_list("x-run-id") == [RUN_A]


# --- the 500 of an unhandled exception ---------------------------------------------------------


async def test_add_middleware_leaves_the_unhandled_500_without_the_header() -> None:
    """Starlette's add_middleware puts us inside ServerErrorMiddleware, which sends the 500."""
    async with client(starlette_app(), raise_app_exceptions=False) as http:
        response = await http.get("/boom", headers={"X-Run-Id": RUN_A})
    assert response.status_code == 500
    assert response.json() == {"current": None}
    assert "x-run-id" not in response.headers


async def test_wrapping_outermost_puts_the_header_on_the_unhandled_500() -> None:
    async with client(starlette_app(outermost=True), raise_app_exceptions=False) as http:
        response = await http.get("/boom", headers={"X-Run-Id": RUN_A})
    assert response.status_code == 500
    assert response.json() == {"current": RUN_A}  # the 500 handler ran inside the run
    assert response.headers.get_list("x-run-id") == [RUN_A]


@pytest.mark.parametrize("outermost", [False, True])
async def test_the_unhandled_exception_carries_the_run_note(outermost: bool) -> None:
    async with client(starlette_app(outermost=outermost)) as http:
        with pytest.raises(RuntimeError, match="boom") as caught:
            await http.get("/boom", headers={"X-Run-Id": RUN_A})
    if sys.version_info >= (3, 11):  # PEP 678 notes
        assert caught.value.__notes__ == [f"run_id={RUN_A}"]


# --- scopes --------------------------------------------------------------------------------------


async def test_lifespan_and_unknown_scopes_pass_through_untouched() -> None:
    calls: list[tuple[Scope, Any, Any, Any]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        calls.append((scope, receive, send, current_run_id()))

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    async def send(message: Message) -> None:
        return None

    middleware = RunIdMiddleware(app)
    for kind in ("lifespan", "custom"):
        scope: Scope = {"type": kind}
        await middleware(scope, receive, send)
        assert calls.pop() == (scope, receive, send, None)
        assert scope == {"type": kind}


async def drive_websocket(app: Any, headers: list[tuple[bytes, bytes]]) -> list[Message]:
    """Run one WebSocket session through ``app`` directly; return what it sent."""
    incoming = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hello"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/ws", "headers": headers, "query_string": b""}
    await app(scope, receive, send)
    return sent


async def test_a_websocket_session_runs_inside_the_run_with_the_id_in_the_handshake() -> None:
    sent = await drive_websocket(starlette_app(), [(b"x-run-id", RUN_A.encode())])
    accept, first, second, close = sent
    assert accept["type"] == "websocket.accept"
    assert [v for k, v in accept["headers"] if k == b"x-run-id"] == [RUN_A.encode()]
    assert first["text"] == RUN_A
    assert second["text"] == f"hello {RUN_A} {RUN_A}"
    assert close["type"] == "websocket.close"


async def test_reject_closes_a_websocket_with_an_invalid_id_before_the_handshake() -> None:
    sent = await drive_websocket(starlette_app(on_invalid="reject"), [(b"x-run-id", b"no")])
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_response_header_false_sends_no_header() -> None:
    async with client(starlette_app(response_header=False)) as http:
        response = await http.get("/", headers={"X-Run-Id": RUN_A})
    assert response.json()["current"] == RUN_A
    assert "x-run-id" not in response.headers
    sent = await drive_websocket(starlette_app(response_header=False), [])
    assert sent[0]["type"] == "websocket.accept"
    assert b"x-run-id" not in dict(sent[0].get("headers", []))


# --- FastAPI -----------------------------------------------------------------------------------


def fastapi_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(RunIdMiddleware)
    app.state.after = []

    async def async_dependency() -> AsyncIterator[str | None]:
        yield current()
        app.state.after.append(("async", current()))

    def sync_dependency() -> Iterator[str | None]:
        yield current()
        app.state.after.append(("sync", current()))

    @app.get("/")
    async def home(
        request: Request,
        before_async: str | None = Depends(async_dependency),
        before_sync: str | None = Depends(sync_dependency),
    ) -> dict[str, Any]:
        return {
            "current": current(),
            "state": request.state.run_id.value,
            "before_async": before_async,
            "before_sync": before_sync,
        }

    return app


async def test_fastapi_dependencies_with_yield_see_the_run_before_and_after() -> None:
    app = fastapi_app()
    async with client(app) as http:
        response = await http.get("/", headers={"X-Run-Id": RUN_A})
    assert response.json() == {
        "current": RUN_A,
        "state": RUN_A,
        "before_async": RUN_A,
        "before_sync": RUN_A,
    }
    assert sorted(app.state.after) == [("async", RUN_A), ("sync", RUN_A)]
    assert response.headers.get_list("x-run-id") == [RUN_A]


# --- CORS --------------------------------------------------------------------------------------


async def test_cors_exposes_the_header_to_browsers() -> None:
    app = starlette_app()
    app.add_middleware(
        CORSMiddleware, allow_origins=["https://ui.example"], expose_headers=["X-Run-Id"]
    )
    async with client(app) as http:
        response = await http.get("/", headers={"Origin": "https://ui.example", "X-Run-Id": RUN_A})
    assert response.headers["access-control-allow-origin"] == "https://ui.example"
    assert response.headers["access-control-expose-headers"].lower() == "x-run-id"
    assert response.headers.get_list("x-run-id") == [RUN_A]


# --- a real server -----------------------------------------------------------------------------


def test_over_uvicorn_keep_alive_requests_never_share_a_run() -> None:
    with uvicorn_server(starlette_app()) as url, httpx.Client(base_url=url) as http:
        first = http.get("/", headers={"X-Run-Id": RUN_A})
        second = http.get("/")
        third = http.get("/sync")
    assert first.json()["current"] == RUN_A
    for response in (second, third):
        body = response.json()
        assert body["current"] not in (RUN_A, None)
        assert body["parent"] is None
        assert response.headers["x-run-id"] == body["current"]
    assert second.json()["current"] != third.json()["current"]


def test_over_uvicorn_the_outermost_wrap_names_the_run_on_the_500() -> None:
    # The client may get the 500 before uvicorn logs the error: keep capturing until the
    # server has stopped, which waits for the request to finish.
    with (
        captured("uvicorn.error", logging.ERROR) as log,
        uvicorn_server(starlette_app(outermost=True)) as url,
        httpx.Client(base_url=url) as http,
    ):
        response = http.get("/boom", headers={"X-Run-Id": RUN_A})
    assert response.status_code == 500
    assert response.headers.get_list("x-run-id") == [RUN_A]
    assert log.lines
    assert "Exception in ASGI application" in log.lines[0][1]
    if sys.version_info >= (3, 11):  # the server's traceback names the run (PEP 678 note)
        exc_info = log.records[0].exc_info
        assert exc_info is not None
        assert f"run_id={RUN_A}" in exc_info[1].__notes__


def test_over_uvicorn_fastapi_and_streaming_and_background_see_the_run() -> None:
    app = fastapi_app()
    with uvicorn_server(app) as url, httpx.Client(base_url=url) as http:
        response = http.get("/", headers={"X-Run-Id": RUN_B})
    assert response.json()["before_sync"] == RUN_B
    assert response.headers["x-run-id"] == RUN_B
    starlette = starlette_app()
    with uvicorn_server(starlette) as url, httpx.Client(base_url=url) as http:
        streamed = http.get("/stream", headers={"X-Run-Id": RUN_A})
        later = http.get("/later", headers={"X-Run-Id": RUN_C})
    assert streamed.text.split() == [RUN_A] * 3
    assert later.text == RUN_C
    assert starlette.state.background == [RUN_C]


def test_over_uvicorn_a_websocket_gets_the_id_in_the_handshake() -> None:
    from websockets.sync.client import connect

    with uvicorn_server(starlette_app()) as url:
        ws_url = url.replace("http", "ws") + "/ws"
        with connect(ws_url, additional_headers={"X-Run-Id": RUN_A}) as socket:
            assert socket.response is not None
            assert socket.response.headers.get_all("x-run-id") == [RUN_A]
            assert socket.recv() == RUN_A
            socket.send("hi")
            assert socket.recv() == f"hi {RUN_A} {RUN_A}"


def test_over_uvicorn_reject_refuses_a_websocket_handshake_with_an_invalid_id() -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with uvicorn_server(starlette_app(on_invalid="reject")) as url:
        ws_url = url.replace("http", "ws") + "/ws"
        with pytest.raises(InvalidStatus) as caught:
            connect(ws_url, additional_headers={"X-Run-Id": "not-a-run"})
        with connect(ws_url, additional_headers={"X-Run-Id": RUN_A}) as socket:
            assert socket.recv() == RUN_A
    assert caught.value.response.status_code == 403


def test_over_uvicorn_a_client_leaving_mid_stream_ends_the_run() -> None:
    ended = threading.Event()
    gate = threading.Event()
    events: list[tuple[str, Any]] = []

    def observe(run: RunId, context: RunContext) -> Any:
        events.append(("start", run.value))

        def finish(exc: BaseException | None) -> None:
            events.append(("end", run.value))
            ended.set()

        return finish

    async def endless(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[str]:
            while True:
                yield f"{current()}\n"
                gate.set()
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks())

    async def plain(request: Request) -> PlainTextResponse:
        run = current_run_id()
        assert run is not None
        return PlainTextResponse(f"{run.value} {run.parent}")

    app = Starlette(routes=[Route("/endless", endless), Route("/plain", plain)])
    app.add_middleware(RunIdMiddleware)
    add_run_observer(observe)
    with uvicorn_server(app) as url:
        with (
            httpx.Client(base_url=url) as http,
            http.stream("GET", "/endless", headers={"X-Run-Id": RUN_A}) as response,
        ):
            first = next(response.iter_lines())
            assert gate.wait(10)
        assert first == RUN_A
        assert ended.wait(10), "the run of the abandoned stream never ended"
        with httpx.Client(base_url=url) as http:
            value, parent = http.get("/plain").text.split()
    assert value != RUN_A
    assert parent == "None"
    assert events[:2] == [("start", RUN_A), ("end", RUN_A)]


def test_over_uvicorn_500_concurrent_requests_never_mix_their_runs() -> None:
    """Every log line, response header and current run matches its own request."""
    count = 500
    arrived = 0
    everyone_in: asyncio.Event | None = None
    logger = logging.getLogger("tests.asgi.concurrency")

    async def work(request: Request) -> PlainTextResponse:
        nonlocal arrived, everyone_in
        if everyone_in is None:
            everyone_in = asyncio.Event()
        arrived += 1
        if arrived == count:
            everyone_in.set()
        logger.info("start %s", request.headers["x-run-id"])
        # Every handler is in flight at once before any of them answers.
        await asyncio.wait_for(everyone_in.wait(), 30)
        logger.info("end %s", request.headers["x-run-id"])
        return PlainTextResponse(current() or "")

    app = Starlette(routes=[Route("/work", work)])
    app.add_middleware(RunIdMiddleware)
    ids = [RunId.generate().value for _ in range(count)]

    async def main(url: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
            return await asyncio.gather(
                *(http.get("/work", headers={"X-Run-Id": value}) for value in ids)
            )

    run_logging.install()
    with captured("tests.asgi.concurrency", logging.INFO) as log, uvicorn_server(app) as url:
        responses = asyncio.run(main(url))
    assert [(r.status_code, r.text, r.headers["x-run-id"]) for r in responses] == [
        (200, value, value) for value in ids
    ]
    assert len(log.lines) == 2 * count
    for run_id, message in log.lines:
        assert message.split()[1] == run_id
    assert {run_id for run_id, _ in log.lines} == set(ids)


# --- any header bytes --------------------------------------------------------------------------


async def bare(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-run-id", b"!")]})
    await send({"type": "http.response.body", "body": b""})


header_values = st.lists(st.binary(max_size=80), max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=header_values,
    parents=header_values,
    roots=header_values,
    incoming=st.sampled_from(["continue", "child", "ignore"]),
    on_invalid=st.sampled_from(["replace", "reject"]),
)
def test_any_header_bytes_never_raise_and_only_a_canonical_id_goes_out(
    values: list[bytes],
    parents: list[bytes],
    roots: list[bytes],
    incoming: str,
    on_invalid: str,
) -> None:
    sent: list[Message] = []
    seen: list[Scope] = []
    given_headers = (
        [(b"x-run-id", v) for v in values]
        + [(b"x-parent-run-id", v) for v in parents]
        + [(b"x-root-run-id", v) for v in roots]
    )
    server_headers = list(given_headers)
    scope: Scope = {"type": "http", "headers": server_headers}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(scope)
        await bare(scope, receive, send)

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = RunIdMiddleware(app, incoming=incoming, on_invalid=on_invalid)
    asyncio.run(middleware(scope, receive, send))
    assert server_headers == given_headers  # the server's list of headers is never changed
    if not seen:  # rejected: only for an id that came and is not a valid one
        assert on_invalid == "reject"
        assert incoming != "ignore"
        assert values
        assert sent[0]["status"] == 400
        assert b"X-Run-Id" in sent[1]["body"]
        assert not any(k == b"x-run-id" for k, _ in sent[0]["headers"])
        return
    out = [v for k, v in sent[0]["headers"] if k.lower() == b"x-run-id"]
    assert len(out) == 1
    assert is_canonical(out[0].decode("ascii"))
    inner = [v for k, v in seen[0]["headers"] if k == b"x-run-id"]
    assert inner == out  # the app reads the id actually used, once
    for name, value in seen[0]["headers"]:
        if name in (b"x-parent-run-id", b"x-root-run-id") and (name, value) not in given_headers:
            assert is_canonical(value.decode("ascii"))
    for value in values:
        if not is_canonical(value.decode("latin-1")):
            assert value != out[0]


async def test_the_headers_of_a_sent_message_are_not_mutated_in_place() -> None:
    headers = [(b"content-type", b"text/plain")]
    sent: list[Message] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})

    async def send(message: Message) -> None:
        sent.append(message)

    await RunIdMiddleware(app)({"type": "http", "headers": []}, None, send)  # type: ignore[arg-type]
    assert headers == [(b"content-type", b"text/plain")]
    assert len(sent[0]["headers"]) == 2


async def test_a_start_message_the_app_sends_again_never_carries_an_earlier_run() -> None:
    """The app's own message dict is left as it was: a reused one must not leak a run id."""
    start: Message = {"type": "http.response.start", "status": 200, "headers": []}
    sent: list[Message] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send(start)

    async def send(message: Message) -> None:
        sent.append(message)

    wrapped = RunIdMiddleware(app)
    await wrapped({"type": "http", "headers": []}, None, send)  # type: ignore[arg-type]
    await app({"type": "http", "headers": []}, None, send)  # the same app, not wrapped
    assert start == {"type": "http.response.start", "status": 200, "headers": []}
    assert [k for k, _ in sent[0]["headers"]] == [b"x-run-id"]
    assert sent[1]["headers"] == []


@pytest.mark.parametrize("observed", [False, True], ids=["no observer", "with an observer"])
async def test_a_request_called_inside_a_leftover_run_starts_from_no_run(observed: bool) -> None:
    """A server that calls us in a context still holding a run: the request never nests in it."""
    started: list[tuple[RunId, RunId | None]] = []
    seen: list[tuple[RunId | None, RunId | None]] = []

    def observer(run_id: RunId, context: RunContext) -> None:
        started.append((run_id, run_id.parent))

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        with RunContext() as step:  # a nested run of the request's own
            seen.append((current_run_id(), step.run_id.parent))
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Message) -> None:
        pass

    if observed:
        add_run_observer(observer)
    with RunContext() as leftover:
        await RunIdMiddleware(app)({"type": "http", "headers": []}, None, send)  # type: ignore[arg-type]
        assert current_run_id() == leftover.run_id  # and it is back afterwards
    ((step_run, step_parent),) = seen
    assert step_parent is not None
    assert step_parent != leftover.run_id
    assert step_parent.parent is None  # the request's run is a root run
    if observed:
        assert [run for run, _ in started[1:]] == [step_parent, step_run]


async def test_a_request_inside_a_leftover_run_is_not_recorded_in_that_runs_registry(
    tmp_path: Any,
) -> None:
    """Nested runs go to their enclosing run's registry: a request's run has none to enclose it."""
    from agent_run_id.registry import SQLiteRunRegistry

    registry = SQLiteRunRegistry(tmp_path / "runs.db")

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Message) -> None:
        pass

    try:
        with RunContext(registry=registry) as leftover:
            await RunIdMiddleware(app)({"type": "http", "headers": []}, None, send)  # type: ignore[arg-type]
        registry.flush()
        assert [record.run_id for record in registry.find()] == [leftover.run_id.value]
    finally:
        registry.close()


async def test_an_error_escaping_the_app_carries_the_note_on_the_fast_path() -> None:
    """Without observers the middleware enters the run itself; the note must still be there."""

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        raise LookupError("tool failed")

    run_id = RunId.generate()
    with pytest.raises(LookupError) as caught:
        await RunIdMiddleware(app)(
            {"type": "http", "headers": [(b"x-run-id", run_id.value.encode())]},
            None,  # type: ignore[arg-type]
            None,  # type: ignore[arg-type]
        )
    if sys.version_info >= (3, 11):
        assert caught.value.__notes__ == [f"run_id={run_id.value}"]
    assert current_run_id() is None


def test_the_reject_answer_is_plain_json() -> None:
    middleware = RunIdMiddleware(bare, on_invalid="reject")
    assert json.loads(middleware.policy.reject_body)["detail"].startswith("invalid X-Run-Id")


async def test_an_incoming_fallback_reads_the_request_headers_when_no_id_came() -> None:
    asked: list[tuple[str | None, ...]] = []

    def from_baggage(get_header: Any) -> RunId:
        asked.append((get_header("baggage"), get_header("Content-Type"), get_header("absent")))
        return RunId(RUN_B)

    add_incoming_fallback(from_baggage)
    try:
        async with client(starlette_app()) as http:
            headers = [("baggage", "a=1"), ("baggage", "b=2"), ("content-type", "text/x")]
            response = await http.get("/", headers=headers)
    finally:
        remove_incoming_fallback(from_baggage)
    assert response.json()["current"] == RUN_B
    assert response.headers["x-run-id"] == RUN_B
    assert asked == [("a=1,b=2", "text/x", None)]


async def test_the_fastapi_example_answers_inside_its_run_and_exposes_the_header() -> None:
    example = load_example("fastapi_app")
    async with client(example.app) as http:
        response = await http.get(
            "/agent",
            params={"task": "abc"},
            headers={"X-Run-Id": RUN_A, "Origin": "http://localhost:3000"},
        )
    assert response.json() == {"run_id": RUN_A, "result": "cba"}
    assert response.headers.get_list("x-run-id") == [RUN_A]
    assert response.headers["access-control-expose-headers"] == "X-Run-Id"


async def test_a_callable_incoming_decides_per_request_from_the_scope() -> None:
    def trust_internal(scope: Scope) -> str:
        return "continue" if scope["client"][0].startswith("10.") else "ignore"

    inside = client(starlette_app(incoming=trust_internal), client=("10.0.0.7", 5000))
    outside = client(starlette_app(incoming=trust_internal), client=("203.0.113.9", 5000))
    async with inside as trusted, outside as untrusted:
        kept = await trusted.get("/", headers={"X-Run-Id": RUN_A})
        ignored = await untrusted.get("/", headers={"X-Run-Id": RUN_A})
    assert kept.json()["current"] == RUN_A
    assert ignored.json()["current"] != RUN_A
    assert ignored.headers["x-run-id"] == ignored.json()["current"]


async def one_bare_request(headers: list[Any]) -> tuple[RunId | None, list[Message]]:
    """Send one request with ``headers`` to a bare app: the run it saw, and the messages sent."""
    seen: list[RunId | None] = []
    sent: list[Message] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(current_run_id())
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Message) -> None:
        sent.append(message)

    await RunIdMiddleware(app)({"type": "http", "headers": headers}, None, send)  # type: ignore[arg-type]
    (run,) = seen
    return run, sent


@pytest.mark.parametrize(
    "placeholder",
    [b"00000000-0000-0000-0000-000000000000", b"ffffffff-ffff-ffff-ffff-ffffffffffff"],
)
async def test_the_nil_and_max_uuids_are_replaced_like_any_invalid_id(placeholder: bytes) -> None:
    """Canonical in shape, but placeholders: the quick canonical check must refuse them too."""
    run, sent = await one_bare_request([(b"x-run-id", placeholder)])
    assert run is not None
    assert run.value.encode() != placeholder
    assert dict(sent[0]["headers"])[b"x-run-id"] == run.value.encode()


@pytest.mark.parametrize("incoming", [[], [(b"x-run-id", RUN_A.encode())]], ids=["none", "valid"])
async def test_what_the_app_writes_in_its_scope_reaches_the_outer_layers(
    incoming: list[tuple[bytes, bytes]],
) -> None:
    """Starlette's router writes "route", "endpoint", "root_path" in place, for outer layers.

    OpenTelemetry's and Sentry's middleware read them after the app returns, so the scope goes
    on as the server gave it, not as a copy; a new header list replaces the server's (never
    changed) when the run id header is rewritten. With and without an id that needs no rewrite.
    """
    route = Route("/items", _plain_ok)
    inner = Starlette(routes=[Mount("/api", routes=[route])])
    server_headers = [(b"host", b"127.0.0.1"), *incoming]
    server_scope: Scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/items",
        "raw_path": b"/api/items",
        "root_path": "",
        "query_string": b"",
        "headers": server_headers,
        "state": {},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await RunIdMiddleware(inner)(server_scope, receive, send)
    assert sent[0]["status"] == 200
    assert server_scope["route"] is route
    assert server_scope["endpoint"] is _plain_ok
    assert server_scope["root_path"] == "/api"
    run = server_scope["state"]["run_id"]
    assert isinstance(run, RunId)
    assert server_headers == [(b"host", b"127.0.0.1"), *incoming]
    assert server_scope["headers"] == [(b"host", b"127.0.0.1"), (b"x-run-id", run.value.encode())]


async def test_opentelemetry_outside_still_labels_its_metrics_with_the_route() -> None:
    """OpenTelemetry's ASGI middleware outermost, as FastAPIInstrumentor puts it, ours inside.

    It reads the route FastAPI wrote in the scope after the app returns: its duration metric
    has the route template, not nothing (and never the path, one series per item).
    """
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    api = FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    api.add_middleware(RunIdMiddleware)
    app = OpenTelemetryMiddleware(api, tracer_provider=TracerProvider(), meter_provider=meters)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        responses = [await client.get(f"/items/{n}") for n in (1, 2)]
    assert [r.json() for r in responses] == [{"item": 1}, {"item": 2}]
    assert all(is_canonical(r.headers["x-run-id"]) for r in responses)
    data = reader.get_metrics_data()
    assert data is not None
    # The names OpenTelemetry reports by default. (With OTEL_SEMCONV_STABILITY_OPT_IN=http alone,
    # its ASGI middleware labels no metric with the route at all, and this test cannot pass.)
    targets = [
        (point.attributes or {}).get("http.target")
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "http.server.duration"
        for point in metric.data.data_points
    ]
    assert targets == ["/items/{item_id}"]
    meters.shutdown()


async def _plain_ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def test_the_send_the_app_gets_is_a_coroutine_function() -> None:
    """asgiref's async_to_sync (Django Channels' sync consumers) warns on any other callable.

    asgiref comes with opentelemetry-instrumentation-asgi, one of the dev extras. asgiref's,
    asyncio's and inspect's checks must all say so, and asgiref's for a functools.partial of it.
    """
    checks: list[bool] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        with warnings.catch_warnings():  # asyncio.iscoroutinefunction is deprecated in 3.14
            warnings.simplefilter("ignore", DeprecationWarning)
            by_asyncio = asyncio.iscoroutinefunction(send)
        checks.extend((iscoroutinefunction(send), by_asyncio, inspect.iscoroutinefunction(send)))
        checks.append(iscoroutinefunction(functools.partial(send)))
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Message) -> None:
        return None

    await RunIdMiddleware(app)({"type": "http", "headers": []}, None, send)  # type: ignore[arg-type]
    assert checks == [True, True, True, True]


async def test_a_sync_consumer_sends_through_async_to_sync_with_no_warning() -> None:
    """As Django Channels' sync consumers send: async_to_sync(send), called in a worker thread."""
    sent: list[Message] = []

    def consumer(send: Any) -> None:
        reply = async_to_sync(send)  # warns (an error here) unless send is a coroutine function
        reply({"type": "http.response.start", "status": 200, "headers": []})
        reply({"type": "http.response.body", "body": b"ok"})

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        await sync_to_async(consumer)(send)

    loop_thread = threading.get_ident()
    threads: list[int] = []

    def server_send(message: Message) -> asyncio.Future[None]:
        # A server's send may do its work when called, as a native one does: only on the loop.
        threads.append(threading.get_ident())
        loop = asyncio.get_running_loop()  # raises off the loop, as a native send may
        sent.append(message)
        done: asyncio.Future[None] = loop.create_future()
        done.set_result(None)
        return done

    await RunIdMiddleware(app)({"type": "http", "headers": []}, None, server_send)  # type: ignore[arg-type]
    assert threads == [loop_thread, loop_thread]
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    ((name, value),) = sent[0]["headers"]
    assert name == b"x-run-id"
    assert is_canonical(value.decode("ascii"))


@pytest.mark.parametrize("incoming", [[], [(b"x-run-id", RUN_A.encode())]], ids=["none", "valid"])
async def test_headers_in_an_iterator_all_reach_the_app(
    incoming: list[tuple[bytes, bytes]],
) -> None:
    """The spec allows any iterable of headers: the middleware's scan must not use them up."""
    given = [(b"host", b"127.0.0.1"), (b"accept", b"*/*"), *incoming]
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        seen.append(list(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: Message) -> None:
        return None

    scope: Scope = {"type": "http", "headers": iter(given)}
    await RunIdMiddleware(app)(scope, None, send)  # type: ignore[arg-type]
    (headers,) = seen
    assert headers[:2] == given[:2]
    assert [value for name, value in headers if name == b"x-run-id"] == [
        scope["state"]["run_id"].value.encode()
    ]


async def test_a_canonical_id_in_a_bytearray_is_taken_not_a_crash() -> None:
    """The spec says bytes; a server that passes a bytearray must still get its request run."""
    run, sent = await one_bare_request([(b"x-run-id", bytearray(RUN_A.encode()))])
    assert run == RunId(RUN_A)
    assert bytes(dict(sent[0]["headers"])[b"x-run-id"]) == RUN_A.encode()
