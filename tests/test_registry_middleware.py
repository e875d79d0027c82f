"""The middlewares record each request's run: in their registry= or in the default registry."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from werkzeug.test import Client

from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id.asgi import RunIdMiddleware as AsgiMiddleware
from agent_run_id.registry import SQLiteRunRegistry, set_default
from agent_run_id.wsgi import RunIdMiddleware as WsgiMiddleware


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[SQLiteRunRegistry]:
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    try:
        yield registry
    finally:
        set_default(None)
        registry.close()


async def ok(request: Request) -> PlainTextResponse:
    with RunContext(task="tool call"):
        pass
    return PlainTextResponse(str(current_run_id()))


async def fail(request: Request) -> PlainTextResponse:
    raise TimeoutError("tool timed out")


def asgi_app(**options: object) -> AsgiMiddleware:
    app = Starlette(routes=[Route("/ok", ok), Route("/fail", fail)])
    return AsgiMiddleware(app, **options)  # type: ignore[arg-type]


async def test_asgi_requests_are_recorded_in_the_middlewares_registry(
    registry: SQLiteRunRegistry,
) -> None:
    transport = httpx.ASGITransport(app=asgi_app(registry=registry), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get("/ok") for _ in range(50)))
        failed = await client.get("/fail")
    for response in responses:
        run = response.headers["x-run-id"]
        assert registry.get(run).status == "ok"
        (child,) = registry.children(run)
        assert child.task == "tool call"
    assert failed.status_code == 500
    record = registry.get(failed.headers["x-run-id"])
    assert (record.status, record.error) == ("error", "TimeoutError: tool timed out")


async def test_asgi_requests_go_to_the_default_registry_without_the_option(
    registry: SQLiteRunRegistry,
) -> None:
    set_default(registry)
    transport = httpx.ASGITransport(app=asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/ok")
    assert registry.get(response.headers["x-run-id"]).status == "ok"


def test_wsgi_requests_are_recorded_when_their_response_closes(
    registry: SQLiteRunRegistry,
) -> None:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
        return [b"hello"]

    client = Client(WsgiMiddleware(app, registry=registry))
    response = client.get("/")
    run = response.headers["X-Run-Id"]
    assert registry.get(run).status == "running"  # until the server closes the response
    response.close()
    assert registry.get(run).status == "ok"


@pytest.mark.parametrize("middleware", [AsgiMiddleware, WsgiMiddleware])
def test_a_registry_option_that_is_not_a_registry_is_refused(middleware: type) -> None:
    with pytest.raises(TypeError, match="registry must be a RunRegistry, a SQLite file's path"):
        middleware(lambda *a: None, registry=42)


async def test_a_service_continuing_the_callers_run_keeps_the_callers_record(
    registry: SQLiteRunRegistry,
) -> None:
    """The callee's middleware enters the same run: it must not reset or end the caller's record."""
    from agent_run_id.httpx import AsyncRunIdTransport

    callee = httpx.ASGITransport(app=asgi_app(registry=registry))
    client = httpx.AsyncClient(transport=AsyncRunIdTransport(callee), base_url="http://tool.test")
    run = RunContext(RunId.generate(), registry=registry, user_id="u-42", task="summarize")
    seen = []

    async def agent() -> None:
        with run:
            seen.append(registry.get(run.run_id))
            response = await client.get("/ok")
            assert response.headers["x-run-id"] == run.run_id.value
            seen.append(registry.get(run.run_id))
            raise RuntimeError("agent failed")

    async with client:
        with pytest.raises(RuntimeError, match="agent failed"):
            await agent()
    first, during = seen
    assert (during.status, during.user_id, during.task) == ("running", "u-42", "summarize")
    record = registry.get(run.run_id)
    assert (record.status, record.error) == ("error", "RuntimeError: agent failed")
    assert (record.user_id, record.task) == ("u-42", "summarize")
    assert record.started_at == first.started_at
    assert record.duration is not None
