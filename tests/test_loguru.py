"""agent_run_id.loguru.patch_record with the real loguru."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from agent_run_id import RunContext, annotate
from agent_run_id.logging import ALL_FIELDS
from agent_run_id.loguru import RunIdPatcher, patch_record


@pytest.fixture
def lines() -> Iterator[list[str]]:
    out: list[str] = []
    lock = threading.Lock()

    def sink(message: object) -> None:
        with lock:
            out.append(str(message).rstrip("\n"))

    logger.remove()
    logger.configure(patcher=patch_record)
    handler = logger.add(sink, format="{extra[run_id]} {extra[parent_run_id]}|{message}")
    try:
        yield out
    finally:
        logger.remove(handler)
        logger.configure(patcher=None, extra={})


def test_records_carry_the_run_and_defaults_outside(lines: list[str]) -> None:
    with RunContext() as parent, RunContext() as run:
        logger.info("tool call")
    logger.info("idle")
    assert lines == [f"{run.run_id.value} {parent.run_id.value}|tool call", "- -|idle"]


def test_all_fields_are_set(lines: list[str]) -> None:
    seen: list[dict[str, object]] = []
    handler = logger.add(lambda message: seen.append(dict(message.record["extra"])))
    with RunContext() as run:
        logger.info("x")
    assert seen == [
        {
            "run_id": run.run_id.value,
            "run_id_short": run.run_id.short(),
            "parent_run_id": "-",
            "root_run_id": run.run_id.value,
            "session_id": "-",
        }
    ]
    logger.info("outside")
    logger.remove(handler)
    assert seen[-1] == dict.fromkeys(
        ("run_id", "run_id_short", "parent_run_id", "root_run_id", "session_id"), "-"
    )


def test_a_bound_run_id_is_kept(lines: list[str]) -> None:
    with RunContext():
        logger.bind(run_id="bound").info("explicit")
    assert lines[0].startswith("bound ")


def test_logger_patch_works_too() -> None:
    seen: list[object] = []
    handler = logger.add(lambda message: seen.append(message.record["extra"].get("run_id")))
    try:
        with RunContext() as run:
            logger.patch(patch_record).info("patched")
    finally:
        logger.remove(handler)
    assert seen[-1] == run.run_id.value


async def test_concurrent_tasks_log_their_own_run(lines: list[str]) -> None:
    async def agent() -> None:
        async with RunContext() as run:
            for _ in range(3):
                await asyncio.sleep(0)
                logger.info(run.run_id.value)

    await asyncio.gather(*(agent() for _ in range(200)))
    assert len(lines) == 600
    assert all(line.split(" ")[0] == line.split("|")[1] for line in lines)


def test_concurrent_threads_log_their_own_run(lines: list[str]) -> None:
    def agent() -> None:
        for _ in range(20):
            with RunContext() as run:
                logger.info(run.run_id.value)

    threads = [threading.Thread(target=agent) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(lines) == 320
    assert all(line.split(" ")[0] == line.split("|")[1] for line in lines)


# --- sessions and users ------------------------------------------------------------------------


def extras(fields: tuple[str, ...] | None = None) -> tuple[list[dict[str, object]], int]:
    seen: list[dict[str, object]] = []
    patcher = patch_record if fields is None else RunIdPatcher(fields=fields)
    logger.configure(patcher=patcher)
    handler = logger.add(lambda message: seen.append(dict(message.record["extra"])))
    return seen, handler


def test_records_carry_the_session_and_the_user_only_when_asked(lines: list[str]) -> None:
    seen, handler = extras()
    try:
        with RunContext(session_id="chat-42", user_id="u-7"):
            logger.info("default")
        logger.configure(patcher=RunIdPatcher(fields=("run_id", "session_id", "user_id", "task")))
        with RunContext(session_id="chat-42", user_id="u-7") as run:
            logger.info("asked")
        logger.info("outside")
    finally:
        logger.remove(handler)
    assert seen[0]["session_id"] == "chat-42"
    assert "user_id" not in seen[0]
    assert seen[1:] == [
        {"run_id": run.run_id.value, "session_id": "chat-42", "user_id": "u-7", "task": "-"},
        dict.fromkeys(("run_id", "session_id", "user_id", "task"), "-"),
    ]


def test_annotate_reaches_the_records_that_follow(lines: list[str]) -> None:
    seen, handler = extras(ALL_FIELDS)
    try:
        with RunContext():
            logger.info("before")
            annotate(user_id="u-1", session_id="chat-1", task="plan")
            logger.info("after")
    finally:
        logger.remove(handler)
    facts = [(e["session_id"], e["user_id"], e["task"]) for e in seen]
    assert facts == [("-", "-", "-"), ("chat-1", "u-1", "plan")]


def test_a_bound_session_is_kept(lines: list[str]) -> None:
    seen, handler = extras()
    try:
        with RunContext(session_id="chat-1"):
            logger.bind(session_id="bound").info("explicit")
    finally:
        logger.remove(handler)
    assert seen[0]["session_id"] == "bound"


@pytest.mark.parametrize(
    ("fields", "error", "message"),
    [
        ("user_id", TypeError, "fields must be a tuple of field names"),
        (("run_id", "user"), ValueError, "fields: 'user' is not a log field: choose from"),
    ],
)
def test_bad_fields_are_refused(fields: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        RunIdPatcher(fields=fields)


def test_the_patcher_shows_its_fields() -> None:
    assert repr(RunIdPatcher(fields=("user_id", "run_id"))) == (
        "RunIdPatcher(fields=('run_id', 'user_id'))"
    )


async def test_concurrent_tasks_log_their_own_user_and_session(lines: list[str]) -> None:
    seen, handler = extras(ALL_FIELDS)

    async def agent(number: int) -> None:
        async with RunContext(session_id=f"chat-{number}"):
            await asyncio.sleep(0)
            annotate(user_id=f"user-{number}")
            for _ in range(3):
                await asyncio.sleep(0)
                logger.bind(expected=(f"user-{number}", f"chat-{number}")).info("step")

    try:
        await asyncio.gather(*(agent(number) for number in range(200)))
    finally:
        logger.remove(handler)
    assert len(seen) == 600
    assert all((e["user_id"], e["session_id"]) == e["expected"] for e in seen)


def test_concurrent_threads_log_their_own_user_and_session(lines: list[str]) -> None:
    seen, handler = extras(ALL_FIELDS)
    barrier = threading.Barrier(50)

    def agent(number: int) -> None:
        barrier.wait()
        for turn in range(10):
            session = f"chat-{number}-{turn}"
            with RunContext(session_id=session, user_id=f"user-{number}"):
                logger.bind(expected=(f"user-{number}", session)).info("step")

    threads = [threading.Thread(target=agent, args=(number,)) for number in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.remove(handler)
    assert len(seen) == 500
    assert all((e["user_id"], e["session_id"]) == e["expected"] for e in seen)
