"""The snippets of the user's description, as written (structlog where they log keywords)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from agent_run_id import RunContext, RunId, current_run_id
from agent_run_id.structlog import add_run_id


@pytest.fixture
def events() -> Iterator[list[dict[str, Any]]]:
    captured: list[dict[str, Any]] = []

    def capture(logger: object, method: str, event: dict[str, Any]) -> str:
        captured.append(dict(event))
        return ""

    # add_run_id stands for the seed's stamping filter: these snippets log keywords, so structlog.
    structlog.configure(
        processors=[add_run_id, capture], logger_factory=structlog.ReturnLoggerFactory()
    )
    try:
        yield captured
    finally:
        structlog.reset_defaults()


def test_the_shape_of_the_fix(events: list[dict[str, Any]]) -> None:
    logger = structlog.get_logger()
    sent: list[dict[str, str]] = []

    def call_tool(name: str, query: str, run_id: RunId) -> str:
        return f"{name}:{query}:{run_id.short()}"

    def call_llm(messages: list[str], extra_headers: dict[str, str]) -> dict[str, int]:
        sent.append(extra_headers)
        return {"input_tokens": 3}

    query, messages = "weather", ["hi"]
    run_id = RunId.generate()
    with RunContext(run_id=run_id):
        logger.info("agent_start", run_id=run_id.value)
        result = call_tool("search_web", query=query, run_id=run_id)
        response = call_llm(messages, extra_headers={"X-Run-Id": run_id.value})
        logger.info("agent_complete", run_id=run_id.value, tokens=response["input_tokens"])
    assert result == f"search_web:weather:{run_id.value[:8]}"
    assert sent == [{"X-Run-Id": run_id.value}]
    assert [e["run_id"] for e in events] == [run_id.value, run_id.value]


def test_the_seed_short_filter_on_the_root_logger(caplog: pytest.LogCaptureFixture) -> None:
    """The first filter snippet: the short id inside a run, "no-run" outside."""

    class RunIdFilter(logging.Filter):
        def filter(self, record):  # type: ignore[no-untyped-def]  # as the seed writes it
            run_id = current_run_id()
            record.run_id = run_id.short() if run_id else "no-run"
            return True

    run = _log_inside_and_outside_a_run(RunIdFilter(), caplog)
    assert (
        [(r.getMessage(), r.run_id) for r in caplog.records]
        == [  # type: ignore[attr-defined]
            ("inside", run.run_id.value[:8]),
            ("outside", "no-run"),
        ]
    )


def _log_inside_and_outside_a_run(
    seed_filter: logging.Filter, caplog: pytest.LogCaptureFixture
) -> RunContext:
    """Log "inside" in a run and "outside" after it, through ``seed_filter`` on the root logger."""
    root_logger = logging.getLogger()
    root_logger.addFilter(seed_filter)
    caplog.set_level(logging.INFO)
    try:
        with RunContext() as run:
            root_logger.info("inside")
        root_logger.info("outside")
    finally:
        root_logger.removeFilter(seed_filter)
    return run


def test_the_seed_filter_class_on_the_root_logger(caplog: pytest.LogCaptureFixture) -> None:
    class RunIdFilter(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            rid = current_run_id()
            record.run_id = str(rid) if rid else "-"
            return True

    run = _log_inside_and_outside_a_run(RunIdFilter(), caplog)
    assert [r.run_id for r in caplog.records] == [run.run_id.value, "-"]  # type: ignore[attr-defined]


async def test_the_request_handler(events: list[dict[str, Any]]) -> None:
    logger = structlog.get_logger()

    async def run_agent(task: str) -> str:
        await asyncio.sleep(0)
        if task == "fail":
            raise RuntimeError("tool call failed")
        return task.upper()

    async def handle_agent_request(user_id: str, task: str) -> dict[str, str]:
        run_id = RunId.generate()
        with RunContext(run_id=run_id):
            logger.info("agent_started", user_id=user_id, task=task[:50])
            try:
                result = await run_agent(task)
                logger.info("agent_completed", result_length=len(str(result)))
                return {"run_id": str(run_id), "result": result}
            except Exception as e:
                logger.error("agent_failed", error=str(e), exc_info=True)
                return {"run_id": str(run_id), "error": str(e)}

    ok, failed = await asyncio.gather(
        handle_agent_request("u1", "plan"), handle_agent_request("u2", "fail")
    )
    assert ok["result"] == "PLAN"
    assert failed["error"] == "tool call failed"
    assert RunId.from_string(failed["run_id"]).short() == failed["run_id"][:8]
    assert ok["run_id"] != failed["run_id"]
    by_run: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_run.setdefault(event.pop("run_id"), []).append(event)
    assert by_run == {
        ok["run_id"]: [
            {"event": "agent_started", "user_id": "u1", "task": "plan"},
            {"event": "agent_completed", "result_length": 4},
        ],
        failed["run_id"]: [
            {"event": "agent_started", "user_id": "u2", "task": "fail"},
            {"event": "agent_failed", "error": "tool call failed", "exc_info": True},
        ],
    }
