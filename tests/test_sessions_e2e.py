"""A user's session end to end: annotate() after authentication reaches every output.

A FastAPI app behind RunIdMiddleware annotates the user in a dependency (as authentication would)
and logs in the handler; 200 concurrent requests with distinct users and sessions must each see
only their own in the log records, the spans and the registry rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agent_run_id
import agent_run_id.logging as run_logging
from agent_run_id import otel as run_otel
from agent_run_id.asgi import RunIdMiddleware
from agent_run_id.registry import SQLiteRunRegistry

REQUESTS = 200


class Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[Keep]:
    handler = Keep()
    logger = logging.getLogger("e2e")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def app_with(registry: SQLiteRunRegistry, tracer_provider: TracerProvider) -> RunIdMiddleware:
    api = FastAPI()
    tracer = tracer_provider.get_tracer("e2e")
    log = logging.getLogger("e2e")

    async def authenticated_user(request: Request) -> str:
        user = request.headers["x-user"]  # what authentication found
        await asyncio.sleep(0)
        agent_run_id.annotate(user_id=user)
        return user

    @api.get("/chat")
    async def chat(user: str = Depends(authenticated_user)) -> dict[str, str]:
        await asyncio.sleep(0)
        with tracer.start_as_current_span("llm call"):
            log.info("answering %s", user)
        run = agent_run_id.current_run()
        assert run is not None
        return {"run": run.id, "user": user}

    return RunIdMiddleware(api, registry=registry)


async def test_200_concurrent_users_each_see_only_their_own_in_logs_spans_and_rows(
    tmp_path: Path, kept: Keep
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    run_otel.install(tracer_provider=provider, baggage=False, user=True)
    run_logging.install(fields=(*run_logging.DEFAULT_FIELDS, "user_id"))
    registry = SQLiteRunRegistry(tmp_path / "runs.db")
    app = app_with(registry, provider)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://t") as http:

        async def one(i: int) -> dict[str, str]:
            answer = await http.get(
                "/chat", headers={"X-Session-Id": f"chat-{i}", "X-User": f"user-{i}"}
            )
            assert answer.status_code == 200
            return dict(answer.json())

        answers = await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    registry.flush()
    runs = {answer["user"]: answer["run"] for answer in answers}
    assert len(set(runs.values())) == REQUESTS

    records = [r for r in kept.records if r.getMessage().startswith("answering")]
    assert len(records) == REQUESTS
    for record in records:
        user = record.getMessage().removeprefix("answering ")
        i = user.removeprefix("user-")
        assert (record.run_id, record.user_id, record.session_id) == (  # type: ignore[attr-defined]
            runs[user],
            user,
            f"chat-{i}",
        )

    spans = [s for s in exporter.get_finished_spans() if s.name == "llm call"]
    assert len(spans) == REQUESTS
    for span in spans:
        attributes = dict(span.attributes or {})
        user = str(attributes["user.id"])
        assert attributes["agent_run.id"] == runs[user]
        assert attributes["gen_ai.conversation.id"] == f"chat-{user.removeprefix('user-')}"

    for user, run in runs.items():
        record = registry.get(run)
        assert (record.user_id, record.session_id, record.status) == (
            user,
            f"chat-{user.removeprefix('user-')}",
            "ok",
        )
    assert len(registry.find(session_id="chat-7")) == 1
    registry.close()
    run_otel.uninstall()
    provider.shutdown()
