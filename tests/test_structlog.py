"""agent_run_id.structlog.add_run_id with the real structlog."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from agent_run_id import RunContext, RunId
from agent_run_id.structlog import add_run_id


class Lines:
    """A structlog logger factory writing rendered lines to a list."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self.lock:
            self.lines.append(json.loads(message))

    info = warning = error = msg

    def __call__(self, *args: object) -> Lines:
        return self


@pytest.fixture
def lines() -> Iterator[Lines]:
    sink = Lines()
    structlog.configure(
        processors=[add_run_id, structlog.processors.JSONRenderer()],
        logger_factory=sink,
        cache_logger_on_first_use=False,
    )
    try:
        yield sink
    finally:
        structlog.reset_defaults()


def test_events_inside_a_run_carry_it(lines: Lines) -> None:
    log = structlog.get_logger()
    with RunContext() as run:
        log.info("agent_start")
    log.info("idle")
    assert lines.lines == [{"event": "agent_start", "run_id": run.run_id.value}, {"event": "idle"}]


def test_child_runs_carry_their_lineage(lines: Lines) -> None:
    log = structlog.get_logger()
    with RunContext() as root, RunContext() as parent, RunContext() as run:
        log.info("step")
    assert lines.lines == [
        {
            "event": "step",
            "run_id": run.run_id.value,
            "parent_run_id": parent.run_id.value,
            "root_run_id": root.run_id.value,
        }
    ]


def test_the_seed_snippet_keeps_the_run_id_the_caller_passed(lines: Lines) -> None:
    """The user's description logs ``run_id=run_id.value`` explicitly; that value is kept."""
    logger = structlog.get_logger()
    run_id = RunId.generate()
    other = RunId.generate()
    with RunContext(run_id=run_id):
        logger.info("agent_start", run_id=run_id.value)
        logger.info("agent_complete", run_id=other.value, tokens=12)
    assert lines.lines == [
        {"event": "agent_start", "run_id": run_id.value},
        {"event": "agent_complete", "run_id": other.value, "tokens": 12},
    ]


async def test_concurrent_tasks_log_their_own_run(lines: Lines) -> None:
    log = structlog.get_logger()

    async def agent() -> None:
        async with RunContext() as run:
            for _ in range(3):
                await asyncio.sleep(0)
                log.info("step", expected=run.run_id.value)

    await asyncio.gather(*(agent() for _ in range(300)))
    assert len(lines.lines) == 900
    assert all(line["run_id"] == line["expected"] for line in lines.lines)


def test_concurrent_threads_log_their_own_run(lines: Lines) -> None:
    log = structlog.get_logger()

    def agent() -> None:
        for _ in range(30):
            with RunContext() as run:
                log.info("step", expected=run.run_id.value)

    threads = [threading.Thread(target=agent) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lines.lines) == 480
    assert all(line["run_id"] == line["expected"] for line in lines.lines)
