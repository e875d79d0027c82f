"""examples/fastapi_app.py: the user annotated after authentication, the session from the header.

Each request's log record carries its own run, user and session, also with many at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import httpx
import pytest

import agent_run_id.logging
from agent_run_id.logging import ALL_FIELDS
from tests._inbound_helpers import load_example


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def kept() -> Iterator[_Kept]:
    handler = _Kept()
    logger = logging.getLogger("agent")  # the example's logger
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def _facts(record: logging.LogRecord) -> tuple[str, str, str]:
    return (record.run_id, record.user_id, record.session_id)  # type: ignore[attr-defined]


async def test_the_user_and_the_session_reach_the_log_record_of_the_handler(kept: _Kept) -> None:
    example = load_example("fastapi_app")
    agent_run_id.logging.install(fields=ALL_FIELDS)
    transport = httpx.ASGITransport(app=example.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        signed_in = await http.get(
            "/agent",
            params={"task": "hello"},
            headers={"Authorization": "Bearer token-42", "X-Session-Id": "chat-7"},
        )
        anonymous = await http.get("/agent", params={"task": "hello"})
    first, second = kept.records
    assert _facts(first) == (signed_in.headers["x-run-id"], "u-42", "chat-7")
    assert first.getMessage() == "agent started on 'hello' for u-42"
    assert _facts(second) == (anonymous.headers["x-run-id"], "-", "-")


async def test_many_requests_at_once_each_log_their_own_user_and_session(
    kept: _Kept, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = load_example("fastapi_app")
    monkeypatch.setattr(example, "TOKENS", {f"token-{n}": f"user-{n}" for n in range(200)})
    agent_run_id.logging.install(fields=ALL_FIELDS)
    transport = httpx.ASGITransport(app=example.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        responses = await asyncio.gather(
            *(
                http.get(
                    "/agent",
                    params={"task": f"task-{n}"},
                    headers={"Authorization": f"Bearer token-{n}", "X-Session-Id": f"chat-{n}"},
                )
                for n in range(200)
            )
        )
    runs = {r.headers["x-run-id"]: n for n, r in enumerate(responses)}
    assert len(runs) == 200
    assert len(kept.records) == 200
    for record in kept.records:
        n = runs[record.run_id]  # type: ignore[attr-defined]
        assert _facts(record)[1:] == (f"user-{n}", f"chat-{n}")
        assert record.getMessage() == f"agent started on 'task-{n}' for user-{n}"
