"""The hook registries and their one failure rule: a hook that raises is reported, never fatal."""

from __future__ import annotations

import logging

import pytest

from agent_run_id import RunContext, RunId, add_run_observer
from agent_run_id._hooks import (
    Hooks,
    add_field_provider,
    add_incoming_fallback,
    remove_incoming_fallback,
    run_from_fallbacks,
)
from agent_run_id.asgi import RunIdMiddleware

RUN = "0b6f5d3e-2c1a-4e8b-9f7d-5a4c3b2a1908"


def broken(*args: object) -> None:
    raise RuntimeError("hook bug")


def reports(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "agent_run_id"]


def test_a_hook_is_added_once_and_removed_by_equality() -> None:
    hooks: Hooks[object] = Hooks()
    hooks.add(print)
    hooks.add(print)
    hooks.add(len)
    assert hooks.items == (print, len)
    hooks.remove(print)
    assert hooks.items == (len,)
    hooks.clear()
    assert hooks.items == ()


def test_a_failing_observer_is_reported_once_as_a_warning_then_at_debug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    add_run_observer(broken)
    with caplog.at_level(logging.DEBUG, logger="agent_run_id"):
        for _ in range(3):
            with RunContext():
                pass
    levels = [level for level, _ in reports(caplog)]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "run observer" in reports(caplog)[0][1]
    assert "failed when the run started" in reports(caplog)[0][1]


def test_a_failing_fallback_is_skipped_reported_once_and_the_next_one_asked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def finds(get_header: object) -> RunId:
        return RunId(RUN)

    add_incoming_fallback(broken)  # type: ignore[arg-type]
    add_incoming_fallback(finds)
    try:
        with caplog.at_level(logging.DEBUG, logger="agent_run_id"):
            first = run_from_fallbacks({}.get)
            second = run_from_fallbacks({}.get)
    finally:
        remove_incoming_fallback(broken)  # type: ignore[arg-type]
        remove_incoming_fallback(finds)
    assert first == second == RunId(RUN)
    assert [level for level, _ in reports(caplog)] == [logging.WARNING, logging.DEBUG]
    assert "incoming fallback" in reports(caplog)[0][1]


async def test_a_failing_fallback_never_fails_a_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sent: list[dict[str, object]] = []

    async def app(scope: object, receive: object, send: object) -> None:
        sent.append({"status": 200})

    add_incoming_fallback(broken)  # type: ignore[arg-type]
    try:
        await RunIdMiddleware(app)({"type": "http", "headers": []}, None, None)  # type: ignore[arg-type]
    finally:
        remove_incoming_fallback(broken)  # type: ignore[arg-type]
    assert sent == [{"status": 200}]


def test_a_field_provider_failing_in_its_own_warning_is_not_reported_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The warning's record is stamped too: the provider fails there, silently, not forever."""
    import agent_run_id.logging as run_logging

    add_field_provider(broken)  # type: ignore[arg-type]
    run_logging.install()
    with caplog.at_level(logging.DEBUG, logger="agent_run_id"):
        logging.getLogger("app").warning("hello")
    assert [level for level, _ in reports(caplog)] == [logging.WARNING]
    assert "log field provider" in reports(caplog)[0][1]
