"""agent_run_id.structlog.add_run_id with the real structlog."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from agent_run_id import RunContext, RunId, annotate
from agent_run_id.logging import ALL_FIELDS
from agent_run_id.structlog import DEFAULT_FIELDS, RunIdProcessor, add_run_id


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


# --- sessions and users ------------------------------------------------------------------------


def configure(processor: RunIdProcessor, sink: Lines) -> None:
    structlog.configure(
        processors=[processor, structlog.processors.JSONRenderer()],
        logger_factory=sink,
        cache_logger_on_first_use=False,
    )


def test_events_carry_the_session_but_not_the_user_by_default(lines: Lines) -> None:
    log = structlog.get_logger()
    with RunContext(session_id="chat-42", user_id="u-7", task="plan") as run:
        log.info("step")
    assert lines.lines == [{"event": "step", "run_id": run.run_id.value, "session_id": "chat-42"}]
    assert DEFAULT_FIELDS == ("run_id", "parent_run_id", "root_run_id", "session_id")


def test_the_processor_adds_the_fields_asked_for(lines: Lines) -> None:
    configure(RunIdProcessor(fields=("run_id_short", "user_id", "task", "root_run_id")), lines)
    log = structlog.get_logger()
    with RunContext(user_id="u-7") as run:
        log.info("step")
    log.info("idle")
    assert lines.lines == [
        {"event": "step", "run_id_short": run.run_id.short(), "user_id": "u-7"},
        {"event": "idle"},
    ]


def test_annotate_reaches_the_events_that_follow(lines: Lines) -> None:
    configure(RunIdProcessor(fields=ALL_FIELDS), lines)
    log = structlog.get_logger()
    with RunContext():
        log.info("before")
        annotate(user_id="u-1", session_id="chat-1", task="plan")
        log.info("after", session_id="given")
    facts = [
        (line.get("session_id"), line.get("user_id"), line.get("task")) for line in lines.lines
    ]
    assert facts == [(None, None, None), ("given", "u-1", "plan")]  # the caller's key is kept


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ("session_id", TypeError, "fields must be a tuple of field names"),
        (("run_id", "session"), ValueError, "fields: 'session' is not a log field: choose from"),
    ],
)
def test_bad_fields_are_refused(fields: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        RunIdProcessor(fields=fields)


def test_the_processor_shows_its_fields() -> None:
    assert repr(RunIdProcessor(fields=("user_id",))) == "RunIdProcessor(fields=('user_id',))"


async def test_concurrent_tasks_log_their_own_user_and_session(lines: Lines) -> None:
    configure(RunIdProcessor(fields=ALL_FIELDS), lines)
    log = structlog.get_logger()

    async def agent(number: int) -> None:
        async with RunContext(session_id=f"chat-{number}"):
            await asyncio.sleep(0)
            annotate(user_id=f"user-{number}")
            for _ in range(3):
                await asyncio.sleep(0)
                log.info("step", expected=[f"user-{number}", f"chat-{number}"])

    await asyncio.gather(*(agent(number) for number in range(200)))
    assert len(lines.lines) == 600
    assert all([line["user_id"], line["session_id"]] == line["expected"] for line in lines.lines)


def test_concurrent_threads_log_their_own_user_and_session(lines: Lines) -> None:
    configure(RunIdProcessor(fields=ALL_FIELDS), lines)
    log = structlog.get_logger()
    barrier = threading.Barrier(50)

    def agent(number: int) -> None:
        barrier.wait()
        for turn in range(10):
            session = f"chat-{number}-{turn}"
            with RunContext(session_id=session, user_id=f"user-{number}"):
                log.info("step", expected=[f"user-{number}", session])

    threads = [threading.Thread(target=agent, args=(number,)) for number in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lines.lines) == 500
    assert all([line["user_id"], line["session_id"]] == line["expected"] for line in lines.lines)
